"""``talksync demo``: the real engine, adapters and state store against seeded local sandboxes.

Both sandboxes are served on free loopback ports; the demo plans, syncs, then edits both sides
the way people would (a renamed customer, a user moved to another organization, a changed
e-mail, one conflicting edit), syncs again and shows what flowed where and why. A last sync
shows the fixpoint: nothing left to do.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import typer

from cli.output import (
    pending_changes,
    render_failures,
    render_plan,
    stdout_console,
    summary_table,
)
from cli.wiring import AppContext, RealWiring
from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS
from talkcore.engine import RunOptions, RunReport, plan_run, run_sync
from talkcore.plan import AdvanceBase
from talkcore.ports import StateStore, SystemPort, WriteOp, WriteRequest
from talkcore.records import Kind
from talkcore.state import SyncState


def demo(state: Path | None, size: int, seed: int) -> None:
    """Seed both sandboxes with ``size`` customers (``seed``), sync, edit both sides, sync again."""
    from adapters.sandbox.poweroffice import PowerOfficeSandbox
    from adapters.sandbox.seed import seed_sandboxes
    from adapters.sandbox.server import serve_sandboxes
    from adapters.sandbox.zendesk import ZendeskSandbox

    started = time.monotonic()
    po_sandbox, zd_sandbox = PowerOfficeSandbox(), ZendeskSandbox()
    seed_sandboxes(po_sandbox, zd_sandbox, size=size, seed=seed)
    with ExitStack() as stack, _state_file(state) as state_path:
        served = stack.enter_context(serve_sandboxes(po_sandbox, zd_sandbox))
        context = AppContext(
            wiring=RealWiring(), env={**served.env(), "TALKSYNC_STATE": str(state_path)}
        )
        stack.callback(context.stack.close)
        poweroffice, zendesk = context.systems()
        store = context.store()
        _say(
            f"Sandboxes: PowerOffice Go at {served.poweroffice_url}, Zendesk at "
            f"{served.zendesk_url}; {size} customers with contact persons, departments and "
            f"Zendesk users (seed {seed}). State file: {state_path}"
        )

        _step("1. talksync plan --from-empty — what a first sync would do (nothing is written)")
        planned = plan_run(
            poweroffice, zendesk, store, RunOptions(policy=context.settings().policy)
        )
        _show(planned, "Plan")

        _step("2. talksync sync — do it")
        first = _sync(poweroffice, zendesk, store, context, "First sync")

        _step("3. People edit both sides")
        for line in _edit_both_sides(poweroffice, zendesk, store.load_state(), first):
            _say(f"  - {line}")

        _step("4. talksync sync — what flowed where, and why (base and both sides per field)")
        second = _sync(poweroffice, zendesk, store, context, "Second sync", explain=True)

        _step("5. talksync sync — right after a sync there is nothing to do")
        third = _sync(poweroffice, zendesk, store, context, "Third sync", known=_report_ids(second))
        failed = len(first.failures) + len(second.failures) + len(third.failures)
        _say(
            f"\nDone in {time.monotonic() - started:.1f} s; {failed} failed writes. Try "
            "`talksync sandbox serve` to keep the sandboxes up and run the commands yourself."
        )


@contextmanager
def _state_file(state: Path | None) -> Iterator[Path]:
    if state is not None:
        yield state
        return
    with tempfile.TemporaryDirectory(prefix="talksync-demo-") as folder:
        yield Path(folder) / "talksync.db"


def _sync(
    poweroffice: SystemPort,
    zendesk: SystemPort,
    store: StateStore,
    context: AppContext,
    title: str,
    *,
    explain: bool = False,
    known: set[str] | None = None,
) -> RunReport:
    """Run a sync and show it; ``known``: ids of reports already shown, counted, not repeated."""
    report = run_sync(poweroffice, zendesk, store, RunOptions(policy=context.settings().policy))
    reports = {item.id for item in report.plan.reports()}
    if known is not None and not pending_changes(report.plan) and reports <= known:
        waiting = len(report.plan.reports())
        _say(
            f"Nothing to do: {len(report.applied)} writes. {waiting} item(s) still wait for a"
            " person, unchanged since the last sync (talksync conflicts, talksync ambiguities)."
        )
    else:
        _show(report, title, explain=explain)
    render_failures(report)
    return report


LONG_PLAN = 30
"""Items above which the demo shows a plan's counts instead of every line."""


def _show(report: RunReport, title: str, *, explain: bool = False) -> None:
    """Print a plan, or only its counts when it is long (the JSON report lists every item)."""
    shown = [item for item in report.plan if explain or not isinstance(item, AdvanceBase)]
    if len(shown) > LONG_PLAN:
        command = "talksync plan --json" if report.dry_run else "talksync sync --json"
        _say(f"{len(shown)} items, counted below (`{command}` lists every one).")
    else:
        render_plan(report, explain=explain)
    stdout_console().print(summary_table(report, title))


def _report_ids(report: RunReport) -> set[str]:
    return {item.id for item in report.plan.reports()}


def _edit_both_sides(
    poweroffice: SystemPort, zendesk: SystemPort, state: SyncState, first: RunReport
) -> list[str]:
    """Make the four edits through the systems' own APIs; say what was done."""
    customers = sorted(state.table(CUSTOMERS), key=lambda link: int(link.poweroffice_id))
    contacts = sorted(state.table(CONTACT_PERSONS), key=lambda link: int(link.poweroffice_id))
    if len(customers) < 3 or len(contacts) < 2:
        return ["(too few linked records to edit; use a larger --size)"]
    renamed, conflicted, other = customers[0], customers[1], customers[2]
    moved, new_email = contacts[0], contacts[1]
    done: list[str] = []

    def write(port: SystemPort, request: WriteRequest, what: str) -> None:
        (result,) = port.apply([request])
        done.append(what if result.ok else f"{what}: FAILED ({result.error})")

    write(
        poweroffice,
        WriteRequest(
            "demo-1",
            WriteOp.UPDATE,
            Kind.CUSTOMER,
            renamed.poweroffice_id,
            {"Name": "Fjordkraft Demo AS"},
        ),
        f"PowerOffice: customer {renamed.poweroffice_id} renamed to 'Fjordkraft Demo AS'",
    )
    write(
        zendesk,
        WriteRequest(
            "demo-2",
            WriteOp.UPDATE,
            Kind.USER,
            moved.zendesk_id,
            {"organization_id": other.zendesk_id},
        ),
        f"Zendesk: user {moved.zendesk_id} moved to organization {other.zendesk_id} (the "
        f"organization of customer {other.poweroffice_id})",
    )
    write(
        zendesk,
        WriteRequest(
            "demo-3",
            WriteOp.UPDATE,
            Kind.USER,
            new_email.zendesk_id,
            {"email": f"ny.adresse.{new_email.poweroffice_id}@example.no"},
        ),
        f"Zendesk: user {new_email.zendesk_id} changed e-mail to "
        f"ny.adresse.{new_email.poweroffice_id}@example.no",
    )
    write(
        poweroffice,
        WriteRequest(
            "demo-4",
            WriteOp.UPDATE,
            Kind.CUSTOMER,
            conflicted.poweroffice_id,
            {"Name": "Navnet i PowerOffice AS"},
        ),
        f"PowerOffice: customer {conflicted.poweroffice_id} renamed to 'Navnet i PowerOffice AS'",
    )
    time.sleep(1.1)  # both systems keep whole seconds: make the Zendesk edit the newer one
    write(
        zendesk,
        WriteRequest(
            "demo-5",
            WriteOp.UPDATE,
            Kind.ORGANIZATION,
            conflicted.zendesk_id,
            {"name": "Navnet i Zendesk AS"},
        ),
        f"Zendesk: the same customer's organization {conflicted.zendesk_id} renamed to "
        "'Navnet i Zendesk AS' a moment later — a conflict; the newest edit wins by default",
    )
    del first
    return done


def _step(title: str) -> None:
    typer.echo(f"\n== {title}")


def _say(text: str) -> None:
    typer.echo(text)
