"""Identity matching: which unlinked records pair up one-to-one, and which matches are ambiguous
(docs/semantics.md, decision 1); ``link_by_identity`` is the planning step that links them.

A value shared by more than one unlinked record on a side, or by a record whose counterpart is
already linked to another, is never linked: it becomes an ``Ambiguity`` naming every candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import attrs

from talkcore.context import Draft
from talkcore.dataflow import Flow, IdentityRule
from talkcore.plan import Ambiguity
from talkcore.records import FieldValue, Record, RecordKey, System
from talkcore.state import Link, LinkTable, link_base
from talkcore.values import INDEX_KEYS

IdentityValue = tuple[FieldValue, ...]


def identity_of(record: Record, rule: IdentityRule) -> IdentityValue | None:
    """The normalised identity of ``record`` under ``rule``; ``None`` if any part is empty."""
    parts: list[FieldValue] = []
    for prop in rule.properties:
        value = prop.value_of(record)
        if value is None:
            return None
        parts.append(value)
    return tuple(parts)


@attrs.frozen
class Match:
    """One one-to-one identity match."""

    poweroffice: Record
    zendesk: Record
    value: IdentityValue


def group_by_identity(
    records: Iterable[Record], rule: IdentityRule
) -> dict[IdentityValue, list[Record]]:
    """Records by their identity value (records with an empty part left out)."""
    groups: dict[IdentityValue, list[Record]] = {}
    for record in records:
        value = identity_of(record, rule)
        if value is not None:
            groups.setdefault(value, []).append(record)
    return groups


Lookup = Callable[[IdentityValue], "list[Record] | None"]


class Links(Protocol):
    """A flow's links by either end, as identity matching asks for them."""

    def for_poweroffice(self, po_id: str) -> Link | None: ...

    def for_zendesk(self, zd_id: str) -> Link | None: ...


@attrs.frozen
class _Standing:
    """A flow's links less those this plan ends: a record an ended link frees may match another
    by identity in the same plan, or the next run would link it (and the fixpoint fail)."""

    table: LinkTable
    draft: Draft
    flow_id: str

    def _standing(self, link: Link | None) -> Link | None:
        if link is None or self.draft.is_ended(self.flow_id, link.poweroffice_id):
            return None
        return link

    def for_poweroffice(self, po_id: str) -> Link | None:
        return self._standing(self.table.for_poweroffice(po_id))

    def for_zendesk(self, zd_id: str) -> Link | None:
        return self._standing(self.table.for_zendesk(zd_id))

    def ended(self) -> Iterator[Link]:
        """The links of the flow this plan ends (looked up, not found by walking the table)."""
        for flow_id, po_id in self.draft.context.ended | self.draft.ended:
            link = self.table.for_poweroffice(po_id) if flow_id == self.flow_id else None
            if link is not None:
                yield link


def match_identities(
    flow: Flow,
    rule: IdentityRule,
    values: Iterable[IdentityValue],
    poweroffice: Lookup,
    zendesk: Lookup,
    links: Links,
) -> tuple[list[Match], list[Ambiguity]]:
    """Match ``values`` one-to-one: each value's live records on both sides, linked or not.

    Linked records are never re-matched but do make a shared value ambiguous. A value with
    several free records on a side, or whose one counterpart is linked to another record, is
    an ambiguity; a value with no PowerOffice record free to link is skipped.
    """
    del rule
    matches: list[Match] = []
    ambiguities: list[Ambiguity] = []
    for value in sorted(values, key=lambda v: tuple(p or "" for p in v)):
        po_records = poweroffice(value) or []
        po_free = [r for r in po_records if links.for_poweroffice(r.id) is None]
        if not po_free:
            continue
        zd_records = zendesk(value) or []
        if not zd_records:
            continue  # nothing to match with: not ambiguous, just unmatched
        zd_free = [r for r in zd_records if links.for_zendesk(r.id) is None]
        if len(po_free) == 1 and len(zd_free) == 1 and len(zd_records) == 1:
            matches.append(Match(po_free[0], zd_free[0], value))
            continue
        # Several free records on a side, or the one candidate already linked to another
        # record: a person has to decide.
        candidates = sorted({r.key for r in po_records} | {r.key for r in zd_records})
        ambiguities.append(_ambiguity(flow, value, candidates))
    return matches, ambiguities


def _ambiguity(flow: Flow, value: IdentityValue, candidates: list[RecordKey]) -> Ambiguity:
    shown = " / ".join(v or "" for v in value)
    return Ambiguity(
        id=f"ambiguity:{flow.id}:{shown}",
        flow=flow.id,
        value=shown,
        candidates=tuple(candidates),
    )


# -- linking by identity ------------------------------------------------------------------


def link_by_identity(draft: Draft, flow: Flow, rule: IdentityRule) -> None:
    """Link unlinked records whose identity values match one-to-one; report ambiguities.

    Values are matched as they will be after this plan's writes, so a later flow does not link
    next run what this run's writes make matchable.
    """
    table = _Standing(draft.inputs.state.table(flow.id), draft, flow.id)
    if draft.inputs.focus is None:
        found = _all_identities(draft, flow, rule, table)
    else:
        found = _focused_identities(draft, flow, rule, table)
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
    draft: Draft, flow: Flow, rule: IdentityRule, table: Links
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


def _focused_identities(
    draft: Draft, flow: Flow, rule: IdentityRule, table: _Standing
) -> _Identities:
    """The identity values of the records in focus, of those this plan writes and of those an
    ended link frees, with lookups through the snapshots' indexes."""
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
    for link in table.ended():
        for freed in (
            draft.inputs.po.get(RecordKey.of(flow.poweroffice_kind, link.poweroffice_id)),
            draft.inputs.zd.get(RecordKey.of(flow.zendesk_kind, link.zendesk_id)),
        ):
            if freed is not None and _takes_part(flow, draft.view(freed)):
                values.add(identity_of(draft.view(freed), rule))
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


def _identity_lookup(draft: Draft, flow: Flow, system: System, rule: IdentityRule) -> Lookup:
    """Live records of the flow's kind on ``system`` with an identity value, as they will be
    after this plan."""
    snapshot = draft.inputs.po if system is System.POWEROFFICE else draft.inputs.zd
    kind = flow.kind_in(system)
    prop = rule.properties[0]
    field, key = prop.name_in(system), INDEX_KEYS[prop.compare_as]
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
