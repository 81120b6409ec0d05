"""Identity matching: which unlinked records pair up one-to-one, and which matches are ambiguous.

A value shared by more than one unlinked record on a side, or by a record whose counterpart is
already linked to another, is never linked: it becomes an ``Ambiguity`` naming every candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from talkcore.dataflow import Flow, IdentityRule
from talkcore.plan import Ambiguity
from talkcore.records import FieldValue, Record, RecordKey
from talkcore.state import LinkTable

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


def match_identities(
    flow: Flow,
    rule: IdentityRule,
    values: Iterable[IdentityValue],
    poweroffice: Lookup,
    zendesk: Lookup,
    links: LinkTable,
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
