"""Planning: one pure function from two snapshots, the link state, the dataflow and the policy to
a ``Plan`` — new links, creates, updates, conflicts, collisions and problems, each with its reason.

Theory of operation
===================

The rules are stated in ``docs/semantics.md``; this is how the code applies them.

A plan is built by a **pipeline of phases** (``pipeline``). Each phase is a pure function: it
takes the ``Inputs`` (snapshots, state, dataflow, policy, focus — never changed) and a
``Context`` (what the phases before decided that later ones must respect) and returns a
``Step``: its items and the next context. The context holds

- the links this plan makes and the records it creates, per flow (references and later flows
  translate through them),
- the unique values (organization names, e-mails) claimed or freed so far,
- the values this plan writes, per record (a later flow matches on values as they will be),
- the links this plan ends, the records a counterpart is created for,
- the linked pairs waiting to be merged.

The phases, in order:

1. **end links** — a linked record deleted, deactivated or no longer in its flow ends its link
   (and its counterpart is deleted, when that is enabled and under the cap);
2. **settle** the pairs of the flows that refer to no other flow: their renames free names
   before any create claims one;
3. for each flow in dataflow order:
   a. **link new pairs** — by identity, by origin key, by adopting the organization of the same
      name, or by planning a create (which claims its unique values);
   b. **settle** the flow's waiting pairs: the new ones, and for a flow that refers to others
      its existing ones too, now that the flows it refers to have their links and creates.

**Settling** merges every synced property of every waiting pair (``merging``'s decision table)
and is a **fixed point** over claims: a rename or an e-mail change can claim a value another
pair of the same batch frees. Merged once, such a claim succeeds or fails by which pair comes
first; so the batch is merged again over the claims and frees of the pass before, until a pass
refuses nothing or changes no claim. Only the last pass's items and writes are kept, and a
write whose claim a free made possible is ordered after the write that frees it.

The dataflow says what each property is (``PropertyMap.role``, ``reference``); nothing here
compares property names or kinds.

Where the steps live: the phases and ending links here; the context and a phase's working
copy (``Draft``) in ``context``; identity matching in ``linking``; origin keys, adoption and
creates in ``counterparts``; the merge of a pair in ``settling``, after ``merging``'s table.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping

import attrs

from talkcore.context import Context, Draft, Inputs, Pair, Phase, Step, id_order
from talkcore.counterparts import carrier_spec, counterparts_in_poweroffice, counterparts_in_zendesk
from talkcore.dataflow import Dataflow, Flow, PropertyMap, Role
from talkcore.linking import link_by_identity
from talkcore.plan import Delete, DeleteCapReached, EndLink, Plan, PlanItem
from talkcore.policy import FlowPolicy, SyncPolicy
from talkcore.records import IndexSpec, Record, RecordKey, Snapshot, System
from talkcore.settling import merge_pair
from talkcore.state import Link, LinkTable, SyncState
from talkcore.values import INDEX_KEYS, UNIQUE_KEYS, origin_index_key


def plan_changes(
    poweroffice: Snapshot,
    zendesk: Snapshot,
    state: SyncState,
    dataflow: Dataflow,
    policy: SyncPolicy,
    *,
    focus: Collection[RecordKey] | None = None,
    link_counts: Mapping[str, int] | None = None,
) -> Plan:
    """Plan one sync run. Pure: the same inputs always give the same plan.

    ``focus`` (incremental planning) names the records that changed since the last plan, plus
    those the last run reported on or failed to write; only they and their links are planned,
    using the snapshots' indexes, so the cost follows the changes, not the mirrors' size. The
    result is the full plan's, provided the focus holds every record whose plan could differ.

    With ``link_counts``, the snapshots and ``state`` may hold only the records and links the
    focus touches (a working set read through a mirror view, ``talkcore.view``); the counts
    are every flow's number of links, which the delete cap is a share of.
    """
    inputs = Inputs(
        poweroffice,
        zendesk,
        state,
        dataflow,
        policy,
        None if focus is None else frozenset(focus),
        link_counts,
    )
    inputs = attrs.evolve(inputs, focus=with_referrers_of_ended_links(inputs))
    context = Context.empty()
    items: list[PlanItem] = []
    for phase in pipeline(dataflow):
        step = phase(inputs, context)
        items += step.items
        context = step.context
    return Plan(tuple(items))


def planner_indexes(dataflow: Dataflow) -> list[tuple[System, IndexSpec]]:
    """The snapshot indexes an incremental plan of ``dataflow`` looks records up in.

    A long-running process keeps them warm between runs; a benchmark builds them first. The
    index of who refers to a record (``with_referrers_of_ended_links``) is left out: it is read
    only when a link ends, so it is built then, and kept from there on.
    """
    specs: list[tuple[System, IndexSpec]] = []
    for flow in dataflow:
        for prop in flow.properties:
            if prop.role.unique:
                specs.append((System.ZENDESK, _unique_spec(flow, prop)))
            if prop.role is Role.NAME:
                specs.append((System.POWEROFFICE, carrier_spec(flow, prop)))
        if flow.zendesk_origin_field is not None:
            spec = (flow.zendesk_kind, flow.zendesk_origin_field, origin_index_key)
            specs.append((System.ZENDESK, spec))
        for prop in flow.identity.properties if flow.identity is not None else ():
            for system in System:
                key = INDEX_KEYS[prop.compare_as]
                specs.append((system, (flow.kind_in(system), prop.name_in(system), key)))
    return list(dict.fromkeys(specs))


def _unique_spec(flow: Flow, prop: PropertyMap) -> IndexSpec:
    return (flow.zendesk_kind, prop.zendesk, UNIQUE_KEYS[prop.compare_as])


def _referrer_spec(flow: Flow, prop: PropertyMap, system: System) -> IndexSpec:
    return (flow.kind_in(system), prop.name_in(system), INDEX_KEYS[prop.compare_as])


def with_referrers_of_ended_links(inputs: Inputs) -> frozenset[RecordKey] | None:
    """An incremental plan's focus, with every record that refers to a record whose link this
    plan ends.

    The full plan reports such a reference (its organization is no longer linked) even though
    the referring record did not change, so the incremental plan must look at it too. The
    working set holds these records (``talkcore.view`` finds them by ``Lookup.REFERENCE``).
    """
    if inputs.focus is None:
        return None
    found: set[RecordKey] = set()
    for flow in inputs.dataflow:
        referrers = inputs.dataflow.referring_to(flow.id)
        if not referrers:
            continue
        po_records = inputs.po.of_kind(flow.poweroffice_kind)
        zd_records = inputs.zd.of_kind(flow.zendesk_kind)
        for link in _links_in_focus(inputs, flow, inputs.state.table(flow.id)):
            po = po_records.get(link.poweroffice_id)
            zd = zd_records.get(link.zendesk_id)
            if _gone(inputs, flow, po, zd) is None:
                continue
            for referrer, prop in referrers:
                for snapshot, rid in (
                    (inputs.po, link.poweroffice_id),
                    (inputs.zd, link.zendesk_id),
                ):
                    kind, field, key = _referrer_spec(referrer, prop, snapshot.system)
                    value = key(rid)
                    if value is not None:
                        found |= {r.key for r in snapshot.lookup(kind, field, key, value)}
    return inputs.focus | found if found else inputs.focus


def pipeline(dataflow: Dataflow) -> list[Phase]:
    """The phases that plan ``dataflow``, in order (see the module doc)."""
    independent = tuple(flow.id for flow in dataflow if not flow.refers)
    phases: list[Phase] = [end_links, functools.partial(settle, independent)]
    for flow in dataflow:
        phases += [
            functools.partial(link_new_pairs, flow.id),
            functools.partial(settle, (flow.id,)),
        ]
    return phases


def end_links(inputs: Inputs, context: Context) -> Step:
    """End the links whose records are gone; the live pairs wait to be settled."""
    draft = Draft.start(inputs, context)
    for flow in inputs.dataflow:
        draft.pairs[flow.id] = [*draft.pairs.get(flow.id, ()), *_end_gone(draft, flow)]
    return draft.step()


def link_new_pairs(flow_id: str, inputs: Inputs, context: Context) -> Step:
    """Link by identity, origin key or adoption, and plan creates; new pairs wait to settle."""
    draft = Draft.start(inputs, context)
    flow = inputs.dataflow.flow(flow_id)
    fpolicy = inputs.policy.for_flow(flow.id)
    if flow.identity is not None:
        link_by_identity(draft, flow, flow.identity)
    if flow.creates_in_zendesk and fpolicy.create:
        counterparts_in_zendesk(draft, flow, draft.in_focus(inputs.po, flow.poweroffice_kind))
    if flow.creates_in_poweroffice and fpolicy.create:
        counterparts_in_poweroffice(draft, flow, draft.in_focus(inputs.zd, flow.zendesk_kind))
    return draft.step()


def settle(flow_ids: tuple[str, ...], inputs: Inputs, context: Context) -> Step:
    """Merge the pairs waiting in ``flow_ids``: the fixed point over claims (module doc)."""
    batch = [(inputs.dataflow.flow(f), context.pairs.get(f, ())) for f in flow_ids]
    start = attrs.evolve(context, pairs={**context.pairs, **{f: () for f in flow_ids}})
    passes = 1 + sum(len(pairs) for _, pairs in batch)  # each pass but the last adds a claim
    claims = (start.held, start.freed_by)
    for _ in range(passes):
        draft = Draft.start(inputs, attrs.evolve(start, held=claims[0], freed_by=claims[1]))
        for flow, pairs in batch:
            fpolicy = inputs.policy.for_flow(flow.id)
            for pair in pairs:
                merge_pair(draft, flow, fpolicy, pair)
        if not draft.refused or draft.claimed_nothing_new():
            break
        claims = (draft.held, draft.freed_by)
    draft.order_after_frees()
    return draft.step()


# -- ending links -------------------------------------------------------------------------


def _end_gone(draft: Draft, flow: Flow) -> list[Pair]:
    """End links whose records are gone (propagating deletes under the cap); the live pairs."""
    fpolicy = draft.inputs.policy.for_flow(flow.id)
    table = draft.inputs.state.table(flow.id)
    po_records = draft.inputs.po.of_kind(flow.poweroffice_kind)
    zd_records = draft.inputs.zd.of_kind(flow.zendesk_kind)
    deletes: list[Delete] = []
    live: list[Pair] = []
    unfiltered = flow.poweroffice_filter is None
    for link in _links_in_focus(draft.inputs, flow, table):
        po = po_records.get(link.poweroffice_id)
        zd = zd_records.get(link.zendesk_id)
        if (
            po is not None
            and zd is not None
            and po.active
            and zd.active
            and (unfiltered or flow.takes_part(po))
        ):
            live.append(Pair(link, po, zd))  # the common case, decided at once
            continue
        gone = _gone(draft.inputs, flow, po, zd)
        if gone is None:
            if po is not None and zd is not None:
                live.append(Pair(link, po, zd))
            continue
        po_key = RecordKey.of(flow.poweroffice_kind, link.poweroffice_id)
        zd_key = RecordKey.of(flow.zendesk_kind, link.zendesk_id)
        side, rule = gone
        gone_key = po_key if side is System.POWEROFFICE else zd_key
        draft.items.append(
            EndLink(
                f"unlink:{flow.id}:{link.poweroffice_id}", flow.id, po_key, zd_key, gone_key, rule
            )
        )
        draft.ended.add((flow.id, link.poweroffice_id))
        survivor = zd if side is System.POWEROFFICE else po
        if fpolicy.propagate_deletes and rule != "left_flow" and survivor and survivor.active:
            deletes.append(
                Delete(f"delete:{flow.id}:{survivor.key}", flow.id, survivor.key, gone_key)
            )
    counts = draft.inputs.link_counts
    _cap_deletes(draft, flow, fpolicy, len(table) if counts is None else counts[flow.id], deletes)
    return live


def _gone(
    inputs: Inputs, flow: Flow, po: Record | None, zd: Record | None
) -> tuple[System, str] | None:
    """Which side of a link is gone and why (deleted, inactive, left_flow), or ``None``.

    A record missing from a mirror counts as deleted only after a full read of its kind.
    """
    if po is None:
        if flow.poweroffice_kind in inputs.po.complete:
            return System.POWEROFFICE, "deleted"
    elif not po.active:
        return System.POWEROFFICE, "inactive"
    elif not flow.takes_part(po):
        return System.POWEROFFICE, "left_flow"
    if zd is None:
        if flow.zendesk_kind in inputs.zd.complete:
            return System.ZENDESK, "deleted"
    elif not zd.active:
        return System.ZENDESK, "inactive"
    return None


def _cap_deletes(
    draft: Draft, flow: Flow, fpolicy: FlowPolicy, links: int, deletes: list[Delete]
) -> None:
    if not deletes:
        return
    if len(deletes) > fpolicy.delete_cap * links:
        draft.items.append(
            DeleteCapReached(
                f"delete-cap:{flow.id}", flow.id, len(deletes), links, fpolicy.delete_cap
            )
        )
        return
    draft.items.extend(deletes)


def _links_in_focus(inputs: Inputs, flow: Flow, table: LinkTable) -> Iterable[Link]:
    if inputs.focus is None:
        return iter(table)
    chosen: dict[str, Link] = {}
    for key in inputs.focus:
        link = None
        if key.kind is flow.poweroffice_kind:
            link = table.for_poweroffice(key.id)
        elif key.kind is flow.zendesk_kind:
            link = table.for_zendesk(key.id)
        if link is not None:
            chosen[link.poweroffice_id] = link
    return (chosen[po_id] for po_id in sorted(chosen, key=id_order))


__all__ = [
    "end_links",
    "link_new_pairs",
    "pipeline",
    "plan_changes",
    "planner_indexes",
    "settle",
]
