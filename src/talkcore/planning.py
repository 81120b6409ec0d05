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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Generic, NamedTuple, TypeVar

import attrs

from talkcore.dataflow import Dataflow, Flow, IdentityRule, PropertyMap, Role
from talkcore.linking import (
    IdentityValue,
    Lookup,
    group_by_identity,
    identity_of,
    match_identities,
)
from talkcore.merging import HELD, Decision, Moved, Pick, decide, moved, newest
from talkcore.plan import (
    AdvanceBase,
    Conflict,
    Create,
    Delete,
    DeleteCapReached,
    EndLink,
    FieldChange,
    FirstLinkChoice,
    InvalidValue,
    NameCollision,
    NewLink,
    PendingId,
    Plan,
    PlanItem,
    ReferenceProblem,
    UnsupportedChange,
    Update,
    WriteValue,
    conflict_key,
)
from talkcore.policy import FlowPolicy, NameCollisionPolicy, SyncPolicy
from talkcore.records import (
    FieldValue,
    IndexSpec,
    KeyFunction,
    Kind,
    Record,
    RecordKey,
    Snapshot,
    System,
)
from talkcore.state import Link, LinkTable, SyncState, link_base
from talkcore.values import Datatype, name_key, normalise, validate


def plan_changes(
    poweroffice: Snapshot,
    zendesk: Snapshot,
    state: SyncState,
    dataflow: Dataflow,
    policy: SyncPolicy,
    *,
    focus: Collection[RecordKey] | None = None,
) -> Plan:
    """Plan one sync run. Pure: the same inputs always give the same plan.

    ``focus`` (incremental planning) names the records that changed since the last plan, plus
    those the last run reported on or failed to write; only they and their links are planned,
    using the snapshots' indexes, so the cost follows the changes, not the mirrors' size. The
    result is the full plan's, provided the focus holds every record whose plan could differ.
    """
    inputs = Inputs(
        poweroffice, zendesk, state, dataflow, policy, None if focus is None else frozenset(focus)
    )
    context = Context.empty()
    items: list[PlanItem] = []
    for phase in pipeline(dataflow):
        step = phase(inputs, context)
        items += step.items
        context = step.context
    return Plan(tuple(items))


def origin_key(source: RecordKey) -> str:
    """The stable key a created record carries, naming where it came from: ``str(source)``."""
    return str(source)


def email_key(value: FieldValue) -> str | None:
    """Index key of an e-mail address."""
    return normalise(value, Datatype.EMAIL)


def origin_index_key(value: FieldValue) -> str | None:
    """Index key of an origin key (``external_id``): case-insensitive, as Zendesk compares."""
    return value.strip().casefold() or None if value else None


def _id_key(value: FieldValue) -> str | None:
    return normalise(value, Datatype.ID)


_INDEX_KEYS: Mapping[Datatype, KeyFunction] = {
    Datatype.EMAIL: email_key,
    Datatype.STRING: normalise,
    Datatype.ID: _id_key,
}
"""Identity lookups by comparison type (module-level, so snapshot caches are shared)."""

_UNIQUE_KEYS: Mapping[Datatype, KeyFunction] = {
    Datatype.EMAIL: email_key,
    Datatype.STRING: name_key,
    Datatype.ID: _id_key,
}
"""How Zendesk compares a unique value (trimmed, case-insensitive), by comparison type."""


def planner_indexes(dataflow: Dataflow) -> list[tuple[System, IndexSpec]]:
    """The snapshot indexes an incremental plan of ``dataflow`` looks records up in.

    A long-running process keeps them warm between runs; a benchmark builds them first.
    """
    specs: list[tuple[System, IndexSpec]] = []
    for flow in dataflow:
        for prop in flow.properties:
            if prop.role.unique:
                specs.append((System.ZENDESK, _unique_spec(flow, prop)))
            if prop.role is Role.NAME:
                specs.append((System.POWEROFFICE, _carrier_spec(flow, prop)))
        if flow.zendesk_origin_field is not None:
            spec = (flow.zendesk_kind, flow.zendesk_origin_field, origin_index_key)
            specs.append((System.ZENDESK, spec))
        for prop in flow.identity.properties if flow.identity is not None else ():
            for system in System:
                key = _INDEX_KEYS[prop.compare_as]
                specs.append((system, (flow.kind_in(system), prop.name_in(system), key)))
    return list(dict.fromkeys(specs))


def _unique_spec(flow: Flow, prop: PropertyMap) -> IndexSpec:
    return (flow.zendesk_kind, prop.zendesk, _UNIQUE_KEYS[prop.compare_as])


def _carrier_spec(flow: Flow, prop: PropertyMap) -> IndexSpec:
    return (flow.poweroffice_kind, prop.poweroffice, _UNIQUE_KEYS[prop.compare_as])


# -- the pipeline ------------------------------------------------------------------------


class Pair(NamedTuple):
    """A linked pair waiting to be merged: its link and both records as they are now."""

    link: Link
    poweroffice: Record
    zendesk: Record


UniqueKey = tuple[Kind, str, Datatype, str]
"""A unique value in Zendesk: the kind holding it, the field, how it compares, and its key."""


@attrs.frozen(hash=False)
class Inputs:
    """What a plan is a function of; no phase changes it."""

    po: Snapshot
    zd: Snapshot
    state: SyncState
    dataflow: Dataflow
    policy: SyncPolicy
    focus: frozenset[RecordKey] | None


@attrs.frozen
class Context:
    """What the phases so far decided that later phases must respect (see the module doc)."""

    linked: Mapping[str, Mapping[str, str | PendingId]]
    """Per flow, PowerOffice id → Zendesk id (or the create that makes it), for links made or
    records created in this plan."""
    linked_zendesk: Mapping[str, Mapping[str, str]]
    """Per flow, Zendesk id → PowerOffice id of the links made in this plan."""
    held: Mapping[UniqueKey, RecordKey | None]
    """Unique values claimed (by the record named) or freed (``None``) by this plan, over what
    the Zendesk snapshot holds."""
    freed_by: Mapping[UniqueKey, RecordKey]
    """Who freed each freed value: a write claiming it must be sent after that one."""
    written: Mapping[RecordKey, Mapping[str, FieldValue]]
    """Values this plan writes, by record: later flows match on them."""
    ended: frozenset[tuple[str, str]]
    """Links this plan ends: (flow, PowerOffice id)."""
    created_from: frozenset[RecordKey]
    """Records this plan creates a counterpart of."""
    pairs: Mapping[str, tuple[Pair, ...]]
    """Per flow, the linked pairs waiting to be settled."""

    @classmethod
    def empty(cls) -> Context:
        """The context before the first phase."""
        return cls({}, {}, {}, {}, {}, frozenset(), frozenset(), {})


@attrs.frozen
class Step:
    """What one phase returns: its items, and the context the next phase starts from."""

    items: tuple[PlanItem, ...]
    context: Context


Phase = Callable[[Inputs, Context], Step]


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
    draft = _Draft.start(inputs, context)
    for flow in inputs.dataflow:
        draft.pairs[flow.id] = [*draft.pairs.get(flow.id, ()), *_end_gone(draft, flow)]
    return draft.step()


def link_new_pairs(flow_id: str, inputs: Inputs, context: Context) -> Step:
    """Link by identity, origin key or adoption, and plan creates; new pairs wait to settle."""
    draft = _Draft.start(inputs, context)
    flow = inputs.dataflow.flow(flow_id)
    fpolicy = inputs.policy.for_flow(flow.id)
    if flow.identity is not None:
        _link_by_identity(draft, flow, flow.identity)
    if flow.creates_in_zendesk and fpolicy.create:
        _counterparts_in_zendesk(draft, flow, draft.in_focus(inputs.po, flow.poweroffice_kind))
    if flow.creates_in_poweroffice and fpolicy.create:
        _counterparts_in_poweroffice(draft, flow, draft.in_focus(inputs.zd, flow.zendesk_kind))
    return draft.step()


def settle(flow_ids: tuple[str, ...], inputs: Inputs, context: Context) -> Step:
    """Merge the pairs waiting in ``flow_ids``: the fixed point over claims (module doc)."""
    batch = [(inputs.dataflow.flow(f), context.pairs.get(f, ())) for f in flow_ids]
    start = attrs.evolve(context, pairs={**context.pairs, **{f: () for f in flow_ids}})
    passes = 1 + sum(len(pairs) for _, pairs in batch)  # each pass but the last adds a claim
    claims = (start.held, start.freed_by)
    for _ in range(passes):
        draft = _Draft.start(inputs, attrs.evolve(start, held=claims[0], freed_by=claims[1]))
        for flow, pairs in batch:
            fpolicy = inputs.policy.for_flow(flow.id)
            for pair in pairs:
                _merge_pair(draft, flow, fpolicy, pair)
        if not draft.refused or draft.held.adds_nothing():
            break
        claims = (draft.held.frozen(), draft.freed_by.frozen())
    draft.order_after_frees()
    return draft.step()


# -- a phase's working copy --------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


class _Layer(Generic[K, V]):
    """A mapping as one phase extends it: reads see both, ``frozen`` copies once at the end."""

    __slots__ = ("added", "base")

    def __init__(self, base: Mapping[K, V]) -> None:
        self.base = base
        self.added: dict[K, V] = {}

    def __contains__(self, key: object) -> bool:
        return key in self.added or key in self.base

    def __getitem__(self, key: K) -> V:
        return self.added[key] if key in self.added else self.base[key]

    def __setitem__(self, key: K, value: V) -> None:
        self.added[key] = value

    def __iter__(self) -> Iterator[K]:
        yield from self.base
        yield from (key for key in self.added if key not in self.base)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of ``key``, or ``default``."""
        if key in self.added:
            return self.added[key]
        return self.base.get(key, default)

    def adds_nothing(self) -> bool:
        """Whether every value set equals the one the base held."""
        return all(k in self.base and self.base[k] == v for k, v in self.added.items())

    def frozen(self) -> Mapping[K, V]:
        """The mapping with this phase's additions."""
        return {**self.base, **self.added} if self.added else self.base


@attrs.define
class _Draft:
    """One phase's working copy of the context, with the items it plans; never outlives it."""

    inputs: Inputs
    context: Context
    linked: dict[str, _Layer[str, str | PendingId]]
    linked_zendesk: dict[str, _Layer[str, str]]
    held: _Layer[UniqueKey, RecordKey | None]
    freed_by: _Layer[UniqueKey, RecordKey]
    written: _Layer[RecordKey, Mapping[str, FieldValue]]
    pairs: dict[str, list[Pair]]
    items: list[PlanItem] = attrs.Factory(list)
    ended: set[tuple[str, str]] = attrs.Factory(set)
    created_from: set[RecordKey] = attrs.Factory(set)
    refused: int = 0
    """Claims refused because another record holds the value (settle passes again)."""
    after: dict[RecordKey, RecordKey] = attrs.Factory(dict)
    """Record whose write claims a value → the record whose write frees it."""

    @classmethod
    def start(cls, inputs: Inputs, context: Context) -> _Draft:
        flows = inputs.dataflow.ids
        return cls(
            inputs,
            context,
            {f: _Layer(context.linked.get(f, {})) for f in flows},
            {f: _Layer(context.linked_zendesk.get(f, {})) for f in flows},
            _Layer(context.held),
            _Layer(context.freed_by),
            _Layer(context.written),
            {f: list(pairs) for f, pairs in context.pairs.items()},
        )

    def step(self) -> Step:
        """This phase's items and the context after it."""
        context = Context(
            {f: layer.frozen() for f, layer in self.linked.items()},
            {f: layer.frozen() for f, layer in self.linked_zendesk.items()},
            self.held.frozen(),
            self.freed_by.frozen(),
            self.written.frozen(),
            self.context.ended | self.ended if self.ended else self.context.ended,
            self.context.created_from | self.created_from
            if self.created_from
            else self.context.created_from,
            {f: tuple(pairs) for f, pairs in self.pairs.items()},
        )
        return Step(tuple(self.items), context)

    # -- what the inputs and the plan so far say -------------------------------------------

    def is_ended(self, flow_id: str, po_id: str) -> bool:
        key = (flow_id, po_id)
        return key in self.ended or key in self.context.ended

    def in_focus(self, snapshot: Snapshot, kind: Kind) -> Iterable[Record]:
        """The records of ``kind`` to plan: all, or those in focus."""
        records = snapshot.of_kind(kind)
        focus = self.inputs.focus
        if focus is None:
            return records.values()
        return [records[k.id] for k in focus if k.kind is kind and k.id in records]

    def view(self, record: Record) -> Record:
        """``record`` as it will be once this plan's writes to it are applied."""
        written = self.written.get(record.key)
        return record if not written else attrs.evolve(record, fields={**record.fields, **written})

    def write(self, record: RecordKey, values: Mapping[str, FieldValue]) -> None:
        """Note values this plan writes to ``record`` (later flows match on them)."""
        self.written[record] = {**(self.written.get(record) or {}), **values}

    def linked_elsewhere(self, zendesk: Record) -> bool:
        """Whether a Zendesk record is linked (or being linked) in any flow of its kind."""
        for flow in self.inputs.dataflow.sharing_zendesk_kind(zendesk.kind):
            link = self.inputs.state.table(flow.id).for_zendesk(zendesk.id)
            if link is not None and not self.is_ended(flow.id, link.poweroffice_id):
                return True
            if zendesk.id in self.linked_zendesk[flow.id]:
                return True
        return False

    def add_link(
        self, flow: Flow, po: Record, zd: Record, rule: str, base: Mapping[str, FieldValue]
    ) -> None:
        """Link ``po`` and ``zd`` in ``flow``; the pair waits to be settled."""
        shown = " / ".join(v or "" for v in base.values()) if rule == "identity" else None
        self.items.append(
            NewLink(f"link:{flow.id}:{po.id}", flow.id, po.key, zd.key, rule, base, shown)
        )
        self.linked[flow.id][po.id] = zd.id
        self.linked_zendesk[flow.id][zd.id] = po.id
        self.pairs.setdefault(flow.id, []).append(Pair(Link(flow.id, po.id, zd.id, base), po, zd))

    # -- unique values -------------------------------------------------------------------

    def holder(self, key: UniqueKey) -> RecordKey | None:
        """The record holding a unique value, counting this plan's claims and frees."""
        if key in self.held:
            return self.held[key]
        kind, field, datatype, value = key
        held = self.inputs.zd.index(kind, field, _UNIQUE_KEYS[datatype]).get(value)
        return RecordKey.of(kind, held[0]) if held else None

    def claim(
        self, kind: Kind, prop: PropertyMap, value: str, claimant: RecordKey, old: Record | None
    ) -> RecordKey | None:
        """Claim a unique value for ``claimant``; the other record holding it, if one does.

        ``old`` is the Zendesk record whose value changes (``None`` for a create): its old
        value is freed, and its write is ordered after the write that freed the new one.
        """
        keyfn = _UNIQUE_KEYS[prop.compare_as]
        found = keyfn(value)
        if found is None:
            return None
        key = (kind, prop.zendesk, prop.compare_as, found)
        holder = self.holder(key)
        if holder is not None and holder != claimant:
            self.refused += 1
            return holder
        freer = self.freed_by.get(key)
        if old is not None and freer is not None and freer != claimant:
            self.after[claimant] = freer
        was = keyfn(old.get(prop.zendesk)) if old is not None else None
        if was is not None and was != found:
            freed = (kind, prop.zendesk, prop.compare_as, was)
            if self.holder(freed) == claimant:
                # Free for a create or a rename in this plan, unless another claimed it before.
                self.held[freed] = None
                self.freed_by[freed] = claimant
        self.held[key] = claimant
        return None

    def order_after_frees(self) -> None:
        """Move each update that claims a freed value after the update freeing it."""
        if not self.after:
            return

        def depth(key: RecordKey, seen: frozenset[RecordKey] = frozenset()) -> int:
            freer = self.after.get(key)
            if freer is None or freer in seen:
                return 0
            return 1 + depth(freer, seen | {key})

        later: list[PlanItem] = sorted(
            (i for i in self.items if isinstance(i, Update) and i.target in self.after),
            key=lambda i: depth(i.target) if isinstance(i, Update) else 0,
        )
        ids = {i.id for i in later}
        self.items = [i for i in self.items if i.id not in ids] + later

    # -- references ----------------------------------------------------------------------

    def zendesk_id(self, prop: PropertyMap, po_id: str) -> str | PendingId | None:
        """The Zendesk id a PowerOffice reference translates to (linked or being created)."""
        for ref_flow in prop.reference_flows:
            link = self.inputs.state.table(ref_flow).for_poweroffice(po_id)
            if link is not None and not self.is_ended(ref_flow, po_id):
                return link.zendesk_id
            planned = self.linked[ref_flow].get(po_id)
            if planned is not None:
                return planned
        return None

    def poweroffice_id(self, prop: PropertyMap, zd_id: FieldValue) -> object:
        """A Zendesk id in PowerOffice terms, ``None`` for none, or ``_UNTRANSLATABLE``."""
        if zd_id is None:
            return None
        for ref_flow in prop.reference_flows:
            link = self.inputs.state.table(ref_flow).for_zendesk(zd_id)
            if link is not None:
                return link.poweroffice_id
            planned = self.linked_zendesk[ref_flow].get(zd_id)
            if planned is not None:
                return planned
        return _UNTRANSLATABLE

    # -- reports -------------------------------------------------------------------------

    def writable(
        self, flow: Flow, record: RecordKey, prop: str, value: FieldValue, datatype: Datatype
    ) -> bool:
        """Whether ``value`` (of ``record``'s ``prop``) may be written; reports it when not."""
        problem = "an empty value is never written" if value is None else validate(value, datatype)
        if problem is None:
            return True
        self.items.append(
            InvalidValue(
                f"invalid:{flow.id}:{record}:{prop}", flow.id, record, prop, value, problem
            )
        )
        return False

    def reference_problem(
        self, flow: Flow, record: RecordKey, prop: str, value: FieldValue, rule: str
    ) -> None:
        self.items.append(
            ReferenceProblem(
                f"reference:{flow.id}:{record}:{prop}", flow.id, record, prop, value, rule
            )
        )


_UNTRANSLATABLE = object()
"""A Zendesk reference that names no record linked in the flows it may point into."""


# -- ending links -------------------------------------------------------------------------


def _end_gone(draft: _Draft, flow: Flow) -> list[Pair]:
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
    _cap_deletes(draft, flow, fpolicy, len(table), deletes)
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
    draft: _Draft, flow: Flow, fpolicy: FlowPolicy, links: int, deletes: list[Delete]
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
    return (chosen[po_id] for po_id in sorted(chosen, key=_id_order))


# -- linking by identity ------------------------------------------------------------------


def _link_by_identity(draft: _Draft, flow: Flow, rule: IdentityRule) -> None:
    """Link unlinked records whose identity values match one-to-one; report ambiguities.

    Values are matched as they will be after this plan's writes, so a later flow does not link
    next run what this run's writes make matchable.
    """
    table = draft.inputs.state.table(flow.id)
    if draft.inputs.focus is None:
        found = _all_identities(draft, flow, rule, table)
    else:
        found = _focused_identities(draft, flow, rule)
    if found is None:
        return
    values, po_lookup, zd_lookup = found
    matches, ambiguities = match_identities(flow, rule, values, po_lookup, zd_lookup, table)
    for match in matches:
        if draft.inputs.state.is_kept_apart(flow.id, match.poweroffice.id, match.zendesk.id):
            continue  # a person unlinked this pair
        base = link_base(match.poweroffice, rule.properties)
        draft.add_link(flow, match.poweroffice, match.zendesk, "identity", base)
    draft.items.extend(ambiguities)


_Identities = tuple[list[IdentityValue], Lookup, Lookup]


def _all_identities(
    draft: _Draft, flow: Flow, rule: IdentityRule, table: LinkTable
) -> _Identities | None:
    """Every unlinked PowerOffice identity value, with lookups over every live record."""
    po_live = [
        draft.view(r)
        for r in draft.inputs.po.of_kind(flow.poweroffice_kind).values()
        if _takes_part(flow, r)
    ]
    values = {identity_of(r, rule) for r in po_live if table.for_poweroffice(r.id) is None}
    if not values - {None}:
        return None  # every record is linked already (the steady state): nothing to match
    zd_live = [
        draft.view(r) for r in draft.inputs.zd.of_kind(flow.zendesk_kind).values() if r.active
    ]
    po_groups = group_by_identity(po_live, rule)
    zd_groups = group_by_identity(zd_live, rule)
    return [v for v in values if v is not None], po_groups.get, zd_groups.get


def _focused_identities(draft: _Draft, flow: Flow, rule: IdentityRule) -> _Identities:
    """The identity values of the records in focus and of those this plan writes, with
    lookups through the snapshots' indexes."""
    lookups = {system: _identity_lookup(draft, flow, system, rule) for system in System}
    values: set[IdentityValue | None] = set()
    for system, snapshot in (
        (System.POWEROFFICE, draft.inputs.po),
        (System.ZENDESK, draft.inputs.zd),
    ):
        for record in draft.in_focus(snapshot, flow.kind_in(system)):
            view = draft.view(record)
            if _takes_part(flow, view):
                values.add(identity_of(view, rule))
    kinds = (flow.poweroffice_kind, flow.zendesk_kind)
    for key in draft.written:
        written = draft.inputs.po.get(key) or draft.inputs.zd.get(key)
        if written is not None and written.kind in kinds:
            values.add(identity_of(draft.view(written), rule))
    found = [v for v in values if v is not None]
    return found, lookups[System.POWEROFFICE], lookups[System.ZENDESK]


def _takes_part(flow: Flow, record: Record) -> bool:
    """Whether a live record takes part in ``flow`` (PowerOffice records pass its filter)."""
    if not record.active:
        return False
    keep = flow.poweroffice_filter  # records come by kind: only the filter can leave one out
    return keep is None or record.key.system is System.ZENDESK or keep.accepts(record)


def _identity_lookup(draft: _Draft, flow: Flow, system: System, rule: IdentityRule) -> Lookup:
    """Live records of the flow's kind on ``system`` with an identity value, as they will be
    after this plan."""
    snapshot = draft.inputs.po if system is System.POWEROFFICE else draft.inputs.zd
    kind = flow.kind_in(system)
    prop = rule.properties[0]
    field, key = prop.name_in(system), _INDEX_KEYS[prop.compare_as]
    overlaid = [
        draft.view(r)
        for r in (snapshot.get(k) for k in draft.written if k.kind is kind)
        if r is not None
    ]

    def lookup(value: IdentityValue) -> list[Record] | None:
        found = {
            r.key: r
            for r in (draft.view(r) for r in snapshot.lookup(kind, field, key, value[0] or ""))
            if _takes_part(flow, r) and identity_of(r, rule) == value
        }
        for record in overlaid:
            if _takes_part(flow, record) and identity_of(record, rule) == value:
                found[record.key] = record
        return [found[k] for k in sorted(found)] or None

    return lookup


# -- counterparts ---------------------------------------------------------------------------


def _counterparts_in_zendesk(draft: _Draft, flow: Flow, po_records: Iterable[Record]) -> None:
    """Link each unlinked PowerOffice record to the Zendesk record carrying its origin key or
    its name, or plan its counterpart's create."""
    table = draft.inputs.state.table(flow.id)
    for po in sorted(po_records, key=lambda r: _id_order(r.id)):
        if not po.active or not flow.takes_part(po) or table.for_poweroffice(po.id):
            continue
        if po.id in draft.linked[flow.id]:
            continue
        found = _by_origin(draft, flow, po)
        if found is not None:
            draft.add_link(flow, po, found, "origin_key", {})
            continue
        fields = _named_create_fields(draft, flow, po)
        if fields is None:
            continue
        fields.update(_create_fields(draft, flow, po, skip=flow.name_property))
        create = Create(
            f"create:{flow.id}:{po.id}",
            flow.id,
            flow.zendesk_kind,
            po.key,
            origin_key(po.key),
            fields,
        )
        draft.items.append(create)
        draft.linked[flow.id][po.id] = PendingId(create.id)


def _by_origin(draft: _Draft, flow: Flow, po: Record) -> Record | None:
    """The free Zendesk record carrying ``po``'s origin key, if the flow can find one."""
    field = flow.zendesk_origin_field
    if field is None:
        return None
    key = origin_index_key(origin_key(po.key)) or ""
    found = draft.inputs.zd.lookup(flow.zendesk_kind, field, origin_index_key, key)
    if not found or draft.inputs.state.is_kept_apart(flow.id, po.id, found[0].id):
        return None  # none, or a person unlinked this pair: its origin key does not link it
    record = found[0]
    return record if record.active and not draft.linked_elsewhere(record) else None


def _named_create_fields(draft: _Draft, flow: Flow, po: Record) -> dict[str, WriteValue] | None:
    """The name a create takes, claimed; ``None`` when the record is adopted or cannot be
    created (an invalid name, a name another holds)."""
    prop = flow.name_property
    if prop is None:
        return {}
    name = _clean(po.get(prop.poweroffice))
    if not draft.writable(flow, po.key, prop.poweroffice, name, prop.compare_as):
        return None
    assert name is not None
    holder = draft.claim(flow.zendesk_kind, prop, name, po.key, None)
    if holder is None:
        return {prop.zendesk: name}
    held = draft.inputs.zd.get(holder)
    if held is not None and _adoptable(draft, flow, po, prop, held):
        draft.add_link(flow, po, held, "adopt", {})
        return None
    rule = "name_taken" if holder.system is System.ZENDESK else "name_planned"
    draft.items.append(
        NameCollision(f"collision:{flow.id}:{po.key}", flow.id, po.key, name, holder, rule)
    )
    return None


def _adoptable(draft: _Draft, flow: Flow, po: Record, prop: PropertyMap, held: Record) -> bool:
    """Whether ``po`` may adopt the Zendesk record holding its name (semantics.md, decision 5)."""
    if draft.inputs.policy.name_collision is not NameCollisionPolicy.ADOPT:
        return False
    if draft.inputs.state.is_kept_apart(flow.id, po.id, held.id):
        return False  # a person unlinked this pair: no adopting it
    key = _UNIQUE_KEYS[prop.compare_as](po.get(prop.poweroffice)) or ""
    return len(_name_carriers(draft, held.kind, key)) == 1 and not draft.linked_elsewhere(held)


def _name_carriers(draft: _Draft, kind: Kind, key: str) -> list[RecordKey]:
    """Live PowerOffice records of every flow naming Zendesk records of ``kind`` with ``key``."""
    carriers: list[RecordKey] = []
    for flow in draft.inputs.dataflow.sharing_zendesk_kind(kind):
        prop = flow.name_property
        if prop is None:
            continue
        spec = _carrier_spec(flow, prop)
        for record in draft.inputs.po.lookup(spec[0], spec[1], spec[2], key):
            if record.active and flow.takes_part(record):
                carriers.append(record.key)
    return carriers


def _counterparts_in_poweroffice(draft: _Draft, flow: Flow, zd_records: Iterable[Record]) -> None:
    """Plan a PowerOffice counterpart for each unlinked Zendesk record."""
    table = draft.inputs.state.table(flow.id)
    for zd in sorted(zd_records, key=lambda r: _id_order(r.id)):
        if not zd.active or table.for_zendesk(zd.id) or draft.linked_elsewhere(zd):
            continue
        if zd.key in draft.created_from or zd.key in draft.context.created_from:
            continue  # an earlier flow already creates this record's counterpart
        draft.created_from.add(zd.key)
        fields = _create_fields(draft, flow, zd, skip=None)
        draft.items.append(
            Create(
                f"create:{flow.id}:{zd.key}",
                flow.id,
                flow.poweroffice_kind,
                zd.key,
                origin_key(zd.key),
                fields,
            )
        )


def _create_fields(
    draft: _Draft, flow: Flow, source: Record, skip: PropertyMap | None
) -> dict[str, WriteValue]:
    """Every synced property a counterpart of ``source`` is created with, in the target's terms.

    Empty values are left out; an invalid one is reported and left out; a reference that does
    not translate is left out (the pair's first merge reports it).
    """
    to_zendesk = source.key.system is System.POWEROFFICE
    fields: dict[str, WriteValue] = {}
    for prop in flow.properties:
        if prop is skip:
            continue
        value: WriteValue | object
        if prop.is_reference:
            found = prop.value_of(source)
            if found is None:
                continue
            value = (
                draft.zendesk_id(prop, found) if to_zendesk else draft.poweroffice_id(prop, found)
            )
            if not isinstance(value, str | PendingId):
                continue
        else:
            value = _clean(source.get(prop.name_in(source.key.system)))
            if value is None:
                continue
            if not draft.writable(
                flow, source.key, prop.name_in(source.key.system), value, prop.compare_as
            ):
                continue
        fields[prop.name_in(source.key.system.other)] = value
    return fields


# -- settling: the three-way merge ----------------------------------------------------------


@attrs.frozen
class _Values:
    """One property of one pair, as the merge compares it (normalised; references in
    PowerOffice terms, or ``_UNTRANSLATABLE``)."""

    flow: Flow
    policy: FlowPolicy
    pair: Pair
    prop: PropertyMap
    first: bool
    base: FieldValue
    poweroffice: FieldValue
    zendesk: object
    zendesk_raw: FieldValue

    @property
    def zendesk_shown(self) -> FieldValue:
        """The Zendesk value as reports show it: translated, or raw when it cannot be."""
        return self.zendesk_raw if self.zendesk is _UNTRANSLATABLE else _as_value(self.zendesk)

    def change(self, name: str, value: WriteValue, rule: str) -> FieldChange:
        """A write of ``value`` to the property ``name``, with what the merge compared."""
        return FieldChange(
            name,
            value,
            rule,
            self.base,
            self.poweroffice,
            self.zendesk_shown,
            self.prop.poweroffice,
        )


def _merge_pair(draft: _Draft, flow: Flow, fpolicy: FlowPolicy, pair: Pair) -> None:
    """Merge every synced property of ``pair``; plan an update per side that changes."""
    to_zd: list[FieldChange] = []
    to_po: list[FieldChange] = []
    base = pair.link.base
    po_fields, zd_fields = pair.poweroffice.fields, pair.zendesk.fields
    for prop in flow.properties:
        # Inline, as this runs for every property of every linked pair of a full plan.
        po_val = normalise(po_fields.get(prop.poweroffice), prop.compare_as)
        zd_raw = normalise(zd_fields.get(prop.zendesk), prop.compare_as)
        zd_val = zd_raw if prop.reference is None else draft.poweroffice_id(prop, zd_raw)
        first = prop.poweroffice not in base
        if not first and po_val == zd_val == base[prop.poweroffice]:
            continue  # the common case: nothing moved
        values = _Values(
            flow, fpolicy, pair, prop, first, base.get(prop.poweroffice), po_val, zd_val, zd_raw
        )
        written = _merge_property(draft, values)
        if written is not None:
            (to_zd if written[0] is System.ZENDESK else to_po).append(written[1])
    for changes, record in ((to_zd, pair.zendesk), (to_po, pair.poweroffice)):
        if not changes:
            continue
        values_written = {c.property: c.value for c in changes if isinstance(c.value, str)}
        if values_written:
            draft.write(record.key, values_written)
        draft.items.append(
            Update(
                f"update:{flow.id}:{record.key}",
                flow.id,
                record.key,
                pair.poweroffice.id,
                tuple(changes),
            )
        )


def _merge_property(draft: _Draft, v: _Values) -> tuple[System, FieldChange] | None:
    """The decision table's verdict on one property, carried out: what is written where."""
    differ = v.poweroffice != v.zendesk
    what = moved(
        first=v.first,
        base=v.base,
        poweroffice=v.poweroffice,
        zendesk=v.zendesk,
        writable=_first_writable(draft, v) if v.first and differ else (True, True),
    )
    decision = decide(what, v.policy)
    if decision.pick is Pick.NOBODY:
        return None
    if decision.pick is Pick.ADVANCE:
        flow, po_id, prop = v.flow.id, v.pair.poweroffice.id, v.prop.poweroffice
        draft.items.append(
            AdvanceBase(
                f"advance:{flow}:{po_id}:{prop}", flow, po_id, prop, v.poweroffice, decision.rule
            )
        )
        return None
    if decision.pick is Pick.UNWRITABLE:
        _zendesk_value(draft, v)  # reports why it cannot be written
        return None
    chosen = _winner(draft, v, what, decision)
    if chosen is None:
        return None
    winner, rule = chosen
    written = (
        _copy_to_zendesk(draft, v, rule)
        if winner is System.POWEROFFICE
        else _copy_to_poweroffice(draft, v, rule)
    )
    if written is not None and v.first:
        _first_link_replaced(draft, v, winner, rule)
    return written


def _first_writable(draft: _Draft, v: _Values) -> tuple[bool, bool]:
    """On a first sync, whether each side's value can be written to the other.

    An empty value is never written, so it counts as one that cannot be (a user in no
    organization would otherwise take a contact person's party away).
    """
    po_ok = v.poweroffice is not None and (
        not v.prop.is_reference or draft.zendesk_id(v.prop, v.poweroffice) is not None
    )
    zd_ok = v.zendesk is not None and v.zendesk is not _UNTRANSLATABLE
    return po_ok, zd_ok


def _winner(
    draft: _Draft, v: _Values, what: Moved, decision: Decision
) -> tuple[System, str] | None:
    """The side ``decision`` picks (times for ``newest``, a person's pick for ``manual``);
    a conflict is reported whoever wins, and held when nobody does."""
    pair = v.pair
    winner: System | None
    if decision.pick is Pick.POWEROFFICE:
        winner = System.POWEROFFICE
    elif decision.pick is Pick.ZENDESK:
        winner = System.ZENDESK
    elif decision.pick is Pick.NEWEST:
        winner = newest(pair.poweroffice.modified, pair.zendesk.modified)
    else:
        winner = _picked_by_hand(draft, v)
    rule = decision.rule if winner is not None else HELD
    if what is Moved.BOTH:
        key = conflict_key(v.flow.id, pair.poweroffice.id, v.prop.poweroffice)
        draft.items.append(
            Conflict(
                f"conflict:{key}",
                v.flow.id,
                pair.poweroffice.key,
                pair.zendesk.key,
                v.prop.poweroffice,
                v.base,
                v.poweroffice,
                v.zendesk_shown,
                v.policy.conflict,
                winner,
                rule,
            )
        )
    return None if winner is None else (winner, rule)


def _picked_by_hand(draft: _Draft, v: _Values) -> System | None:
    """A person's standing pick for this conflict; none once a side moved since they picked."""
    key = conflict_key(v.flow.id, v.pair.poweroffice.id, v.prop.poweroffice)
    winner = draft.inputs.state.resolutions.get(key)
    held = draft.inputs.state.conflicts.get(key)
    if held is not None and (held.poweroffice_value, held.zendesk_value) != (
        v.poweroffice,
        v.zendesk_shown,
    ):
        return None  # a side moved since the person decided: decide again
    return winner


def _copy_to_zendesk(draft: _Draft, v: _Values, rule: str) -> tuple[System, FieldChange] | None:
    value = _zendesk_value(draft, v)
    if value is None:
        return None
    if isinstance(value, str) and v.prop.role.unique and not _claim_for(draft, v, value):
        return None
    return System.ZENDESK, v.change(v.prop.zendesk, value, rule)


def _claim_for(draft: _Draft, v: _Values, value: str) -> bool:
    """Claim a unique value for the pair's Zendesk record; report it when another holds it."""
    zd, po_key, prop, flow = v.pair.zendesk, v.pair.poweroffice.key, v.prop, v.flow.id
    holder = draft.claim(zd.kind, prop, value, zd.key, zd)
    if holder is None:
        return True
    if prop.role is Role.NAME:
        draft.items.append(
            NameCollision(
                f"collision:{flow}:{po_key}", flow, po_key, value, holder, "rename_name_taken"
            )
        )
    else:
        what = "the e-mail address" if prop.compare_as is Datatype.EMAIL else "the value"
        draft.items.append(
            InvalidValue(
                f"invalid:{flow}:{po_key}:{prop.poweroffice}",
                flow,
                po_key,
                prop.poweroffice,
                value,
                f"{what} is held by {holder}",
                f"{prop.zendesk}_taken",
            )
        )
    return False


def _copy_to_poweroffice(draft: _Draft, v: _Values, rule: str) -> tuple[System, FieldChange] | None:
    zd, prop, flow = v.pair.zendesk, v.prop, v.flow
    if v.zendesk is _UNTRANSLATABLE:
        why = _why_untranslatable(draft, prop, v.zendesk_raw)
        draft.reference_problem(flow, zd.key, prop.zendesk, v.zendesk_raw, why)
        return None
    if prop.is_reference and not v.policy.allow_moves:
        po_key = v.pair.poweroffice.key
        draft.items.append(
            UnsupportedChange(
                f"unsupported:{flow.id}:{po_key}:{prop.poweroffice}",
                flow.id,
                po_key,
                prop.poweroffice,
                _as_value(v.zendesk),
            )
        )
        return None
    if prop.is_reference:
        written = _as_value(v.zendesk)
    else:
        written = _clean(zd.get(prop.zendesk))
        if not draft.writable(flow, zd.key, prop.zendesk, written, prop.compare_as):
            return None
    return System.POWEROFFICE, v.change(prop.poweroffice, written, rule)


def _first_link_replaced(draft: _Draft, v: _Values, winner: System, rule: str) -> None:
    """Report a value the first sync replaces, with both sides in their own terms.

    Filling an empty field replaces nothing, so it is not reported (the update shows it):
    on a lived-in account that would be one report per record without an organization.
    """
    if (v.zendesk_raw if winner is System.POWEROFFICE else v.poweroffice) is None:
        return
    pair, prop = v.pair, v.prop.poweroffice
    draft.items.append(
        FirstLinkChoice(
            f"first-link:{conflict_key(v.flow.id, pair.poweroffice.id, prop)}",
            v.flow.id,
            pair.poweroffice.key,
            pair.zendesk.key,
            prop,
            v.poweroffice,
            v.zendesk_raw,
            v.policy.first_link,
            winner,
            rule,
        )
    )


# -- references -----------------------------------------------------------------------------


def _zendesk_value(draft: _Draft, v: _Values) -> WriteValue | None:
    """The value to write to Zendesk for the PowerOffice side, or ``None`` after reporting why
    it cannot be written."""
    prop, po = v.prop, v.pair.poweroffice
    if not prop.is_reference:
        written = _clean(po.get(prop.poweroffice))
        if not draft.writable(v.flow, po.key, prop.poweroffice, written, prop.compare_as):
            return None
        return written
    if v.poweroffice is not None:
        found = draft.zendesk_id(prop, v.poweroffice)
        if found is not None:
            return found
    why = _why_no_zendesk_id(draft, prop, v.poweroffice)
    draft.reference_problem(v.flow, po.key, prop.poweroffice, v.poweroffice, why)
    return None


def _why_no_zendesk_id(draft: _Draft, prop: PropertyMap, po_id: FieldValue) -> str:
    """Why a PowerOffice reference has no Zendesk counterpart (the rule of its report)."""
    assert prop.reference is not None
    if po_id is None:
        return "empty_reference"
    dataflow = draft.inputs.dataflow
    for ref_flow in prop.reference.flows:
        flow = dataflow.flow(ref_flow)
        if draft.inputs.po.get(RecordKey.of(flow.poweroffice_kind, po_id)) is not None:
            return f"{flow.poweroffice_kind}_has_no_{flow.zendesk_kind}"
    for kind in prop.reference.unsynced:
        if draft.inputs.po.get(RecordKey.of(kind, po_id)) is not None:
            return f"{prop.reference.names}_is_{kind}"
    return f"{prop.reference.names}_unknown"


def _why_untranslatable(draft: _Draft, prop: PropertyMap, zd_id: FieldValue) -> str:
    """Why a Zendesk reference names no record linked in the flows it may point into."""
    dataflow = draft.inputs.dataflow
    kind = dataflow.flow(prop.reference_flows[0]).zendesk_kind
    record = draft.inputs.zd.get(RecordKey.of(kind, zd_id or ""))
    if record is None:
        return f"{kind}_unknown"
    for flow in dataflow.sharing_zendesk_kind(kind):
        if flow.id in prop.reference_flows:
            continue
        if draft.inputs.state.table(flow.id).for_zendesk(record.id):
            return f"{kind}_linked_in_{flow.id}"
    return f"{kind}_not_linked"


def _clean(value: FieldValue) -> FieldValue:
    """The value to write: trimmed and NFC, case kept."""
    return normalise(value, Datatype.STRING)


def _as_value(value: object) -> FieldValue:
    return value if isinstance(value, str) else None


def _id_order(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (0, record_id)


__all__ = [
    "Context",
    "Inputs",
    "Pair",
    "Phase",
    "Step",
    "email_key",
    "end_links",
    "link_new_pairs",
    "origin_index_key",
    "origin_key",
    "pipeline",
    "plan_changes",
    "planner_indexes",
    "settle",
]
