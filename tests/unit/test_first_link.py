"""Decision 3b: a pair's first sync (no base yet), one test (at least) per rule.

On the in-memory fakes through the real engine, like test_rules.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.reportjson import item_json
from cli.config import ConfigError, load_settings
from cli.output import item_lines
from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS
from talkcore.plan import (
    AdvanceBase,
    Conflict,
    FirstLinkChoice,
    NewLink,
    ReferenceProblem,
    UnsupportedChange,
    Update,
)
from talkcore.policy import ConflictPolicy, FirstLinkPolicy, FlowPolicy, SyncPolicy
from talkcore.records import Kind, System
from talkcore.state import Link

from .world import World, of_type


def first_link(policy: FirstLinkPolicy, **more: object) -> SyncPolicy:
    """Every flow with ``first_link = policy`` (and any other flow settings given)."""
    return SyncPolicy(default=FlowPolicy(first_link=policy, **more))  # type: ignore[arg-type]


def base_of(world: World, flow: str, po_id: str) -> dict[str, object]:
    link = world.store.state.table(flow).for_poweroffice(po_id)
    assert link is not None, f"no link for {po_id} in {flow}"
    return dict(link.base)


def lived_in_org(world: World, *, zendesk_first: bool) -> None:
    """Customer 1 and a Zendesk organization talksync made for it once (its origin key), renamed
    since; ``zendesk_first``: the Zendesk record changed before PowerOffice's (clock order)."""
    seeds = [
        lambda: world.zd.put(
            Kind.ORGANIZATION, 900, name="Acme (old)", external_id="poweroffice:customer:1"
        ),
        lambda: world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false"),
    ]
    for seed in seeds if zendesk_first else reversed(seeds):
        seed()


def test_the_default_is_poweroffice() -> None:
    assert FlowPolicy().first_link is FirstLinkPolicy.POWEROFFICE
    assert SyncPolicy().for_flow(CONTACT_PERSONS).first_link is FirstLinkPolicy.POWEROFFICE


# -- values equal after normalisation ---------------------------------------------------------


def test_values_equal_after_normalisation_become_the_base() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress=" Ola@Acme.no", partyId="1")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola", organization_id="900")
    report = world.sync()
    assert not report.plan.writes() and not of_type(report.plan, FirstLinkChoice)
    advanced = {(a.flow, a.property): a for a in of_type(report.plan, AdvanceBase)}
    assert advanced[(CUSTOMERS, "Name")].rule == "first_link_equal"
    assert advanced[(CONTACT_PERSONS, "partyId")].value == "1"  # in PowerOffice terms
    assert base_of(world, CUSTOMERS, "1") == {"Name": "Acme AS"}
    assert base_of(world, CONTACT_PERSONS, "100") == {
        "emailAddress": "ola@acme.no",
        "partyId": "1",
    }
    assert world.sync(full=True).plan.items == ()


def test_both_sides_empty_becomes_an_empty_base_so_a_later_value_is_a_plain_change() -> None:
    world = World()
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId=None)
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola", organization_id=None)
    world.sync()
    assert base_of(world, CONTACT_PERSONS, "100") == {
        "emailAddress": "ola@acme.no",
        "partyId": None,
    }


def test_a_link_from_before_decision_3b_gets_its_missing_base_without_writes() -> None:
    """A state written before first_link existed holds only the identity value as base."""
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS")
    world.store.state = world.store.state.with_links(CUSTOMERS, [Link(CUSTOMERS, "1", "900", {})])
    report = world.sync(full=True)
    (advance,) = of_type(report.plan, AdvanceBase)
    assert advance.rule == "first_link_equal" and not report.plan.writes()
    assert world.sync(full=True).plan.items == ()


# -- values that differ: the policy decides ----------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "zendesk_first", "winner"),
    [
        (FirstLinkPolicy.POWEROFFICE, False, System.POWEROFFICE),  # even when Zendesk is newer
        (FirstLinkPolicy.ZENDESK, True, System.ZENDESK),  # even when PowerOffice is newer
        (FirstLinkPolicy.NEWEST, True, System.POWEROFFICE),
        (FirstLinkPolicy.NEWEST, False, System.ZENDESK),
    ],
)
def test_a_differing_value_is_seeded_by_the_first_link_policy_and_reported(
    policy: FirstLinkPolicy, zendesk_first: bool, winner: System
) -> None:
    world = World(policy=first_link(policy))
    lived_in_org(world, zendesk_first=zendesk_first)
    report = world.sync()
    (link,) = of_type(report.plan, NewLink)
    assert link.rule == "origin_key" and link.base == {}
    (choice,) = of_type(report.plan, FirstLinkChoice)
    assert (choice.poweroffice_value, choice.zendesk_value) == ("Acme AS", "Acme (old)")
    assert choice.winner is winner and choice.policy is policy
    assert choice.rule == f"first_link_{policy}"
    (update,) = of_type(report.plan, Update)
    assert update.target.system is not winner
    assert update.changes[0].rule == choice.rule
    expected = "Acme AS" if winner is System.POWEROFFICE else "Acme (old)"
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == expected
    assert world.orgs() == {"900": expected}
    assert base_of(world, CUSTOMERS, "1") == {"Name": expected}
    assert world.sync(full=True).plan.items == ()


def test_the_conflict_policy_does_not_decide_a_first_sync() -> None:
    policy = SyncPolicy(default=FlowPolicy(conflict=ConflictPolicy.ZENDESK))
    world = World(policy=policy)
    lived_in_org(world, zendesk_first=False)  # Zendesk newest too
    report = world.sync()
    assert not of_type(report.plan, Conflict)
    (choice,) = of_type(report.plan, FirstLinkChoice)
    assert choice.winner is System.POWEROFFICE
    assert world.orgs() == {"900": "Acme AS"}


def test_an_adopted_organization_is_a_first_sync_too() -> None:
    world = World(policy=first_link(FirstLinkPolicy.ZENDESK))
    world.po.put(Kind.CUSTOMER, 1, Name="ACME AS", IsPerson="false")
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS")
    report = world.sync()
    (link,) = of_type(report.plan, NewLink)
    assert link.rule == "adopt"
    (choice,) = of_type(report.plan, FirstLinkChoice)
    assert choice.winner is System.ZENDESK
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "Acme AS"


def test_after_the_first_sync_the_conflict_policy_applies() -> None:
    policy = SyncPolicy(
        default=FlowPolicy(conflict=ConflictPolicy.ZENDESK, first_link=FirstLinkPolicy.POWEROFFICE)
    )
    world = World(policy=policy)
    lived_in_org(world, zendesk_first=True)
    world.sync()
    world.po.edit(Kind.CUSTOMER, "1", Name="PO name")
    world.zd.edit(Kind.ORGANIZATION, "900", name="ZD name")
    report = world.sync()
    assert not of_type(report.plan, FirstLinkChoice)
    (conflict,) = of_type(report.plan, Conflict)
    assert conflict.base == "Acme AS" and conflict.winner is System.ZENDESK
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "ZD name"


# -- a value that cannot be written never wins -------------------------------------------------


def user_in_an_organization_no_flow_owns(world: World) -> None:
    """Customer 1 (its organization created this run) and contact person 100; the matching
    Zendesk user sits in organization 950, which no customer or department owns."""
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.ORGANIZATION, 950, name="Agents' own group")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola", organization_id="950")


@pytest.mark.parametrize("policy", list(FirstLinkPolicy))
def test_an_untranslatable_zendesk_organization_never_wins(policy: FirstLinkPolicy) -> None:
    world = World(policy=first_link(policy))
    user_in_an_organization_no_flow_owns(world)
    world.zd.edit(Kind.USER, "500", name="Ola N")  # Zendesk newest, for `newest`
    report = world.sync()
    (choice,) = of_type(report.plan, FirstLinkChoice)
    assert choice.property == "partyId" and choice.winner is System.POWEROFFICE
    assert (choice.poweroffice_value, choice.zendesk_value) == ("1", "950")
    assert choice.rule == "first_link_only_writable" and choice.policy is policy
    assert not of_type(report.plan, ReferenceProblem)
    org = world.org_of(CUSTOMERS, "1")
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == org
    assert base_of(world, CONTACT_PERSONS, "100")["partyId"] == "1"
    assert world.sync(full=True).plan.items == ()  # nothing is reported again


def test_an_untranslatable_poweroffice_party_never_wins_either() -> None:
    world = World(policy=SyncPolicy(flows={CONTACT_PERSONS: FlowPolicy(allow_moves=True)}))
    world.po.put(Kind.SUPPLIER, 7, Name="Leverandør AS")
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@beta.no", partyId="7")
    world.zd.put(Kind.ORGANIZATION, 900, name="Beta AS")
    world.zd.put(Kind.USER, 500, email="ola@beta.no", name="Ola", organization_id="900")
    report = world.sync()
    (choice,) = of_type(report.plan, FirstLinkChoice)
    assert choice.winner is System.ZENDESK and choice.rule == "first_link_only_writable"
    assert (choice.poweroffice_value, choice.zendesk_value) == ("7", "900")
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "2"
    assert world.sync(full=True).plan.items == ()


def test_a_winning_zendesk_party_is_still_a_move_when_moves_are_off() -> None:
    world = World()
    world.po.put(Kind.SUPPLIER, 7, Name="Leverandør AS")
    world.po.put(Kind.CUSTOMER, 2, Name="Beta AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@beta.no", partyId="7")
    world.zd.put(Kind.ORGANIZATION, 900, name="Beta AS")
    world.zd.put(Kind.USER, 500, email="ola@beta.no", name="Ola", organization_id="900")
    report = world.sync()
    (change,) = of_type(report.plan, UnsupportedChange)
    assert change.value == "2"
    assert not of_type(report.plan, FirstLinkChoice)  # nothing was replaced
    assert world.po.records[Kind.CONTACT_PERSON]["100"].get("partyId") == "7"


def test_when_neither_reference_translates_nothing_is_written() -> None:
    world = World()
    world.po.put(Kind.SUPPLIER, 7, Name="Leverandør AS")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@x.no", partyId="7")
    world.zd.put(Kind.ORGANIZATION, 950, name="Agents' own group")
    world.zd.put(Kind.USER, 500, email="ola@x.no", name="Ola", organization_id="950")
    report = world.sync()
    assert not report.plan.writes() and not of_type(report.plan, FirstLinkChoice)
    (problem,) = of_type(report.plan, ReferenceProblem)
    assert problem.record.system is System.POWEROFFICE and problem.rule == "party_is_supplier"
    assert world.zd.records[Kind.USER]["500"].get("organization_id") == "950"
    assert "partyId" not in base_of(world, CONTACT_PERSONS, "100")


@pytest.mark.parametrize("policy", list(FirstLinkPolicy))
def test_an_empty_value_never_wins_and_filling_it_is_no_replacement(
    policy: FirstLinkPolicy,
) -> None:
    world = World(policy=first_link(policy))
    world.zd.put(Kind.ORGANIZATION, 900, name="Acme AS", external_id="poweroffice:customer:1")
    world.po.put(Kind.CUSTOMER, 1, Name=None, IsPerson="false")
    report = world.sync()
    (update,) = of_type(report.plan, Update)
    assert update.target.system is System.POWEROFFICE
    assert update.changes[0].rule == "first_link_only_writable"
    assert not of_type(report.plan, FirstLinkChoice)
    assert world.po.records[Kind.CUSTOMER]["1"].get("Name") == "Acme AS"
    assert world.sync(full=True).plan.items == ()


def test_an_organization_no_flow_owns_is_not_let_go_of() -> None:
    # The user is put in the customer's organization; the organization it sat in is no
    # flow's, so the write does not release it (Zendesk keeps that membership).
    world = World()
    user_in_an_organization_no_flow_owns(world)
    world.sync()
    (write,) = [w for w in world.zd.applied if w.kind is Kind.USER]
    assert write.fields == {"organization_id": world.org_of(CUSTOMERS, "1")}
    assert write.current.get("organization_id") == "950"
    assert write.releases == {}


# -- reported with both sides ------------------------------------------------------------------


def test_a_replaced_value_is_explained_and_described_with_both_sides() -> None:
    world = World()
    user_in_an_organization_no_flow_owns(world)
    (choice,) = of_type(world.plan().plan, FirstLinkChoice)
    data = item_json(choice)
    assert data["type"] == "first_link"
    assert (data["poweroffice_value"], data["zendesk_value"]) == ("1", "950")
    assert (data["winner"], data["policy"], data["rule"]) == (
        "poweroffice",
        "poweroffice",
        "first_link_only_writable",
    )
    (line,) = item_lines(choice, explain=True)
    assert "poweroffice '1', zendesk '950': poweroffice wins" in line


# -- configuration -----------------------------------------------------------------------------


def test_first_link_is_set_per_flow_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "talksync.toml"
    path.write_text(f'[flows.{CUSTOMERS}]\nfirst_link = "zendesk"\n', encoding="utf-8")
    policy = load_settings(path, {}).policy
    assert policy.for_flow(CUSTOMERS).first_link is FirstLinkPolicy.ZENDESK
    assert policy.for_flow(CONTACT_PERSONS).first_link is FirstLinkPolicy.POWEROFFICE


def test_a_bad_first_link_value_names_the_key_and_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "talksync.toml"
    path.write_text(f'[flows.{CUSTOMERS}]\nfirst_link = "manual"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    message = str(caught.value)
    assert f"flows.{CUSTOMERS}.first_link" in message
    assert "'poweroffice', 'zendesk', 'newest'" in message and "'manual'" in message


# -- the law -------------------------------------------------------------------------------------

_NAMES = st.sampled_from(["Acme AS", "acme as", " Acme AS ", "Beta AS", None])


@given(
    policy=st.sampled_from(list(FirstLinkPolicy)),
    po_name=_NAMES,
    zd_name=_NAMES,
    in_owned_org=st.booleans(),
    zendesk_first=st.booleans(),
)
def test_one_first_sync_reaches_the_fixpoint_and_never_keeps_an_untranslatable_reference(
    policy: FirstLinkPolicy,
    po_name: str | None,
    zd_name: str | None,
    in_owned_org: bool,
    zendesk_first: bool,
) -> None:
    world = World(policy=first_link(policy))
    world.po.put(Kind.CUSTOMER, 2, Name="Gamma AS", IsPerson="false")
    seeds = [
        lambda: world.zd.put(
            Kind.ORGANIZATION, 900, name=zd_name, external_id="poweroffice:customer:1"
        ),
        lambda: world.zd.put(Kind.ORGANIZATION, 950, name="Agents' own group"),
        lambda: world.zd.put(
            Kind.USER, 500, email="ola@x.no", organization_id="900" if in_owned_org else "950"
        ),
        lambda: world.po.put(Kind.CUSTOMER, 1, Name=po_name, IsPerson="false"),
        lambda: world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@x.no", partyId="2"),
    ]
    for seed in seeds if zendesk_first else reversed(seeds):
        seed()
    world.sync()
    # A reference to an organization no flow owns is replaced, whatever the policy.
    assert world.zd.records[Kind.USER]["500"].get("organization_id") != "950"
    second = world.sync(full=True)
    assert second.plan.changes() == [], second.plan.changes()
    assert not of_type(second.plan, FirstLinkChoice)
    assert not of_type(second.plan, ReferenceProblem)
