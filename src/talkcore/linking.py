"""Identity matching: which unlinked records pair up one-to-one, and which matches are ambiguous.

A value shared by more than one unlinked record on a side, or by a record whose counterpart is
already linked to another, is never linked: it becomes an ``Ambiguity`` naming every candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from talkcore.dataflow import Flow, IdentityRule
from talkcore.plan import Ambiguity
from talkcore.records import FieldValue, Record, RecordKey, System
from talkcore.state import LinkTable
from talkcore.values import normalise

IdentityValue = tuple[FieldValue, ...]


def identity_of(record: Record, rule: IdentityRule) -> IdentityValue | None:
    """The normalised identity of ``record`` under ``rule``; ``None`` if any part is empty."""
    side = record.key.system
    parts: list[FieldValue] = []
    for prop in rule.properties:
        name = prop.poweroffice if side is System.POWEROFFICE else prop.zendesk
        value = normalise(record.get(name), prop.compare_as)
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


def match_identities(
    flow: Flow,
    rule: IdentityRule,
    poweroffice: Iterable[Record],
    zendesk: Iterable[Record],
    links: LinkTable,
) -> tuple[list[Match], list[Ambiguity]]:
    """Match records of ``flow`` by ``rule``: one-to-one matches and every ambiguity.

    ``poweroffice`` and ``zendesk`` are the live records taking part in the flow, linked or not;
    linked ones are never re-matched but do make a shared value ambiguous.
    """
    poweroffice, zendesk = list(poweroffice), list(zendesk)
    free = [r for r in poweroffice if links.for_poweroffice(r.id) is None]
    free_values = {v for v in (identity_of(r, rule) for r in free) if v is not None}
    if not free_values:
        return [], []  # every record is linked already: nothing to match (the steady state)
    po_groups = _group(poweroffice, rule)
    zd_groups = _group(zendesk, rule)
    matches: list[Match] = []
    ambiguities: list[Ambiguity] = []
    for value, po_records in po_groups.items():
        po_free = [r for r in po_records if links.for_poweroffice(r.id) is None]
        if not po_free:
            continue
        zd_records = zd_groups.get(value, [])
        zd_free = [r for r in zd_records if links.for_zendesk(r.id) is None]
        if len(po_free) == 1 and len(zd_free) == 1 and len(zd_records) == 1:
            matches.append(Match(po_free[0], zd_free[0], value))
            continue
        if not zd_records:
            continue  # nothing to match with: not ambiguous, just unmatched
        # Several free records on a side, or the one candidate already linked to another
        # record: a person has to decide.
        candidates = sorted({r.key for r in po_records} | {r.key for r in zd_records})
        ambiguities.append(_ambiguity(flow, value, candidates))
    return matches, ambiguities


def _group(records: Iterable[Record], rule: IdentityRule) -> Mapping[IdentityValue, list[Record]]:
    groups: dict[IdentityValue, list[Record]] = {}
    for record in records:
        value = identity_of(record, rule)
        if value is not None:
            groups.setdefault(value, []).append(record)
    return groups


def _ambiguity(flow: Flow, value: IdentityValue, candidates: list[RecordKey]) -> Ambiguity:
    shown = " / ".join(v or "" for v in value)
    return Ambiguity(
        id=f"ambiguity:{flow.id}:{shown}",
        flow=flow.id,
        value=shown,
        candidates=tuple(candidates),
    )
