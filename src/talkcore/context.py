"""What the planning phases share: the plan's ``Inputs``, the ``Context`` one phase hands the
next, and ``Draft``, one phase's working copy of the context (see ``planning``'s theory of
operation). A draft never outlives its phase: ``Draft.step`` freezes it into the next context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, TypeVar

import attrs

from talkcore.dataflow import Dataflow, Flow, PropertyMap
from talkcore.plan import InvalidValue, NewLink, PendingId, PlanItem, ReferenceProblem, Update
from talkcore.policy import SyncPolicy
from talkcore.records import FieldValue, Kind, Record, RecordKey, Snapshot
from talkcore.state import Link, SyncState
from talkcore.values import UNIQUE_KEYS, Datatype, validate

# -- what the phases exchange -------------------------------------------------------------


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
    link_counts: Mapping[str, int] | None = None
    """How many links each flow has, when ``state`` holds only some of them (planning over a
    mirror view): the delete cap is a share of all of them."""


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


# -- a phase's working copy --------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


def _own(mapping: Mapping[K, V], shared: object) -> dict[K, V]:
    """``mapping`` as a dict this phase may change: copied while it is still the context's."""
    if mapping is shared or not isinstance(mapping, dict):
        return dict(mapping)
    return mapping


@attrs.define
class Draft:
    """One phase's working copy of the context, with the items it plans; never outlives it.

    Reads are plain look-ups; a map is copied from the context the first time the phase writes
    to it (``_own``), so the context a phase started from never changes and an unchanged map is
    handed on without a copy.
    """

    inputs: Inputs
    context: Context
    linked: dict[str, Mapping[str, str | PendingId]]
    linked_zendesk: dict[str, Mapping[str, str]]
    held: Mapping[UniqueKey, RecordKey | None]
    freed_by: Mapping[UniqueKey, RecordKey]
    written: Mapping[RecordKey, Mapping[str, FieldValue]]
    pairs: dict[str, list[Pair]]
    items: list[PlanItem] = attrs.Factory(list)
    ended: set[tuple[str, str]] = attrs.Factory(set)
    created_from: set[RecordKey] = attrs.Factory(set)
    refused: int = 0
    """Claims refused because another record holds the value (settle passes again)."""
    claims: dict[UniqueKey, RecordKey | None] = attrs.Factory(dict)
    """What this phase claimed (or freed, ``None``)."""
    after: dict[RecordKey, RecordKey] = attrs.Factory(dict)
    """Record whose write claims a value → the record whose write frees it."""

    @classmethod
    def start(cls, inputs: Inputs, context: Context) -> Draft:
        flows = inputs.dataflow.ids
        return cls(
            inputs,
            context,
            {f: context.linked.get(f, {}) for f in flows},
            {f: context.linked_zendesk.get(f, {}) for f in flows},
            context.held,
            context.freed_by,
            context.written,
            {f: list(pairs) for f, pairs in context.pairs.items()},
        )

    def step(self) -> Step:
        """This phase's items and the context after it."""
        context = Context(
            dict(self.linked),
            dict(self.linked_zendesk),
            self.held,
            self.freed_by,
            self.written,
            self.context.ended | self.ended if self.ended else self.context.ended,
            self.context.created_from | self.created_from
            if self.created_from
            else self.context.created_from,
            {f: tuple(pairs) for f, pairs in self.pairs.items()},
        )
        return Step(tuple(self.items), context)

    def claimed_nothing_new(self) -> bool:
        """Whether every claim and free of this phase was already in its context."""
        held = self.context.held
        return all(key in held and held[key] == who for key, who in self.claims.items())

    def _hold(self, key: UniqueKey, who: RecordKey | None) -> None:
        self.held = held = _own(self.held, self.context.held)
        held[key] = who
        self.claims[key] = who

    def _link(self, flow_id: str, po_id: str, zd: str | PendingId) -> None:
        self.linked[flow_id] = table = _own(self.linked[flow_id], self.context.linked.get(flow_id))
        table[po_id] = zd

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
        self.written = written = _own(self.written, self.context.written)
        written[record] = {**(written.get(record) or {}), **values}

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
        self._link(flow.id, po.id, zd.id)
        by_zendesk = _own(self.linked_zendesk[flow.id], self.context.linked_zendesk.get(flow.id))
        self.linked_zendesk[flow.id] = by_zendesk
        by_zendesk[zd.id] = po.id
        self.pairs.setdefault(flow.id, []).append(Pair(Link(flow.id, po.id, zd.id, base), po, zd))

    def creating(self, flow_id: str, po_id: str, create_id: str) -> None:
        """Note that ``po_id``'s counterpart in ``flow_id`` is created by ``create_id``."""
        self._link(flow_id, po_id, PendingId(create_id))

    # -- unique values -------------------------------------------------------------------

    def holder(self, key: UniqueKey) -> RecordKey | None:
        """The record holding a unique value, counting this plan's claims and frees."""
        if key in self.held:
            return self.held[key]
        kind, field, datatype, value = key
        held = self.inputs.zd.index(kind, field, UNIQUE_KEYS[datatype]).get(value)
        return RecordKey.of(kind, held[0]) if held else None

    def claim(
        self, kind: Kind, prop: PropertyMap, value: str, claimant: RecordKey, old: Record | None
    ) -> RecordKey | None:
        """Claim a unique value for ``claimant``; the other record holding it, if one does.

        ``old`` is the Zendesk record whose value changes (``None`` for a create): its old
        value is freed, and its write is ordered after the write that freed the new one.
        """
        keyfn = UNIQUE_KEYS[prop.compare_as]
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
                self._hold(freed, None)
                self.freed_by = freed_by = _own(self.freed_by, self.context.freed_by)
                freed_by[freed] = claimant
        self._hold(key, claimant)
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
        """A Zendesk id in PowerOffice terms, ``None`` for none, or ``UNTRANSLATABLE``."""
        if zd_id is None:
            return None
        for ref_flow in prop.reference_flows:
            link = self.inputs.state.table(ref_flow).for_zendesk(zd_id)
            if link is not None and not self.is_ended(ref_flow, link.poweroffice_id):
                return link.poweroffice_id
            planned = self.linked_zendesk[ref_flow].get(zd_id)
            if planned is not None:
                return planned
        return UNTRANSLATABLE

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


UNTRANSLATABLE = object()
"""A Zendesk reference that names no record linked in the flows it may point into."""


def as_value(value: object) -> FieldValue:
    return value if isinstance(value, str) else None


def id_order(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (0, record_id)
