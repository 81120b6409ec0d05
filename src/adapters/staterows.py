"""What the SQL state stores (SQLite, PostgreSQL) share: how records, links and the JSON-kept
values become rows and back, and what changed since the last load or save.

Both stores keep the same row shapes (JSON as text, times as ISO 8601 text) and write only what
changed; this module is the one spelling of both, so the stores differ only in their SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from adapters.reportjson import CONVERTER, report_json
from talkcore.engine import RunReport
from talkcore.ports import Lookup
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Decision, Link, LinkTable, SyncState
from talkcore.values import Datatype, name_key, normalise
from talkcore.view import LookupFields, lookup_keys

_T = TypeVar("_T")


class StateFileError(Exception):
    """The state store cannot be used: not a talksync store, too new, or not reachable."""


def dump(value: object) -> str:
    """``value`` (an attrs class: conflict, ambiguity, write, result, decision) as JSON text.

    Through the one converter of plan and report JSON, so a held conflict or ambiguity is kept
    in the shape ``sync --json`` prints it in."""
    return json.dumps(CONVERTER.unstructure(value), ensure_ascii=False, separators=(",", ":"))


def load(text: str, kind: type[_T]) -> _T:
    """The value ``dump`` wrote."""
    return CONVERTER.structure(json.loads(text), kind)


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# One encoder for every row: json.dumps with these options builds a new one per call, which
# was a third of saving a first sync's mirrors.


def _compact(value: object) -> str:
    return _COMPACT.encode(value)


def report_text(report: RunReport) -> str:
    """A run report as JSON text, in the shape ``sync --json`` prints (docs/json.md)."""
    return json.dumps(report_json(report), ensure_ascii=False)


def retry_text(keys: frozenset[RecordKey]) -> str:
    """The records to retry as JSON text (sorted, so equal sets give equal text)."""
    return json.dumps(sorted(str(key) for key in keys))


def retry_from_text(text: str | None) -> frozenset[RecordKey]:
    """The records ``retry_text`` wrote (none when nothing was stored)."""
    return frozenset(RecordKey.parse(key) for key in json.loads(text)) if text else frozenset()


LOOKUP_COLUMNS: Mapping[Lookup, str] = {
    Lookup.IDENTITY: "email_key",
    Lookup.NAME: "name_key",
    Lookup.ORIGIN: "origin_key",
    Lookup.REFERENCE: "reference_key",
}
"""The records column each look-up key is kept in (the identity column kept its first name)."""

KEY_COLUMNS: tuple[str, ...] = tuple(LOOKUP_COLUMNS[lookup] for lookup in Lookup)
"""The key columns in ``Lookup`` order: the order ``record_row`` and ``rekeyed_rows`` give
the keys in."""


def key_assignments(placeholder: str) -> str:
    """``email_key = ?, name_key = ?, …`` for an UPDATE of every key column."""
    return ", ".join(f"{column} = {placeholder}" for column in KEY_COLUMNS)


def lookup_marker(fields: LookupFields) -> str:
    """What the key columns were computed from, as text: a store whose marker differs (an
    older schema, another dataflow) computes them again (``rekeyed_rows``)."""
    return _compact(
        sorted(
            (kind.value, lookup.value, field, getattr(key, "__name__", repr(key)))
            for kind, by_lookup in fields.items()
            for lookup, (field, key) in by_lookup.items()
        )
    )


def rekeyed_rows(
    rows: Iterable[tuple[str, str, str, str]], fields: LookupFields
) -> list[tuple[str | None, ...]]:
    """(the keys in ``KEY_COLUMNS`` order, system, kind, id) for (system, kind, id, fields)
    rows."""
    out = []
    for system, kind, rid, data in rows:
        record = Record(RecordKey(System(system), Kind(kind), rid), json.loads(data))
        out.append((*lookup_keys(record, fields), system, kind, rid))
    return out


def lookup_column(email: str | None, name: str | None) -> tuple[str, str | None]:
    """The records column and normalised key ``find_records`` matches: e-mail or name.

    The identity column holds the identity value as Zendesk compares it (``lookup_fields``),
    which for an e-mail is its normalised form.
    """
    if (email is None) == (name is None):
        raise ValueError("give exactly one of email or name")
    if email is not None:
        return "email_key", normalise(email, Datatype.EMAIL)
    return "name_key", name_key(name)


def record_row(record: Record, fields: LookupFields) -> tuple[Any, ...]:
    """(system, kind, id, fields, modified, active, then the keys in ``KEY_COLUMNS`` order)
    of one record; which field each key reads comes from the dataflow's roles (``fields``)."""
    return (
        record.key.system.value,
        record.key.kind.value,
        record.key.id,
        _compact(dict(record.fields)),
        record.modified.isoformat() if record.modified else None,
        record.active,
        *lookup_keys(record, fields),
    )


def record_from_row(
    system: System, kind: str, rid: str, fields: str, modified: str | None, active: object
) -> Record:
    """The record ``record_row`` wrote (``active`` as the store gives it back: 0/1 or bool)."""
    return Record(
        RecordKey(system, Kind(kind), rid),
        json.loads(fields),
        datetime.fromisoformat(modified) if modified else None,
        bool(active),
    )


def link_row(link: Link) -> tuple[str, str, str, str]:
    """(flow, poweroffice_id, zendesk_id, base) of one link."""
    return (link.flow, link.poweroffice_id, link.zendesk_id, _compact(dict(link.base)))


def link_from_row(flow: str, poweroffice_id: str, zendesk_id: str, base: str) -> Link:
    """The link ``link_row`` wrote."""
    return Link(flow, poweroffice_id, zendesk_id, json.loads(base))


def link_tables(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, LinkTable]:
    """Link rows as one table per flow."""
    tables: dict[str, list[Link]] = {}
    for row in rows:
        link = link_from_row(*row)
        tables.setdefault(link.flow, []).append(link)
    return {flow: LinkTable.of(links) for flow, links in tables.items()}


Seen = tuple[SyncState | None, Mapping[System, Snapshot]]
"""The baseline a save is diffed against: the state and mirrors last loaded or saved."""


class DiffingStore:
    """The SQL stores' load and save entry points: a save writes only what differs from a
    baseline, which is what this store last loaded or saved whole, or a partial save's
    ``since`` (an incremental run's working set as read through the mirror view).

    A store supplies ``_load_state`` and ``_write`` (one transaction) and keeps the baseline
    in ``_seen_state`` and ``_seen_mirrors``.
    """

    _seen_state: SyncState | None
    _seen_mirrors: dict[System, Snapshot]
    _saved_at: str | None

    def load_state(self) -> SyncState:
        """The state the last save left (empty on first use)."""
        state = self._load_state(links=True)
        self._seen_state = state
        return state

    def load_state_except_links(self) -> SyncState:
        """The state the last save left, without its link tables."""
        return self._load_state(links=False)

    def save(self, state: SyncState, mirrors: Sequence[Snapshot]) -> None:
        """Save ``state`` and ``mirrors`` in one transaction, writing only what changed."""
        self._save(state, mirrors, None)

    def save_partial(
        self,
        state: SyncState,
        mirrors: Sequence[Snapshot],
        since: tuple[SyncState, Sequence[Snapshot]],
    ) -> None:
        """Save an incremental run's part of the whole in one transaction: what differs from
        ``since`` (see the port); everything else is kept."""
        self._save(state, mirrors, since)

    def _save(
        self,
        state: SyncState,
        mirrors: Sequence[Snapshot],
        since: tuple[SyncState, Sequence[Snapshot]] | None,
    ) -> None:
        # A unique marker per save, so a cached mirror is known to be the store's own.
        marker = f"{datetime.now(UTC).isoformat()} {uuid.uuid4().hex}"
        if since is None:
            self._write(state, mirrors, (self._seen_state, self._seen_mirrors), marker)
        else:
            self._write(state, mirrors, (since[0], {m.system: m for m in since[1]}), marker)
        self._saved_at = marker
        if since is not None:
            # A partial state is no baseline for a whole one: the next run loads again.
            self._seen_state, self._seen_mirrors = None, {}
            return
        # Only once committed do these become the baseline the next save is diffed against.
        self._seen_state = state
        for mirror in mirrors:
            self._seen_mirrors[mirror.system] = mirror

    def _load_state(self, *, links: bool) -> SyncState:
        raise NotImplementedError

    def _write(
        self, state: SyncState, mirrors: Sequence[Snapshot], seen: Seen, marker: str
    ) -> None:
        """Write what differs from ``seen`` (state, mirrors), and ``marker``, in one
        transaction."""
        raise NotImplementedError


# -- what changed since the last load or save ------------------------------------------------
# Records and links are immutable, so ``is`` tells the unchanged ones apart: a save at a
# million records writes only the handful that are not the very objects loaded or saved last.


@attrs.frozen
class Changes:
    """One table's (or one kind's) change: the ids that are gone and the rows to upsert."""

    scope: str
    gone: list[str]
    changed: list[Any]


def link_changes(seen: SyncState | None, state: SyncState) -> Iterator[Changes]:
    """Per flow whose table is not the one ``seen`` held: links gone and links new or changed.

    With nothing seen (a store that has not loaded), every table is new; the caller clears the
    links first.
    """
    old_tables: Mapping[str, LinkTable] = {} if seen is None else seen.links
    for flow in sorted(set(old_tables) | set(state.links)):
        old, new = old_tables.get(flow), state.links.get(flow)
        if old is new:
            continue
        old_links = old.by_poweroffice if old is not None else {}
        new_links = new.by_poweroffice if new is not None else {}
        yield Changes(
            flow,
            [po_id for po_id in old_links if po_id not in new_links],
            [link for po_id, link in new_links.items() if old_links.get(po_id) is not link],
        )


def record_changes(seen: Snapshot | None, mirror: Snapshot) -> Iterator[Changes]:
    """Per kind whose records are not the ones ``seen`` held: ids gone, records new or changed.

    With nothing seen, every kind is new; the caller clears the system's records first.
    """
    old_kinds: Mapping[Kind, Mapping[str, Record]] = {} if seen is None else seen.records
    for kind in sorted(set(old_kinds) | set(mirror.records)):
        old, new = old_kinds.get(kind, {}), mirror.records.get(kind, {})
        if old is new:
            continue
        yield Changes(
            kind.value,
            [rid for rid in old if rid not in new],
            [rec for rid, rec in new.items() if old.get(rid) is not rec],
        )


def new_decisions(seen: SyncState | None, state: SyncState) -> tuple[bool, int]:
    """Whether the decision trail must be rewritten whole, and from which position to append.

    The trail only grows: what the last load or save held is kept and the rest appended; a
    trail that does not start with what was seen (never in practice) is rewritten.
    """
    known = 0 if seen is None else len(seen.decisions)
    if seen is None or seen.decisions[:known] != state.decisions[:known]:
        return True, 0
    return False, known


def decision_rows(decisions: Sequence[Decision], start: int) -> list[tuple[int, str]]:
    """(position, JSON) of the decisions from ``start`` on."""
    return [(start + i, dump(d)) for i, d in enumerate(decisions[start:])]


def links_touching(table: LinkTable, system: System, ids: Sequence[str]) -> list[Link]:
    """The links of ``table`` whose ``system``-side id is one of ``ids``, in ``ids`` order."""
    found: dict[tuple[str, str], Link] = {}
    for rid in ids:
        link = (
            table.for_poweroffice(rid) if system is System.POWEROFFICE else table.for_zendesk(rid)
        )
        if link is not None:
            found[(link.poweroffice_id, link.zendesk_id)] = link
    return list(found.values())
