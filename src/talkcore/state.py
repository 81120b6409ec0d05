"""Link state: which records are linked in each flow, the per-field bases, cursors and queues.

``fold_results`` is the one place a plan and what applying it returned become the next state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from talkcore.dataflow import Dataflow, Flow, PropertyMap, field_map
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
from talkcore.records import FieldValue, Record, RecordKey, System
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
    full_plan_basis: str | None = None
    """What the last full plan covered every record under (``streaming.plan_basis``): a full
    run streams its read only while the dataflow and policy still match it. ``None``: no full
    plan yet, or a run stopped since."""

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


def link_base(record: Record, properties: Iterable[PropertyMap]) -> dict[str, FieldValue]:
    """The base a new link starts from: the normalised values ``record`` holds for
    ``properties``, keyed by their PowerOffice name.

    The one place a link's base is computed from a record: for a pair linked by identity (the
    identity values), and for a created record (the values as the target stored them, so a
    system that reformats them does not echo the change back). A Zendesk record's references
    are left out: they become bases in PowerOffice terms only through the links (see
    ``fold_results``).
    """
    poweroffice = record.key.system is System.POWEROFFICE
    return {
        p.poweroffice: p.value_of(record) for p in properties if poweroffice or not p.is_reference
    }


def created_link(flow: Flow, source: RecordKey, stored: Record) -> Link:
    """The link a create makes between its ``source`` and the record the target ``stored``."""
    if stored.key.system is System.ZENDESK:
        po_id, zd_id = source.id, stored.key.id
    else:
        po_id, zd_id = stored.key.id, source.id
    return Link(flow.id, po_id, zd_id, link_base(stored, flow.properties))


def fold_results(
    state: SyncState,
    plan: Plan,
    results: Sequence[WriteResult],
    dataflow: Dataflow,
) -> SyncState:
    """The state after ``plan`` was applied with ``results``: links made and ended, bases moved.

    Failed writes change nothing, so the next run plans them again. Bases become the value as
    the target stored it (normalised), which is what keeps a reformatting system from echoing.
    Items without a result (writes not attempted) leave the state as it was. Each item type
    has one folder in ``_FOLDERS``; report items other than conflicts and ambiguities change
    nothing here.
    """
    fold = _Fold.start(state, results, dataflow)
    for item in plan:
        folder = _FOLDERS.get(type(item))
        if folder is not None:
            folder(fold, item)
    fold.translate_zendesk_references()
    # A held conflict whose pair no longer disagrees (edited by hand on one side) is closed.
    planned_conflicts = {item.key for item in plan if isinstance(item, Conflict)}
    for key in list(fold.conflicts):
        if key not in planned_conflicts:
            fold.conflicts.pop(key)
            fold.resolutions.pop(key, None)
    return attrs.evolve(
        state,
        links={flow: LinkTable.of(links.values()) for flow, links in fold.tables.items()},
        conflicts=fold.conflicts,
        resolutions=fold.resolutions,
        ambiguities=tuple(fold.ambiguities),
        retry=frozenset(records_to_retry(plan, results)),
    )


@attrs.define
class _ZendeskReference:
    """A reference a write stored in Zendesk terms, to become a base in PowerOffice terms."""

    flow: str
    poweroffice_id: str
    prop: PropertyMap
    zendesk_id: FieldValue


@attrs.define
class _Fold:
    """The next state while ``fold_results`` builds it (local to one call)."""

    dataflow: Dataflow
    results: Mapping[str, WriteResult]
    tables: dict[str, dict[str, Link]]
    conflicts: dict[str, Conflict]
    resolutions: dict[str, System]
    props: Mapping[str, Mapping[str, PropertyMap]]
    """Each flow's synced properties by PowerOffice name."""
    ambiguities: list[Ambiguity] = attrs.Factory(list)
    # Zendesk references (organization ids) become bases in PowerOffice terms once every link
    # of the plan exists, so they are translated after every item is folded.
    zendesk_references: list[_ZendeskReference] = attrs.Factory(list)

    @classmethod
    def start(cls, state: SyncState, results: Sequence[WriteResult], dataflow: Dataflow) -> _Fold:
        return cls(
            dataflow,
            {result.item_id: result for result in results},
            {flow.id: dict(state.table(flow.id).by_poweroffice) for flow in dataflow},
            dict(state.conflicts),
            dict(state.resolutions),
            {flow.id: field_map(flow) for flow in dataflow},
        )

    def applied(self, item_id: str) -> WriteResult | None:
        """The result of a write that was applied (``None``: failed or not attempted)."""
        result = self.results.get(item_id)
        return result if result is not None and result.ok else None

    def set_base(self, flow: str, po_id: str, prop: str, value: FieldValue) -> None:
        link = self.tables[flow].get(po_id)
        if link is not None:
            self.tables[flow][po_id] = attrs.evolve(link, base={**link.base, prop: value})

    def translate_zendesk_references(self) -> None:
        reverse: dict[str, dict[str, str]] = {}
        for ref in self.zendesk_references:
            value = None
            for ref_flow in ref.prop.reference_flows if ref.zendesk_id else ():
                if ref_flow not in reverse:
                    reverse[ref_flow] = {
                        ln.zendesk_id: ln.poweroffice_id for ln in self.tables[ref_flow].values()
                    }
                value = reverse[ref_flow].get(ref.zendesk_id or "")
                if value is not None:
                    break
            self.set_base(ref.flow, ref.poweroffice_id, ref.prop.poweroffice, value)


def _fold_new_link(fold: _Fold, item: NewLink) -> None:
    fold.tables[item.flow][item.poweroffice.id] = Link(
        item.flow, item.poweroffice.id, item.zendesk.id, dict(item.base)
    )


def _fold_end_link(fold: _Fold, item: EndLink) -> None:
    fold.tables[item.flow].pop(item.poweroffice.id, None)


def _fold_advance_base(fold: _Fold, item: AdvanceBase) -> None:
    fold.set_base(item.flow, item.poweroffice_id, item.property, item.value)


def _fold_create(fold: _Fold, item: Create) -> None:
    result = fold.applied(item.id)
    if result is None or result.record is None:
        return
    link = created_link(fold.dataflow.flow(item.flow), item.source, result.record)
    fold.tables[item.flow][link.poweroffice_id] = link
    if result.record.key.system is System.ZENDESK:
        for prop in fold.props[item.flow].values():
            if prop.is_reference:
                stored = prop.value_of(result.record)
                fold.zendesk_references.append(
                    _ZendeskReference(item.flow, link.poweroffice_id, prop, stored)
                )


def _fold_update(fold: _Fold, item: Update) -> None:
    result = fold.applied(item.id)
    if result is None:
        return
    for change in item.changes:
        prop = fold.props[item.flow][change.flow_property]
        value: FieldValue
        if result.record is None:
            # The system answered without the record: trust what was written.
            value = change.poweroffice if item.system is System.ZENDESK else change.zendesk
        elif prop.is_reference and item.system is System.ZENDESK:
            raw = normalise(result.record.get(change.property), prop.compare_as)
            fold.zendesk_references.append(
                _ZendeskReference(item.flow, item.poweroffice_id, prop, raw)
            )
            continue
        else:
            value = normalise(result.record.get(change.property), prop.compare_as)
        fold.set_base(item.flow, item.poweroffice_id, change.flow_property, value)
        fold.resolutions.pop(conflict_key(item.flow, item.poweroffice_id, prop.poweroffice), None)


def _fold_conflict(fold: _Fold, item: Conflict) -> None:
    if item.winner is None:
        fold.conflicts[item.key] = item
        # Held (again): a pick made for other values no longer applies.
        fold.resolutions.pop(item.key, None)
    else:
        fold.conflicts.pop(item.key, None)


def _fold_ambiguity(fold: _Fold, item: Ambiguity) -> None:
    fold.ambiguities.append(item)


_FOLDERS: Mapping[type, Callable[[_Fold, Any], None]] = {
    NewLink: _fold_new_link,
    EndLink: _fold_end_link,
    AdvanceBase: _fold_advance_base,
    Create: _fold_create,
    Update: _fold_update,
    Conflict: _fold_conflict,
    Ambiguity: _fold_ambiguity,
}
"""How each plan item type moves the state (the other reports change nothing here)."""


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
    it is applied, the planner holds the conflict anew (docs/semantics.md, decision 10).
    """
    if key not in state.conflicts:
        raise KeyError(f"no open conflict {key!r}")
    return attrs.evolve(state, resolutions={**state.resolutions, key: winner})


def with_decision(state: SyncState, decision: Decision) -> SyncState:
    """This state with ``decision`` appended to the audit trail."""
    return attrs.evolve(state, decisions=(*state.decisions, decision))
