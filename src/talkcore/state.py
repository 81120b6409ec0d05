"""Link state: which records are linked in each flow, the per-field bases, cursors and queues.

``fold_results`` is the one place a plan and what applying it returned become the next state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

import attrs

from talkcore.dataflow import Dataflow, Flow
from talkcore.plan import (
    AdvanceBase,
    Ambiguity,
    Conflict,
    Create,
    Delete,
    EndLink,
    InvalidValue,
    NameCollision,
    NewLink,
    Plan,
    ReferenceProblem,
    UnsupportedChange,
    Update,
    conflict_key,
)
from talkcore.ports import WriteResult
from talkcore.records import FieldValue, Kind, Record, RecordKey, System
from talkcore.values import normalise


@attrs.frozen
class Link:
    """Two records linked in one flow, and the base (last agreed value) of each synced property."""

    flow: str
    poweroffice_id: str
    zendesk_id: str
    base: Mapping[str, FieldValue] = attrs.field(factory=dict)


@attrs.frozen
class LinkTable:
    """The links of one flow, by PowerOffice id and by Zendesk id."""

    by_poweroffice: Mapping[str, Link] = attrs.field(factory=dict)
    by_zendesk: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def of(cls, links: Iterable[Link]) -> LinkTable:
        """A table holding ``links``."""
        by_po = {link.poweroffice_id: link for link in links}
        return cls(by_po, {link.zendesk_id: po for po, link in by_po.items()})

    def __iter__(self) -> Iterator[Link]:
        return iter(self.by_poweroffice.values())

    def __len__(self) -> int:
        return len(self.by_poweroffice)

    def for_poweroffice(self, po_id: str) -> Link | None:
        """The link of a PowerOffice record, if any."""
        return self.by_poweroffice.get(po_id)

    def for_zendesk(self, zd_id: str) -> Link | None:
        """The link of a Zendesk record, if any."""
        po_id = self.by_zendesk.get(zd_id)
        return None if po_id is None else self.by_poweroffice[po_id]


@attrs.frozen(order=True)
class KeptApart:
    """A pair a person unlinked: no identity rule, origin key or name adoption links it again
    until the person undoes it (``keep_together``)."""

    flow: str
    poweroffice_id: str
    zendesk_id: str


@attrs.frozen
class Decision:
    """One decision a person made by hand: who (OS user), when, what, on which records."""

    when: datetime
    who: str
    action: str
    """``unlink``, ``relink``, ``link`` or ``resolve``."""
    flow: str
    subject: str
    """What it was about, in words: the pair, or the conflict key and the side taken."""


@attrs.frozen
class SyncState:
    """Everything a run carries to the next, apart from the mirrors."""

    links: Mapping[str, LinkTable] = attrs.field(factory=dict)
    cursors: Mapping[str, str] = attrs.field(factory=dict)
    conflicts: Mapping[str, Conflict] = attrs.field(factory=dict)
    """Open conflicts held for a person (manual policy), by conflict key."""
    resolutions: Mapping[str, System] = attrs.field(factory=dict)
    """A person's decisions on held conflicts: the side whose value wins, by conflict key."""
    ambiguities: tuple[Ambiguity, ...] = ()
    last_full_sync: datetime | None = None
    retry: frozenset[RecordKey] = frozenset()
    """Records the last run reported on or failed to write: an incremental plan looks at them
    again even when they did not change."""
    kept_apart: frozenset[KeptApart] = frozenset()
    """Pairs a person unlinked; the planner never links them again on its own."""
    decisions: tuple[Decision, ...] = ()
    """Every decision made by hand, oldest first (the audit trail)."""

    def is_kept_apart(self, flow: str, poweroffice_id: str, zendesk_id: str) -> bool:
        """Whether a person keeps these two records of ``flow`` apart."""
        return KeptApart(flow, poweroffice_id, zendesk_id) in self.kept_apart

    def table(self, flow: str) -> LinkTable:
        """The links of ``flow`` (empty when it has none)."""
        return self.links.get(flow, _EMPTY_TABLE)

    def with_links(self, flow: str, links: Iterable[Link]) -> SyncState:
        """This state with ``flow``'s links replaced."""
        return attrs.evolve(self, links={**self.links, flow: LinkTable.of(links)})


_EMPTY_TABLE = LinkTable()


def stored_base(record: Record, flow_property: str, zendesk_property: str | None) -> FieldValue:
    """The normalised value a record holds for a property (by its name on the record's side)."""
    name = flow_property if record.key.system is System.POWEROFFICE else zendesk_property
    return record.get(name) if name else None


def fold_results(
    state: SyncState,
    plan: Plan,
    results: Sequence[WriteResult],
    dataflow: Dataflow,
) -> SyncState:
    """The state after ``plan`` was applied with ``results``: links made and ended, bases moved.

    Failed writes change nothing, so the next run plans them again. Bases become the value as
    the target stored it (normalised), which is what keeps a reformatting system from echoing.
    Items without a result (writes not attempted) leave the state as it was.
    """
    by_item = {result.item_id: result for result in results}
    tables: dict[str, dict[str, Link]] = {
        flow.id: dict(state.table(flow.id).by_poweroffice) for flow in dataflow
    }
    conflicts = dict(state.conflicts)
    resolutions = dict(state.resolutions)
    ambiguities: list[Ambiguity] = []
    props = {flow.id: {p.poweroffice: p for p in flow.properties} for flow in dataflow}

    # Zendesk references (organization ids) become bases in PowerOffice terms once every link
    # of this plan exists, so they are translated after the loop.
    zendesk_refs: list[tuple[str, str, str, str, FieldValue]] = []

    def set_base(flow: str, po_id: str, prop: str, value: FieldValue) -> None:
        link = tables[flow].get(po_id)
        if link is not None:
            tables[flow][po_id] = attrs.evolve(link, base={**link.base, prop: value})

    for item in plan:
        if isinstance(item, NewLink):
            tables[item.flow][item.poweroffice.id] = Link(
                item.flow, item.poweroffice.id, item.zendesk.id, dict(item.base)
            )
        elif isinstance(item, EndLink):
            tables[item.flow].pop(item.poweroffice.id, None)
        elif isinstance(item, AdvanceBase):
            set_base(item.flow, item.poweroffice_id, item.property, item.value)
        elif isinstance(item, Create):
            result = by_item.get(item.id)
            if result is None or not result.ok or result.record is None:
                continue
            flow_props = props[item.flow]
            stored = result.record
            base = {
                name: normalise(stored_base(stored, name, p.zendesk), p.compare_as)
                for name, p in flow_props.items()
                if not p.is_reference
            }
            if item.kind.system is System.ZENDESK:
                po_id, zd_id = item.source.id, stored.key.id
            else:
                po_id, zd_id = stored.key.id, item.source.id
            tables[item.flow][po_id] = Link(item.flow, po_id, zd_id, base)
        elif isinstance(item, Update):
            result = by_item.get(item.id)
            if result is None or not result.ok:
                continue
            for change in item.changes:
                prop = props[item.flow][change.flow_property]
                value: FieldValue
                if result.record is None:
                    # The system answered without the record: trust what was written.
                    value = change.poweroffice if item.system is System.ZENDESK else change.zendesk
                elif prop.is_reference and item.system is System.ZENDESK:
                    raw = normalise(result.record.get(change.property), prop.compare_as)
                    ref_flow = prop.reference_flow or ""
                    zendesk_refs.append(
                        (item.flow, item.poweroffice_id, prop.poweroffice, ref_flow, raw)
                    )
                    continue
                else:
                    value = normalise(result.record.get(change.property), prop.compare_as)
                set_base(item.flow, item.poweroffice_id, change.flow_property, value)
                resolutions.pop(
                    conflict_key(item.flow, item.poweroffice_id, prop.poweroffice), None
                )
        elif isinstance(item, Conflict):
            if item.winner is None:
                conflicts[item.key] = item
                # Held (again): a pick made for other values no longer applies.
                resolutions.pop(item.key, None)
            else:
                conflicts.pop(item.key, None)
        elif isinstance(item, Ambiguity):
            ambiguities.append(item)

    reverse: dict[str, dict[str, str]] = {}
    for flow_id, po_id, prop_name, ref_flow, raw in zendesk_refs:
        if ref_flow not in reverse:
            reverse[ref_flow] = {
                ln.zendesk_id: ln.poweroffice_id for ln in tables[ref_flow].values()
            }
        set_base(flow_id, po_id, prop_name, reverse[ref_flow].get(raw) if raw else None)

    # A held conflict whose pair no longer disagrees (edited by hand on one side) is closed.
    planned_conflicts = {item.key for item in plan if isinstance(item, Conflict)}
    for key in list(conflicts):
        if key not in planned_conflicts:
            conflicts.pop(key)
            resolutions.pop(key, None)

    return attrs.evolve(
        state,
        links={flow: LinkTable.of(links.values()) for flow, links in tables.items()},
        conflicts=conflicts,
        resolutions=resolutions,
        ambiguities=tuple(ambiguities),
        retry=frozenset(records_to_retry(plan, results)),
    )


def records_to_retry(plan: Plan, results: Sequence[WriteResult]) -> set[RecordKey]:
    """The records the next incremental plan must look at although they may not change.

    Every record a report of ``plan`` names, both sides of every write that failed, and both
    records of every link ``plan`` ended: a record freed from its link may match another by
    identity next run, which only a plan that looks at it finds.
    """
    keys: set[RecordKey] = set()
    failed = {r.item_id for r in results if not r.ok}
    for item in plan:
        if isinstance(item, EndLink) or (isinstance(item, Conflict) and item.winner is None):
            keys |= {item.poweroffice, item.zendesk}
        elif isinstance(item, Ambiguity):
            keys |= set(item.candidates)
        elif isinstance(item, ReferenceProblem | UnsupportedChange | InvalidValue | NameCollision):
            keys.add(item.record)
        elif isinstance(item, Create) and item.id in failed:
            keys.add(item.source)
        elif isinstance(item, Update) and item.id in failed:
            keys.add(item.target)
        elif isinstance(item, Delete) and item.id in failed:
            keys |= {item.target, item.because}
    return keys


def record_key(kind: Kind, record_id: str) -> RecordKey:
    """Shorthand for ``RecordKey.of``."""
    return RecordKey.of(kind, record_id)


def unlink(state: SyncState, flow: str, poweroffice_id: str) -> SyncState:
    """This state without the link of ``poweroffice_id`` in ``flow`` (a person's decision).

    The pair is kept apart from now on: the planner links neither record to the other again
    until the person undoes it with ``keep_together``.
    """
    table = state.table(flow)
    link = table.for_poweroffice(poweroffice_id)
    if link is None:
        raise KeyError(f"no link in {flow} for PowerOffice record {poweroffice_id}")
    return attrs.evolve(
        state.with_links(flow, (ln for ln in table if ln.poweroffice_id != poweroffice_id)),
        kept_apart=state.kept_apart | {KeptApart(flow, poweroffice_id, link.zendesk_id)},
    )


def keep_together(state: SyncState, flow: Flow, poweroffice_id: str) -> SyncState:
    """Undo ``unlink``: the pair of ``poweroffice_id`` in ``flow`` may be linked again.

    Both records are planned again next run, so the planner can link them at once.
    """
    apart = {
        k for k in state.kept_apart if k.flow == flow.id and k.poweroffice_id == poweroffice_id
    }
    if not apart:
        raise KeyError(f"PowerOffice record {poweroffice_id} is not kept apart in {flow.id}")
    keys = {RecordKey.of(flow.poweroffice_kind, poweroffice_id)}
    keys |= {RecordKey.of(flow.zendesk_kind, k.zendesk_id) for k in apart}
    return attrs.evolve(state, kept_apart=state.kept_apart - apart, retry=state.retry | keys)


def link_by_hand(state: SyncState, flow: str, poweroffice_id: str, zendesk_id: str) -> SyncState:
    """This state with a link a person decided (for an ambiguity); both records must be free.

    Which pairs a person may link (only an ambiguity's current candidates) is checked by the
    caller, which also knows the records; this keeps the link table one-to-one.
    """
    table = state.table(flow)
    if table.for_poweroffice(poweroffice_id) is not None:
        raise ValueError(f"PowerOffice record {poweroffice_id} is already linked in {flow}")
    if table.for_zendesk(zendesk_id) is not None:
        raise ValueError(f"Zendesk record {zendesk_id} is already linked in {flow}")
    links = [*table, Link(flow, poweroffice_id, zendesk_id)]
    remaining = tuple(
        amb
        for amb in state.ambiguities
        if not (
            amb.flow == flow and any(c.id in (poweroffice_id, zendesk_id) for c in amb.candidates)
        )
    )
    # Both records are planned again next run even if neither changes, so the pair merges.
    decided = {
        key
        for amb in state.ambiguities
        if amb.flow == flow
        for key in amb.candidates
        if key.id in (poweroffice_id, zendesk_id)
    }
    return attrs.evolve(
        state.with_links(flow, links),
        ambiguities=remaining,
        retry=state.retry | decided,
        kept_apart=frozenset(
            k
            for k in state.kept_apart
            if not (
                k.flow == flow and (k.poweroffice_id, k.zendesk_id) == (poweroffice_id, zendesk_id)
            )
        ),
    )


def resolve_conflict(state: SyncState, key: str, winner: System) -> SyncState:
    """Record a person's pick for a held conflict; the next run writes the winner's value.

    The pick holds for the values the conflict holds now: if either side moves again before
    it is applied, the planner holds the conflict anew (decision 10).
    """
    if key not in state.conflicts:
        raise KeyError(f"no open conflict {key!r}")
    return attrs.evolve(state, resolutions={**state.resolutions, key: winner})


def with_decision(state: SyncState, decision: Decision) -> SyncState:
    """This state with ``decision`` appended to the audit trail."""
    return attrs.evolve(state, decisions=(*state.decisions, decision))
