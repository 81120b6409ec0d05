"""A new property or a new flow is a change to the dataflow only (docs/extending.md).

Two fixture dataflows, built here and nowhere else, run the laws of ``test_properties``
(fixpoint, convergence, no duplicates, incremental = full) with no change to planning, state or
the engine:

- ``WITH_WEBSITE``: one more synced property on customers ⇄ organizations;
- ``WITH_SUPPLIERS``: a fifth flow shaped like customers → organizations, and a contact
  person's party that may be a customer *or* a supplier.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from talkcore.dataflow import (
    CONTACT_PERSONS,
    CUSTOMERS,
    DEFAULT_DATAFLOW,
    Counterpart,
    Dataflow,
    Flow,
    PropertyMap,
    Reference,
    Role,
)
from talkcore.plan import Create, ReferenceProblem, Update
from talkcore.records import Kind

from . import test_properties as laws
from .world import World, of_type

WEBSITE = PropertyMap("WebsiteUrl", "details")
SUPPLIERS = "suppliers-organizations"


def _with_property(dataflow: Dataflow, flow_id: str, prop: PropertyMap) -> Dataflow:
    flows = tuple(
        attrs.evolve(f, properties=(*f.properties, prop)) if f.id == flow_id else f
        for f in dataflow
    )
    return Dataflow(flows)


WITH_WEBSITE = _with_property(DEFAULT_DATAFLOW, CUSTOMERS, WEBSITE)


def _with_suppliers(dataflow: Dataflow) -> Dataflow:
    customers = dataflow.flow(CUSTOMERS)
    suppliers = Flow(
        id=SUPPLIERS,
        poweroffice_kind=Kind.SUPPLIER,
        zendesk_kind=Kind.ORGANIZATION,
        identity=None,
        properties=(PropertyMap("Name", "name", role=Role.NAME),),
        counterpart=Counterpart.ZENDESK,
        poweroffice_title="Supplier",
        zendesk_title="Organization",
        zendesk_origin_field="external_id",
    )
    party = Reference((CUSTOMERS, SUPPLIERS), names="party")
    flows: list[Flow] = []
    for flow in dataflow:
        if flow.id == CONTACT_PERSONS:
            flow = attrs.evolve(
                flow,
                properties=tuple(
                    attrs.evolve(p, reference=party) if p.is_reference else p
                    for p in flow.properties
                ),
            )
        flows.append(flow)
        if flow is customers:
            flows.append(suppliers)
    return Dataflow(tuple(flows))


WITH_SUPPLIERS = _with_suppliers(DEFAULT_DATAFLOW)

URLS = ["acme.no", " acme.no", "beta.no", "", None]

EXTRA_EDIT = st.one_of(
    laws.EDIT,
    st.tuples(st.just("website"), st.integers(1, 8), st.sampled_from(URLS)),
    st.tuples(st.just("org_details"), st.integers(0, 10), st.sampled_from(URLS)),
    st.tuples(st.just("rename_supplier"), st.integers(50, 52), st.sampled_from(laws.NAMES)),
)

EXTRA_WORLD = st.fixed_dictionaries(
    {
        "world": laws.WORLD,
        "websites": st.dictionaries(st.integers(1, 8), st.sampled_from(URLS), max_size=6),
        "suppliers": st.dictionaries(st.integers(50, 52), st.sampled_from(laws.NAMES), max_size=3),
    }
)


def build(data: dict[str, Any], policy: laws.ConflictPolicy, dataflow: Dataflow) -> World:
    world = laws.world_from(data["world"], policy, dataflow)
    for cid, url in data["websites"].items():
        if str(cid) in world.po.records.get(Kind.CUSTOMER, {}):
            world.po.edit(Kind.CUSTOMER, str(cid), WebsiteUrl=url)
    for sid, name in data["suppliers"].items():
        world.po.put(Kind.SUPPLIER, sid, Name=name)
    return world


def edit(world: World, op: laws.Edit) -> None:
    name, target, value = op
    if name == "website" and str(target) in world.po.records.get(Kind.CUSTOMER, {}):
        world.po.edit(Kind.CUSTOMER, str(target), WebsiteUrl=value)
    elif name == "org_details" and (oid := laws.nth(world.zd, Kind.ORGANIZATION, target)):
        world.zd.edit(Kind.ORGANIZATION, oid, details=value)
    elif name == "rename_supplier" and str(target) in world.po.records.get(Kind.SUPPLIER, {}):
        world.po.edit(Kind.SUPPLIER, str(target), Name=value)
    else:
        laws.edit(world, op)


DATAFLOWS = pytest.mark.parametrize(
    "dataflow", [WITH_WEBSITE, WITH_SUPPLIERS], ids=["extra-property", "second-org-flow"]
)


@DATAFLOWS
@given(EXTRA_WORLD, laws.policies, st.lists(EXTRA_EDIT, max_size=8))
def test_fixpoint_convergence_and_no_duplicates_hold_for_an_extended_dataflow(
    dataflow: Dataflow,
    data: dict[str, Any],
    policy: laws.ConflictPolicy,
    edits: list[laws.Edit],
) -> None:
    laws.check_fixpoint_convergence_and_no_duplicates(build(data, policy, dataflow), edits, edit)


@DATAFLOWS
@given(EXTRA_WORLD, laws.policies, st.lists(EXTRA_EDIT, min_size=1, max_size=8))
def test_incremental_plan_equals_the_full_plan_for_an_extended_dataflow(
    dataflow: Dataflow,
    data: dict[str, Any],
    policy: laws.ConflictPolicy,
    edits: list[laws.Edit],
) -> None:
    laws.check_incremental_plan_equals_the_full_plan(build(data, policy, dataflow), edits, edit)


def test_a_new_organization_gets_every_synced_value_on_the_first_sync() -> None:
    world = World(dataflow=WITH_WEBSITE)
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false", WebsiteUrl=" acme.no ")
    (create,) = of_type(world.sync().plan, Create)
    assert create.fields == {"name": "Acme AS", "details": "acme.no"}  # type: ignore[attr-defined]
    (org,) = world.zd.records[Kind.ORGANIZATION].values()
    assert org.get("details") == "acme.no"
    assert world.sync().plan.changes() == []


def test_the_extra_property_syncs_both_ways_once_linked() -> None:
    world = World(dataflow=WITH_WEBSITE)
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false", WebsiteUrl="acme.no")
    world.sync()
    (oid,) = world.zd.records[Kind.ORGANIZATION]
    world.zd.edit(Kind.ORGANIZATION, oid, details="acme.com")
    (update,) = of_type(world.sync().plan, Update)
    assert [(c.property, c.value) for c in update.changes] == [("WebsiteUrl", "acme.com")]  # type: ignore[attr-defined]
    assert world.po.records[Kind.CUSTOMER]["1"].get("WebsiteUrl") == "acme.com"


def test_a_reference_into_either_flow_translates_through_the_one_that_links_it() -> None:
    world = World(dataflow=WITH_SUPPLIERS)
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.SUPPLIER, 50, Name="Leverandør AS")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.po.put(Kind.CONTACT_PERSON, 101, emailAddress="kari@lev.no", partyId="50")
    world.zd.put(Kind.USER, 500, email="ola@acme.no")
    world.zd.put(Kind.USER, 501, email="kari@lev.no")
    report = world.sync()
    assert of_type(report.plan, ReferenceProblem) == []
    users = world.zd.records[Kind.USER]
    assert users["500"].get("organization_id") == world.org_of(CUSTOMERS, "1")
    assert users["501"].get("organization_id") == world.org_of(SUPPLIERS, "50")
    assert world.sync().plan.changes() == []


def test_a_kind_that_refers_through_two_fields_is_refused() -> None:
    """The stores index one reference field per kind (who refers to a record whose link ends)."""
    flows = list(DEFAULT_DATAFLOW)
    contacts = DEFAULT_DATAFLOW.flow(CONTACT_PERSONS)
    (party,) = contacts.references
    second = attrs.evolve(party, poweroffice="departmentId", zendesk="default_group_id")
    flows[flows.index(contacts)] = attrs.evolve(contacts, properties=(*contacts.properties, second))
    with pytest.raises(ValueError, match="refers through one field"):
        Dataflow(tuple(flows))


def test_a_dataflow_whose_reference_points_into_a_later_flow_is_refused() -> None:
    flows = list(WITH_SUPPLIERS)
    suppliers = flows.pop(1)
    with pytest.raises(ValueError, match="not a flow before it"):
        Dataflow((*flows, suppliers))
