"""Run reports for the tests that record one in a state store's run log by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from talkcore.engine import RunReport
from talkcore.plan import Conflict, Create, FieldChange, Plan, Update
from talkcore.policy import ConflictPolicy
from talkcore.ports import WriteError, WriteResult
from talkcore.records import Kind, RecordKey, RecordProblem, System

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMER = RecordKey.of(Kind.CUSTOMER, "1")
ORGANIZATION = RecordKey.of(Kind.ORGANIZATION, "901")
CREATE_ID = "create:customers-organizations:1"


def run_report(run_id: str, *, plan: Plan | None = None, started: datetime = T0) -> RunReport:
    """A run that planned ``plan`` (nothing by default) and wrote none of it."""
    return RunReport(run_id, started, started, full=False, dry_run=False, plan=plan or Plan())


def busy_report(run_id: str) -> RunReport:
    """A run with something of everything: a create (applied), an update that points a user
    at the organization it created (failed), a held conflict, a read problem and a create of an
    interrupted run found again (reconciled)."""
    plan = Plan(
        (
            Create(
                CREATE_ID,
                "customers-organizations",
                Kind.ORGANIZATION,
                CUSTOMER,
                str(CUSTOMER),
                {"name": "Acme AS"},
            ),
            Update(
                "update:contact-persons-users:zendesk:user:501",
                "contact-persons-users",
                RecordKey.of(Kind.USER, "501"),
                "100",
                (
                    FieldChange(
                        "organization_id",
                        "901",
                        "poweroffice_changed",
                        None,
                        "1",
                        None,
                        "partyId",
                    ),
                ),
            ),
            Conflict(
                "conflict:customers-organizations/2/Name",
                "customers-organizations",
                RecordKey.of(Kind.CUSTOMER, "2"),
                ORGANIZATION,
                "Name",
                "Beta",
                "Beta AS",
                "Beta ASA",
                ConflictPolicy.MANUAL,
                None,
                "conflict_held",
            ),
        )
    )
    return RunReport(
        run_id,
        T0,
        T0 + timedelta(seconds=4),
        full=True,
        dry_run=False,
        plan=plan,
        results=(
            WriteResult(CREATE_ID),
            WriteResult(
                "update:contact-persons-users:zendesk:user:501",
                error=WriteError(
                    "invalid", "is not a member", "zendesk user 501", "organization_id"
                ),
            ),
        ),
        problems=(RecordProblem(System.ZENDESK, Kind.USER, "502", "email", "not an e-mail"),),
        reconciled=("create:contact-persons-users:poweroffice:contact_person:7",),
        planned_writes=2,
    )
