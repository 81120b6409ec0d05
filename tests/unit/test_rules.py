"""One test (at least) per rule of docs/semantics.md, on the in-memory fakes and the real engine."""

from __future__ import annotations

import pytest

from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS, DEPARTMENTS, PERSON_CUSTOMERS
from talkcore.plan import (
    AdvanceBase,
    Ambiguity,
    Conflict,
    Create,
    Delete,
    DeleteCapReached,
    EndLink,
    InvalidValue,
    NameCollision,
    NewLink,
    ReferenceProblem,
    UnsupportedChange,
    Update,
)
from talkcore.policy import ConflictPolicy, FlowPolicy, NameCollisionPolicy, SyncPolicy
from talkcore.records import Kind, System
from talkcore.state import resolve_conflict

from .world import Crash, World, linked_contact, of_type

# -- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("po_email", "zd_email", "links"),
    [
        ("  Ola@Acme.NO ", "ola@acme.no", True),  # trim and case-fold
        ("ole\u0301@acme.no", "ol\u00e9@acme.no", True),  # Unicode NFC
        ("ola@acme.no", "kari@acme.no", False),
        ("", "", False),  # empty never matches
        (None, None, False),
    ],
)
def test_identity_matching_normalises(
    po_email: str | None, zd_email: str | None, links: bool
) -> None:
    world = World()
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress=po_email)
    world.zd.records.setdefault(Kind.USER, {})
    world.zd.put(Kind.USER, 500, email=zd_email, name="U")
    report = world.sync()
    assert bool(of_type(report.plan, NewLink)) is links


def test_two_contact_persons_sharing_an_email_are_an_ambiguity_not_a_link() -> None:
    world = World()
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no")
    world.po.put(Kind.CONTACT_PERSON, 101, emailAddress="OLA@acme.no")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    report = world.sync()
    assert not of_type(report.plan, NewLink)
    (amb,) = of_type(report.plan, Ambiguity)
    assert {str(c) for c in amb.candidates} == {
        "poweroffice:contact_person:100",
        "poweroffice:contact_person:101",
        "zendesk:user:500",
    }
    assert world.store.state.ambiguities == (amb,)


def test_a_user_may_be_linked_in_flow_1_and_flow_2_at_once() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 2, Name="Kari Nordmann", IsPerson="true", EmailAddress="kari@x.no")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="kari@x.no", partyId="2")
    world.zd.put(Kind.USER, 500, email="kari@x.no", name="Kari")
    world.sync()
    assert world.org_of(PERSON_CUSTOMERS, "2") == "500"
    assert world.org_of(CONTACT_PERSONS, "100") == "500"


def test_a_non_person_customer_is_not_matched_to_a_user() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 2, Name="Acme", IsPerson="false", EmailAddress="post@acme.no")
    world.zd.put(Kind.USER, 500, email="post@acme.no", name="Post")
    world.sync()
    assert world.store.state.table(PERSON_CUSTOMERS).for_poweroffice("2") is None


def test_linked_pairs_stay_linked_by_id_when_emails_change() -> None:
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="ola.new@acme.no")
    world.sync()
    assert world.org_of(CONTACT_PERSONS, "100") == "500"
    assert world.zd.records[Kind.USER]["500"].get("email") == "ola.new@acme.no"


# -- three-way merge ------------------------------------------------------------------------


def test_only_poweroffice_moved_copies_to_zendesk() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Holding AS")
    report = world.sync()
    (update,) = of_type(report.plan, Update)
    assert update.changes[0].rule == "poweroffice_changed"
    assert world.orgs()[world.org_of(CUSTOMERS, "1")] == "Acme Holding AS"


def test_only_zendesk_moved_copies_to_poweroffice() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    world.zd.edit(Kind.ORGANIZATION, world.org_of(CUSTOMERS, "1"), name="Acme Norge AS")
    report = world.sync()
    (update,) = of_type(report.plan, Update)
    assert update.target.system is System.POWEROFFICE
    assert update.changes[0].rule == "zendesk_changed"
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "Acme Norge AS"


def test_both_moved_to_the_same_value_only_advances_the_base() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    world.po.edit(Kind.CUSTOMER, "1", Name="Same AS")
    world.zd.edit(Kind.ORGANIZATION, world.org_of(CUSTOMERS, "1"), name="Same AS")
    report = world.sync()
    assert [type(i) for i in report.plan] == [AdvanceBase]
    link = world.store.state.table(CUSTOMERS).for_poweroffice("1")
    assert link is not None and link.base["Name"] == "Same AS"
    assert world.sync().plan.changes() == []


def conflicting_edit(world: World, *, zendesk_last: bool) -> None:
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    org = world.org_of(CUSTOMERS, "1")
    if zendesk_last:
        world.po.edit(Kind.CUSTOMER, "1", Name="PO name")
        world.zd.edit(Kind.ORGANIZATION, org, name="ZD name")
    else:
        world.zd.edit(Kind.ORGANIZATION, org, name="ZD name")
        world.po.edit(Kind.CUSTOMER, "1", Name="PO name")


@pytest.mark.parametrize(
    ("policy", "zendesk_last", "expected", "winner"),
    [
        (ConflictPolicy.NEWEST, True, "ZD name", System.ZENDESK),
        (ConflictPolicy.NEWEST, False, "PO name", System.POWEROFFICE),
        (ConflictPolicy.POWEROFFICE, True, "PO name", System.POWEROFFICE),
        (ConflictPolicy.ZENDESK, False, "ZD name", System.ZENDESK),
    ],
)
def test_conflicts_are_decided_by_policy_and_recorded(
    policy: ConflictPolicy, zendesk_last: bool, expected: str, winner: System
) -> None:
    world = World(policy=SyncPolicy(default=FlowPolicy(conflict=policy)))
    conflicting_edit(world, zendesk_last=zendesk_last)
    report = world.sync()
    (conflict,) = of_type(report.plan, Conflict)
    assert (conflict.poweroffice_value, conflict.zendesk_value) == ("PO name", "ZD name")
    assert conflict.base == "Acme AS" and conflict.winner is winner and conflict.policy is policy
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == expected
    assert world.orgs()[world.org_of(CUSTOMERS, "1")] == expected
    assert world.sync().plan.changes() == []


def test_newest_tie_goes_to_poweroffice() -> None:
    from datetime import UTC, datetime

    from talkcore.merging import newest

    same = datetime(2026, 1, 1, tzinfo=UTC)
    assert newest(same, same) is System.POWEROFFICE
    assert newest(None, None) is System.POWEROFFICE


def test_manual_policy_holds_the_conflict_until_a_person_picks() -> None:
    world = World(policy=SyncPolicy(default=FlowPolicy(conflict=ConflictPolicy.MANUAL)))
    conflicting_edit(world, zendesk_last=True)
    report = world.sync()
    (conflict,) = of_type(report.plan, Conflict)
    assert conflict.winner is None and not report.plan.writes()
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "PO name"
    assert list(world.store.state.conflicts) == [conflict.key]
    world.store.state = resolve_conflict(world.store.state, conflict.key, System.POWEROFFICE)
    world.sync()
    assert world.orgs()[world.org_of(CUSTOMERS, "1")] == "PO name"
    assert world.store.state.conflicts == {} and world.store.state.resolutions == {}
    assert world.sync().plan.changes() == []


# -- references -------------------------------------------------------------------------------


def test_reference_is_written_as_the_linked_organization() -> None:
    world = World()
    linked_contact(world)
    org = world.org_of(CUSTOMERS, "1")
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == org


def test_user_whose_organization_is_created_in_the_same_run_gets_the_new_id() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    plan = world.plan().plan
    kinds = [type(i).__name__ for i in plan.writes()]
    assert kinds == ["Create", "Update"]  # organizations before users
    report = world.sync()
    assert not report.failures
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == world.org_of(CUSTOMERS, "1")


@pytest.mark.parametrize(
    ("setup", "rule"),
    [
        ("supplier", "party_is_supplier"),
        ("no_org", "customer_has_no_organization"),
        ("unknown", "party_unknown"),
    ],
)
def test_untranslatable_reference_leaves_the_field_and_reports(setup: str, rule: str) -> None:
    policy = SyncPolicy(flows={CUSTOMERS: FlowPolicy(create=False)})
    world = World(policy=policy)
    if setup == "supplier":
        world.po.put(Kind.SUPPLIER, 7, Name="Leverandør AS")
    if setup == "no_org":
        world.po.put(Kind.CUSTOMER, 7, Name="Acme")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="7")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola", organization_id=None)
    report = world.sync()
    (problem,) = of_type(report.plan, ReferenceProblem)
    assert problem.rule == rule and problem.value == "7"
    assert world.zd.records[Kind.USER]["500"].get("organization_id") is None


def test_zendesk_org_linked_to_a_department_is_not_written_as_a_party() -> None:
    world = World()
    linked_contact(world)
    world.po.put(Kind.DEPARTMENT, 10, Name="Oslo")
    world.sync()
    dept_org = world.org_of(DEPARTMENTS, "10")
    world.zd.edit(Kind.USER, "500", organization_id=dept_org)
    report = world.sync()
    (problem,) = of_type(report.plan, ReferenceProblem)
    assert problem.rule == f"organization_linked_in_{DEPARTMENTS}"
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "1"


def test_moving_a_user_to_another_customers_org_is_an_unsupported_change() -> None:
    world = World()
    linked_contact(world)
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS")
    world.sync()
    world.zd.edit(Kind.USER, "500", organization_id=world.org_of(CUSTOMERS, "2"))
    report = world.sync()
    (change,) = of_type(report.plan, UnsupportedChange)
    assert change.value == "2" and change.property == "partyId"
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "1"


def test_a_move_lets_go_only_of_the_organization_the_flow_owned() -> None:
    world = World()
    linked_contact(world)
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS")
    world.sync()
    owned = world.org_of(CUSTOMERS, "1")
    world.po.edit(Kind.CONTACT_PERSON, "100", partyId="2")
    world.zd.applied.clear()
    world.sync()
    (write,) = world.zd.applied
    assert write.fields == {"organization_id": world.org_of(CUSTOMERS, "2")}
    assert write.releases == {"organization_id": owned}


def test_moves_are_planned_as_updates_when_enabled() -> None:
    world = World(policy=SyncPolicy(flows={CONTACT_PERSONS: FlowPolicy(allow_moves=True)}))
    linked_contact(world)
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS")
    world.sync()
    world.zd.edit(Kind.USER, "500", organization_id=world.org_of(CUSTOMERS, "2"))
    world.sync()
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "2"
    assert world.sync().plan.changes() == []


# -- organization names -------------------------------------------------------------------


def test_unlinked_holder_of_the_name_is_adopted_when_unambiguous() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.zd.put(Kind.ORGANIZATION, 900, name="  acme as ")
    report = world.sync()
    (link,) = of_type(report.plan, NewLink)
    assert link.rule == "adopt" and link.zendesk.id == "900"
    assert not of_type(report.plan, Create)
    assert world.orgs() == {"900": "Acme AS"}  # PowerOffice's spelling then flows across


def test_name_carried_by_a_customer_and_a_department_is_a_collision() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Oslo")
    world.po.put(Kind.DEPARTMENT, 10, Name="Oslo")
    world.zd.put(Kind.ORGANIZATION, 900, name="Oslo")
    report = world.sync()
    collisions = of_type(report.plan, NameCollision)
    assert {c.record.id for c in collisions} == {"1", "10"}
    assert all(str(c.holder) == "zendesk:organization:900" for c in collisions)
    assert len(world.orgs()) == 1


def test_two_new_organizations_with_one_name_create_once_and_report_the_other() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Oslo")
    world.po.put(Kind.DEPARTMENT, 10, Name="OSLO")
    report = world.sync()
    (collision,) = of_type(report.plan, NameCollision)
    assert collision.record.id == "10" and collision.rule == "name_planned"
    assert list(world.orgs().values()) == ["Oslo"]


def test_adoption_can_be_turned_off() -> None:
    world = World(policy=SyncPolicy(name_collision=NameCollisionPolicy.REPORT))
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS")
    report = world.sync()
    assert of_type(report.plan, NameCollision) and not of_type(report.plan, NewLink)


def test_renaming_onto_a_taken_name_is_a_collision() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS")
    world.sync()
    world.po.edit(Kind.CUSTOMER, "2", Name="ACME AS")
    report = world.sync()
    (collision,) = of_type(report.plan, NameCollision)
    assert collision.rule == "rename_name_taken" and collision.record.id == "2"
    assert sorted(world.orgs().values()) == ["Acme AS", "Beta AS"]


def test_agent_created_organization_creates_no_customer() -> None:
    world = World()
    world.zd.put(Kind.ORGANIZATION, 900, name="Agent's org")
    report = world.sync()
    assert not report.plan.writes() and Kind.CUSTOMER not in world.po.records


def test_every_customer_and_department_gets_an_organization() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.po.put(Kind.DEPARTMENT, 10, Name="Bergen")
    world.sync()
    assert sorted(world.orgs().values()) == ["Acme AS", "Bergen"]
    org = world.zd.records[Kind.ORGANIZATION][world.org_of(CUSTOMERS, "1")]
    assert org.get("external_id") == "poweroffice:customer:1"


def test_invalid_name_is_reported_naming_record_and_field() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="x" * 10_000)
    world.po.put(Kind.CUSTOMER, 2, Name="Fine AS")
    report = world.sync()
    (invalid,) = of_type(report.plan, InvalidValue)
    assert str(invalid.record) == "poweroffice:customer:1" and invalid.property == "Name"
    assert list(world.orgs().values()) == ["Fine AS"]


def test_invalid_email_is_not_written() -> None:
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="not-an-email")
    report = world.sync()
    (invalid,) = of_type(report.plan, InvalidValue)
    assert invalid.property == "emailAddress"
    assert world.zd.records[Kind.USER]["500"].get("email") == "ola@acme.no"


# -- echo suppression, idempotent creation ---------------------------------------------------


def test_value_reformatted_by_zendesk_does_not_bounce_back() -> None:
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CONTACT_PERSON, "100", emailAddress="  Ola.Ny@Acme.no ")
    world.sync()
    assert world.zd.records[Kind.USER]["500"].get("email") == "ola.ny@acme.no"
    assert world.sync().plan.changes() == []
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("emailAddress") == "  Ola.Ny@Acme.no "


def test_crash_after_a_create_links_it_on_the_next_run_instead_of_creating_again() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")

    def crash(_: object) -> None:
        raise Crash

    world.zd.after_write = crash
    with pytest.raises(Crash):
        world.sync()
    world.zd.after_write = None
    assert world.store.open_intents()  # journaled, never settled
    report = world.sync()
    assert report.reconciled == ("create:customers-organizations:1",)
    assert not of_type(report.plan, Create)
    assert list(world.orgs().values()) == ["Acme AS"]
    assert world.store.open_intents() == []  # settled: the next run looks for nothing


def test_orphan_created_record_is_found_by_origin_key_even_without_a_journal() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme", external_id="poweroffice:customer:1")
    report = world.sync()
    (link,) = of_type(report.plan, NewLink)
    assert link.rule == "origin_key"
    assert world.orgs() == {"900": "Acme AS"}


# -- deletes -----------------------------------------------------------------------------------


def test_deleted_record_ends_the_link_and_leaves_the_other_side() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    world.po.remove(Kind.CUSTOMER, "1")
    report = world.sync(full=True)
    (end,) = of_type(report.plan, EndLink)
    assert end.rule == "deleted" and str(end.gone) == "poweroffice:customer:1"
    assert len(world.orgs()) == 1
    assert len(world.store.state.table(CUSTOMERS)) == 0


def test_inactive_record_ends_the_link_on_an_incremental_read() -> None:
    world = World()
    linked_contact(world)
    world.zd.deactivate(Kind.USER, "500")
    report = world.sync()
    (end,) = of_type(report.plan, EndLink)
    assert end.rule == "inactive" and not report.plan.writes()


def test_absence_after_an_incremental_read_is_not_a_delete() -> None:
    from talkcore.planning import plan_changes
    from talkcore.records import Snapshot

    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    partial = Snapshot(System.POWEROFFICE, {}, frozenset())  # nothing read completely
    zd = world.zd.snapshot()
    plan = plan_changes(partial, zd, world.store.state, world.dataflow, world.policy)
    assert not of_type(plan, EndLink)


def test_delete_propagation_is_opt_in_and_capped() -> None:
    flows = {CUSTOMERS: FlowPolicy(propagate_deletes=True, delete_cap=0.5)}
    world = World(policy=SyncPolicy(flows=flows))
    for i in range(1, 5):
        world.po.put(Kind.CUSTOMER, i, Name=f"Kunde {i}")
    world.sync()
    world.po.remove(Kind.CUSTOMER, "1")
    report = world.sync(full=True)
    assert len(of_type(report.plan, Delete)) == 1 and len(world.orgs()) == 3
    for i in (2, 3, 4):
        world.po.remove(Kind.CUSTOMER, str(i))
    report = world.sync(full=True)
    assert of_type(report.plan, DeleteCapReached) and not of_type(report.plan, Delete)
    assert len(world.orgs()) == 3


def test_deletes_are_not_propagated_by_default() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    world.po.remove(Kind.CUSTOMER, "1")
    report = world.sync(full=True)
    assert not of_type(report.plan, Delete) and len(world.orgs()) == 1


def test_rule_5_renames_along_a_chain_of_names_all_go_through_in_one_run() -> None:
    """Each rename takes the name the next one frees: the claims settle to a fixed point and
    each write is sent after the write freeing its name (semantics.md, decision 5)."""
    world = World()
    for cid, name in ((1, "Alfa"), (2, "Beta"), (3, "Gamma")):
        world.po.put(Kind.CUSTOMER, cid, Name=name, IsPerson="false")
    world.sync()
    for cid, name in (("1", "Beta"), ("2", "Gamma"), ("3", "Delta")):
        world.po.edit(Kind.CUSTOMER, cid, Name=name)
    report = world.sync()
    assert of_type(report.plan, NameCollision) == [] and report.failures == []
    assert sorted(world.orgs().values()) == ["Beta", "Delta", "Gamma"]
    assert world.sync().plan.changes() == []


def test_rule_5_two_organizations_cannot_swap_names_in_one_run() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Alfa", IsPerson="false")
    world.po.put(Kind.CUSTOMER, 2, Name="Beta", IsPerson="false")
    world.sync()
    world.po.edit(Kind.CUSTOMER, "1", Name="Beta")
    world.po.edit(Kind.CUSTOMER, "2", Name="Alfa")
    report = world.sync()
    collisions = of_type(report.plan, NameCollision)
    assert sorted(c.rule for c in collisions) == ["rename_name_taken"] * 2  # type: ignore[attr-defined]
    assert report.plan.writes() == []
