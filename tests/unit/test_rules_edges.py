"""Edge paths of the dataflow's rules that a planted bug once slipped past.

One test per behaviour, named after the rule it protects (the numbers are those of the
dataflow's decisions: 4 references, 5 unique names, 7 idempotent creates, 8 deletes, 10 a
person's decisions). Each drives the real engine over the in-memory
fakes, so a broken rule shows as a wrong plan or a wrong write, not as a wrong helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from adapters.reportjson import report_json
from talkcore.dataflow import (
    CONTACT_PERSONS,
    CUSTOMERS,
    DEFAULT_DATAFLOW,
    DEPARTMENTS,
    PERSON_CUSTOMERS,
    Counterpart,
    Dataflow,
)
from talkcore.engine import RunOptions, run_sync
from talkcore.plan import (
    AdvanceBase,
    Ambiguity,
    Conflict,
    Create,
    EndLink,
    FieldChange,
    InvalidValue,
    NameCollision,
    NewLink,
    Plan,
    ReferenceProblem,
    Update,
)
from talkcore.policy import ConflictPolicy, FlowPolicy, SyncPolicy
from talkcore.ports import WriteError, WriteOp, WriteRequest, WriteResult
from talkcore.records import Kind, RecordKey, System
from talkcore.state import Link, SyncState, fold_results, link_by_hand, resolve_conflict

from .world import Crash, World, linked_contact, of_type


def user_writes(world: World) -> list[WriteRequest]:
    """Every write the Zendesk fake applied to users."""
    return [w for w in world.zd.applied if w.kind is Kind.USER]


# -- rule 8: deletes end links ---------------------------------------------------------------


def test_rule_8_a_deleted_zendesk_user_ends_the_link_and_leaves_the_contact_person() -> None:
    world = World()
    linked_contact(world)
    world.zd.remove(Kind.USER, "500")
    report = world.sync(full=True)
    ended = of_type(report.plan, EndLink)
    assert len(ended) == 1
    assert ended[0].gone.system is System.ZENDESK and ended[0].rule == "deleted"  # type: ignore[attr-defined]
    assert world.store.state.table(CONTACT_PERSONS).for_poweroffice("100") is None
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("emailAddress") == "ola@acme.no"
    assert not [w for w in world.po.applied if w.op is WriteOp.DELETE]


def test_rule_8_a_deleted_zendesk_organization_with_propagation_plans_without_crashing() -> None:
    world = World(
        policy=SyncPolicy(flows={CUSTOMERS: FlowPolicy(propagate_deletes=True, delete_cap=1.0)})
    )
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.sync()
    org = world.org_of(CUSTOMERS, "1")
    world.zd.remove(Kind.ORGANIZATION, org)
    report = world.sync(full=True)
    assert [i.rule for i in of_type(report.plan, EndLink)] == ["deleted"]  # type: ignore[attr-defined]
    assert world.store.state.table(CUSTOMERS).for_poweroffice("1") is None
    # The survivor is the customer; a propagated delete targets it, never the gone record.
    deletes = [w for w in world.po.applied if w.op is WriteOp.DELETE]
    assert all(w.kind is Kind.CUSTOMER and w.id == "1" for w in deletes)


# -- rule 5: names -----------------------------------------------------------------------------


def test_rule_5_an_organization_linked_in_one_flow_is_never_adopted_by_another() -> None:
    world = World()
    world.po.put(Kind.DEPARTMENT, 20, Name="Salg")
    world.sync()
    department_org = world.org_of(DEPARTMENTS, "20")
    # An agent renames the department's organization to the name of a customer that is new.
    world.zd.edit(Kind.ORGANIZATION, department_org, name="Nykunde AS")
    world.po.put(Kind.CUSTOMER, 7, Name="Nykunde AS", IsPerson="false")
    report = world.sync()
    assert not [
        i
        for i in of_type(report.plan, NewLink)
        if i.zendesk.id == department_org  # type: ignore[attr-defined]
    ]
    assert world.store.state.table(CUSTOMERS).for_poweroffice("7") is None
    assert world.org_of(DEPARTMENTS, "20") == department_org
    collisions = of_type(report.plan, NameCollision)
    assert [c.record.id for c in collisions] == ["7"]  # type: ignore[attr-defined]


# -- e-mails are unique in Zendesk ----------------------------------------------------------------


def test_a_poweroffice_email_change_onto_another_users_address_is_reported_and_not_sent() -> None:
    world = World()
    linked_contact(world)
    world.zd.put(Kind.USER, 501, email="kari@acme.no", name="Kari")
    before = len(user_writes(world))
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="Kari@acme.no")
    report = world.sync()
    invalid = of_type(report.plan, InvalidValue)
    assert [(i.record.id, i.rule) for i in invalid] == [("100", "email_taken")]  # type: ignore[attr-defined]
    assert "zendesk:user:501" in invalid[0].message  # type: ignore[attr-defined]
    assert not of_type(report.plan, Update) and not report.failures
    assert len(user_writes(world)) == before
    assert world.zd.records[Kind.USER]["500"].get("email") == "ola@acme.no"


# -- rule 4: references ------------------------------------------------------------------------


def test_rule_4_an_untranslatable_zendesk_reference_writes_nothing_even_with_moves() -> None:
    world = World(policy=SyncPolicy(flows={CONTACT_PERSONS: FlowPolicy(allow_moves=True)}))
    linked_contact(world)
    world.zd.put(Kind.ORGANIZATION, 950, name="Agentens egen")  # linked in no flow
    world.zd.edit(Kind.USER, "500", organization_id="950")
    before = len(world.po.applied)
    report = world.sync()
    problems = of_type(report.plan, ReferenceProblem)
    assert [(p.record.id, p.property) for p in problems] == [("500", "organization_id")]  # type: ignore[attr-defined]
    assert world.po.applied[before:] == []
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "1"


# -- rule 10: a person's decisions ---------------------------------------------------------------


def test_rule_10_a_held_conflict_closed_by_hand_forgets_the_earlier_pick() -> None:
    world = World(policy=SyncPolicy(flows={CUSTOMERS: FlowPolicy(conflict=ConflictPolicy.MANUAL)}))
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.sync()
    org = world.org_of(CUSTOMERS, "1")
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Norge AS")
    world.zd.edit(Kind.ORGANIZATION, org, name="Acme Holding AS")
    held = of_type(world.sync().plan, Conflict)
    assert [c.winner for c in held] == [None]  # type: ignore[attr-defined]
    key = next(iter(world.store.state.conflicts))
    world.store.state = resolve_conflict(world.store.state, key, System.ZENDESK)
    # Before the next run, people make both sides agree by hand: the conflict closes.
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Felles AS")
    world.zd.edit(Kind.ORGANIZATION, org, name="Acme Felles AS")
    closed = world.sync()
    assert of_type(closed.plan, AdvanceBase) and not of_type(closed.plan, Update)
    assert world.store.state.conflicts == {} and world.store.state.resolutions == {}
    # A new disagreement on the same field is held again, not decided by the stale pick.
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Ny AS")
    world.zd.edit(Kind.ORGANIZATION, org, name="Acme Annen AS")
    again = of_type(world.sync().plan, Conflict)
    assert [c.winner for c in again] == [None]  # type: ignore[attr-defined]
    assert world.zd.records[Kind.ORGANIZATION][org].get("name") == "Acme Annen AS"
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "Acme Ny AS"


# -- rule 4 and 7: a failed create and the references that wait for it ---------------------------


def refuse_organization_creates(write: WriteRequest) -> WriteError | None:
    """Refuse every organization create, as a 422 from Zendesk would."""
    if write.op is WriteOp.CREATE and write.kind is Kind.ORGANIZATION:
        return WriteError("invalid", "refused", f"zendesk organization {write.origin_key}")
    return None


def test_rule_4_when_an_organization_create_fails_the_user_waiting_for_it_is_not_written() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    world.zd.refuse = refuse_organization_creates
    report = world.sync()
    failures = {f.item_id: f.error for f in report.failures}
    assert failures.keys() == {
        "create:customers-organizations:1",
        "update:contact-persons-users:zendesk:user:500",
    }
    # The user's move is reported as waiting on the create, and nothing is sent for it.
    waiting = failures["update:contact-persons-users:zendesk:user:500"]
    assert waiting is not None and waiting.code == "dependency_failed"
    assert user_writes(world) == []
    assert world.zd.records[Kind.USER]["500"].get("organization_id") is None
    # Next run, with Zendesk taking creates again, both go through.
    world.zd.refuse = None
    world.sync()
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == world.org_of(CUSTOMERS, "1")


def test_rule_7_the_run_report_shows_written_ids_not_placeholders() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    report = world.sync()
    org = world.org_of(CUSTOMERS, "1")
    assert of_type(report.plan, Create)
    text = repr(report_json(report))
    assert "pending" not in text.casefold()
    update = next(
        i
        for i in report_json(report)["items"]
        if i.get("id") == "update:contact-persons-users:zendesk:user:500"
    )
    assert org in repr(update)
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == org


# -- what one plan does for a later step of the same plan ----------------------------------------


def test_rule_4_a_user_gets_the_organization_its_customer_adopts_in_the_same_run() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    report = world.sync()
    assert [i.rule for i in of_type(report.plan, NewLink)].count("adopt") == 1  # type: ignore[attr-defined]
    assert not of_type(report.plan, ReferenceProblem)
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == "900"


def test_rule_5_a_rename_frees_its_old_name_for_a_create_in_the_same_plan() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.sync()
    org = world.org_of(CUSTOMERS, "1")
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Holding AS")
    world.po.put(Kind.CUSTOMER, 2, Name="Acme AS", IsPerson="false")
    report = world.sync()
    assert not of_type(report.plan, NameCollision)
    assert [c.source.id for c in of_type(report.plan, Create)] == ["2"]  # type: ignore[attr-defined]
    assert world.orgs()[org] == "Acme Holding AS"
    assert world.orgs()[world.org_of(CUSTOMERS, "2")] == "Acme AS"


def test_rule_4_a_move_from_zendesk_shows_the_party_it_translates_to() -> None:
    world = World(policy=SyncPolicy(flows={CONTACT_PERSONS: FlowPolicy(allow_moves=True)}))
    linked_contact(world)
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS", IsPerson="false")
    world.sync()
    world.zd.edit(Kind.USER, "500", organization_id=world.org_of(CUSTOMERS, "2"))
    report = world.sync()
    (update,) = of_type(report.plan, Update)
    (change,) = update.changes  # type: ignore[attr-defined]
    # Explained in PowerOffice's terms on both sides: customer 1 before, customer 2 now.
    assert (change.property, change.value, change.base) == ("partyId", "2", "1")
    assert (change.poweroffice, change.zendesk) == ("1", "2")


def test_a_later_flow_matches_on_an_email_an_incremental_run_writes() -> None:
    world = World()
    linked_contact(world)
    world.po.put(Kind.CUSTOMER, 7, Name="Kari Nordmann", IsPerson="true", EmailAddress="kari@x.no")
    world.sync()
    assert world.store.state.table(PERSON_CUSTOMERS).for_poweroffice("7") is None
    # The contact person takes the person customer's address; the write to user 500 makes the
    # user match customer 7 in the person-customers flow within the same (incremental) run.
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="kari@x.no")
    report = world.sync()
    assert not report.full
    link = world.store.state.table(PERSON_CUSTOMERS).for_poweroffice("7")
    assert link is not None and link.zendesk_id == "500"


# -- the engine's bookkeeping ------------------------------------------------------------------


@pytest.mark.parametrize("target", [System.ZENDESK, System.POWEROFFICE])
def test_rule_6_a_write_answered_without_the_record_takes_the_written_value_as_base(
    target: System,
) -> None:
    state = SyncState().with_links(CUSTOMERS, [Link(CUSTOMERS, "1", "900", {"Name": "Old AS"})])
    key = (
        RecordKey.of(Kind.ORGANIZATION, "900")
        if target is System.ZENDESK
        else RecordKey.of(Kind.CUSTOMER, "1")
    )
    written = "New AS"
    po_value, zd_value = (written, "Old AS") if target is System.ZENDESK else ("Old AS", written)
    change = FieldChange(
        "name" if target is System.ZENDESK else "Name",
        written,
        "changed",
        "Old AS",
        po_value,
        zd_value,
        "Name",
    )
    update = Update(f"update:{CUSTOMERS}:{key}", CUSTOMERS, key, "1", (change,))
    folded = fold_results(state, Plan((update,)), [WriteResult(update.id)], DEFAULT_DATAFLOW)
    link = folded.table(CUSTOMERS).for_poweroffice("1")
    assert link is not None and link.base["Name"] == written


def test_rule_7_a_finished_run_leaves_no_open_intent_and_names_itself() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    report = world.sync()
    assert of_type(report.plan, Create)
    assert world.store.open_intents() == []
    assert isinstance(report.run_id, str) and len(report.run_id) >= 8
    assert world.sync().run_id != report.run_id


def test_rule_8_a_record_a_write_finds_gone_ends_its_link_on_the_next_run() -> None:
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="ola.ny@acme.no")

    def gone(write: WriteRequest) -> WriteError | None:
        return WriteError("record_not_found", "no such user", "zendesk:user:500")

    world.zd.refuse = gone
    first = world.sync()
    assert [f.item_id for f in first.failures] == ["update:contact-persons-users:zendesk:user:500"]
    world.zd.refuse = None
    ended = of_type(world.sync().plan, EndLink)
    assert [(e.gone.id, e.rule) for e in ended] == [("500", "inactive")]  # type: ignore[attr-defined]


def test_the_engine_tells_its_observer_each_step_of_a_run() -> None:
    events: list[tuple[str, Mapping[str, object]]] = []

    class Recorder:
        def event(self, name: str, data: Mapping[str, object]) -> None:
            events.append((name, data))

    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS", IsPerson="false")
    world.po.put(Kind.CUSTOMER, 4, Name="Delta AS", IsPerson="false")
    world.zd.refuse = lambda w: (
        WriteError("invalid", "refused", "org")
        if w.origin_key == "poweroffice:customer:2"
        else None
    )
    run_sync(world.po, world.zd, world.store, RunOptions(observer=Recorder()))
    names = [name for name, _ in events]
    assert names[0] == "read.start" and names[-1] == "run.done"
    assert {"read.done", "plan.done", "apply.start"} <= set(names)
    done = [data for name, data in events if name == "apply.done"]
    assert [(d["applied"], d["failed"]) for d in done] == [(2, 1)]
    # A run that finds an intent in doubt says how it settled it.
    world.po.put(Kind.CUSTOMER, 3, Name="Gamma AS", IsPerson="false")
    world.zd.refuse = None

    def crash(_: object) -> None:
        raise Crash

    world.zd.after_write = crash
    with pytest.raises(Crash):
        world.sync()
    world.zd.after_write = None
    events.clear()
    run_sync(world.po, world.zd, world.store, RunOptions(observer=Recorder()))
    assert ("reconcile.done", {"open": 2, "linked": 1}) in events


def test_rule_7_a_poweroffice_create_in_doubt_is_linked_the_right_way_round() -> None:
    # A flow that creates customers for agent-made organizations (the reverse of the default).
    flows = tuple(
        attrs.evolve(f, counterpart=Counterpart.BOTH) if f.id == CUSTOMERS else f
        for f in DEFAULT_DATAFLOW
    )
    world = World(dataflow=Dataflow(flows=flows))
    world.zd.put(Kind.ORGANIZATION, 900, name="Agent AS")

    def crash(_: object) -> None:
        raise Crash

    world.po.after_write = crash
    with pytest.raises(Crash):
        world.sync()
    world.po.after_write = None
    report = world.sync()
    assert report.reconciled == ("create:customers-organizations:zendesk:organization:900",)
    (customer_id,) = world.po.records[Kind.CUSTOMER]
    link = world.store.state.table(CUSTOMERS).for_zendesk("900")
    assert link is not None and link.poweroffice_id == customer_id
    # The created customer carries the organization's synced values, not only the link.
    assert world.po.records[Kind.CUSTOMER][customer_id].get("Name") == "Agent AS"


def test_rule_8_a_full_reconcile_comes_round_once_its_period_has_passed() -> None:
    world = World(policy=SyncPolicy(full_reconcile_every=timedelta(hours=24)))
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    start = datetime(2026, 6, 1, tzinfo=UTC)

    def sync_at(hours: float) -> bool:
        report = run_sync(
            world.po, world.zd, world.store, world.options(now=start + timedelta(hours=hours))
        )
        return report.full

    assert [sync_at(0), sync_at(1), sync_at(23.9), sync_at(24), sync_at(25)] == [
        True,
        False,
        False,
        True,
        False,
    ]


def test_a_counterpart_created_in_poweroffice_carries_the_synced_values_at_once() -> None:
    flows = tuple(
        attrs.evolve(f, counterpart=Counterpart.BOTH) if f.id == CUSTOMERS else f
        for f in DEFAULT_DATAFLOW
    )
    world = World(dataflow=Dataflow(flows=flows))
    world.zd.put(Kind.ORGANIZATION, 900, name="Agent AS")
    report = world.sync()
    (create,) = [c for c in of_type(report.plan, Create) if c.kind is Kind.CUSTOMER]  # type: ignore[attr-defined]
    assert create.fields == {"Name": "Agent AS"}  # type: ignore[attr-defined]


def test_rule_10_linking_an_ambiguity_by_hand_settles_only_that_ambiguity() -> None:
    def key(kind: Kind, rid: str) -> RecordKey:
        return RecordKey.of(kind, rid)

    mine = Ambiguity(
        "ambiguity:cp:ola",
        CONTACT_PERSONS,
        "ola@x.no",
        (key(Kind.CONTACT_PERSON, "100"), key(Kind.CONTACT_PERSON, "101"), key(Kind.USER, "500")),
    )
    other_flow = Ambiguity(
        "ambiguity:pc:ola",
        PERSON_CUSTOMERS,
        "ola@x.no",
        (key(Kind.CUSTOMER, "100"), key(Kind.CUSTOMER, "7"), key(Kind.USER, "500")),
    )
    unrelated = Ambiguity(
        "ambiguity:cp:kari",
        CONTACT_PERSONS,
        "kari@x.no",
        (key(Kind.CONTACT_PERSON, "102"), key(Kind.CONTACT_PERSON, "103"), key(Kind.USER, "501")),
    )
    state = SyncState(ambiguities=(mine, other_flow, unrelated))
    after = link_by_hand(state, CONTACT_PERSONS, "100", "500")
    assert after.ambiguities == (other_flow, unrelated)
    assert after.retry == {key(Kind.CONTACT_PERSON, "100"), key(Kind.USER, "500")}
    link = after.table(CONTACT_PERSONS).for_poweroffice("100")
    assert link is not None and link.zendesk_id == "500"
