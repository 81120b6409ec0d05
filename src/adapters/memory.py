"""In-memory fakes of both systems and of the state store, for unit tests and the port contract.

They honour the constraints the sync logic depends on: Zendesk organization names and user
e-mails are unique case-insensitively, e-mails are stored lower-cased, ids are generated and
``updated_at`` moves on every write; PowerOffice contact persons belong to a customer or supplier.
Every write applied is recorded in ``applied`` so tests can count and inspect them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from adapters.reportjson import report_json
from adapters.staterows import link_changes, links_touching, record_changes
from talkcore.context import id_order
from talkcore.dataflow import DEFAULT_DATAFLOW, Dataflow, PropertyMap
from talkcore.engine import RunReport
from talkcore.ports import (
    NO_HOOKS,
    AlreadyRunning,
    ApplyHooks,
    Lookup,
    WriteError,
    WriteOp,
    WriteRequest,
    WriteResult,
)
from talkcore.records import (
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordKey,
    Snapshot,
    System,
    collect_read,
    upsert,
)
from talkcore.state import Link, LinkTable, SyncState
from talkcore.values import Datatype, name_key, normalise
from talkcore.view import lookup_fields

ORIGIN_FIELD = {Kind.ORGANIZATION: "external_id", Kind.USER: "external_id"}


class Clock:
    """A clock that ticks one second per reading, so every write has a distinct, later time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


@attrs.define
class MemorySystem:
    """A dict-backed system: records by kind and id, a write log, optional per-write hook."""

    system: System
    clock: Clock = attrs.field(factory=Clock)
    records: dict[Kind, dict[str, Record]] = attrs.field(factory=dict)
    applied: list[WriteRequest] = attrs.field(factory=list)
    after_write: Callable[[WriteRequest], None] | None = None
    """Called after each applied write (tests raise from it to simulate a crash)."""
    refuse: Callable[[WriteRequest], WriteError | None] | None = None
    """Called before each write; an error it returns fails that write (tests of error paths)."""
    origins: dict[RecordKey, str] = attrs.field(factory=dict)
    """Origin keys of created records that do not show them as a field (PowerOffice)."""
    dataflow: Dataflow = DEFAULT_DATAFLOW
    """Which fields Zendesk holds unique (and so stores trimmed or lower-cased)."""
    page_size: int = 50
    """Records per page of ``read_pages`` (small, so tests cross page boundaries)."""
    _ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000))

    def put(
        self, kind: Kind, id: str | int | None = None, *, active: bool = True, **fields: Any
    ) -> Record:
        """Seed or overwrite a record (test set-up; not a logged write)."""
        rid = str(id) if id is not None else str(next(self._ids))
        clean = {name: (None if v is None else str(v)) for name, v in fields.items()}
        record = Record(RecordKey.of(kind, rid), clean, self.clock(), active)
        record = self._stored_form(record)
        self.records.setdefault(kind, {})[rid] = record
        return record

    def check(self) -> str:
        """Always reachable: it lives in this process."""
        return f"{self.system} in memory"

    def edit(self, kind: Kind, id: str, **fields: Any) -> Record:
        """Change fields of an existing record as a person would (test set-up)."""
        old = self.records[kind][id]
        merged = {**old.fields, **{k: (None if v is None else str(v)) for k, v in fields.items()}}
        record = self._stored_form(attrs.evolve(old, fields=merged, modified=self.clock()))
        self.records[kind][id] = record
        return record

    def remove(self, kind: Kind, id: str) -> None:
        """Delete a record outright (test set-up)."""
        del self.records[kind][id]

    def deactivate(self, kind: Kind, id: str) -> None:
        """Mark a record inactive (archived or soft-deleted) (test set-up)."""
        old = self.records[kind][id]
        self.records[kind][id] = attrs.evolve(old, active=False, modified=self.clock())

    def snapshot(self) -> Snapshot:
        """Everything this system holds."""
        return Snapshot(self.system, {k: dict(v) for k, v in self.records.items()})

    # -- SystemPort ---------------------------------------------------------------------

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        """Everything of ``kinds``, or what changed after the cursors (ISO times)."""
        return collect_read(self.read_pages(kinds, cursors))

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        """``read`` in pages of ``page_size`` records."""
        page: list[Record] = []
        new_cursors: dict[str, str] = {}
        for kind in sorted(kinds):
            name = f"{self.system}:{kind}"
            since = None if cursors is None or name not in cursors else cursors[name]
            latest = since
            for record in list(self.records.get(kind, {}).values()):
                stamp = record.modified.isoformat() if record.modified else ""
                if since is None or stamp > since:
                    page.append(record)
                    if len(page) >= self.page_size:
                        yield tuple(page)
                        page = []
                if latest is None or stamp > latest:
                    latest = stamp
            if latest is not None:
                new_cursors[name] = latest
        if page:
            yield tuple(page)
        return ReadResult(self.system, kinds, (), cursors is None, new_cursors)

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """Apply each write in turn, honouring the system's constraints; progress per write,
        and no further write once ``hooks`` asks to stop."""
        results = []
        for write in writes:
            if hooks.should_stop():
                break
            result = self._apply_one(write)
            hooks.settled(1)
            results.append(result)
            if result.ok:
                self.applied.append(write)
                if self.after_write is not None:
                    self.after_write(write)
        return results

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        """Records of ``kind`` whose origin field holds one of ``origin_keys``."""
        wanted = {key.casefold(): key for key in origin_keys}
        found: dict[str, Record] = {}
        for record in self.records.get(kind, {}).values():
            # Zendesk shows the origin key as a field; PowerOffice keeps it out of our records.
            field = ORIGIN_FIELD.get(kind)
            value = record.get(field) if field else self.origins.get(record.key)
            if value is not None and value.casefold() in wanted:
                found[wanted[value.casefold()]] = record
        return found

    # -- internals ----------------------------------------------------------------------

    def _apply_one(self, write: WriteRequest) -> WriteResult:
        refused = self.refuse(write) if self.refuse is not None else None
        if refused is not None:
            return WriteResult(write.item_id, error=refused)
        table = self.records.setdefault(write.kind, {})
        if write.op is WriteOp.DELETE:
            if write.id not in table:
                return self._fail(write, "not_found", "record does not exist")
            del table[write.id]
            return WriteResult(write.item_id)
        fields = {k: v for k, v in write.fields.items()}
        if write.op is WriteOp.CREATE:
            rid = str(next(self._ids))
            if write.origin_key and write.kind in ORIGIN_FIELD:
                fields.setdefault(ORIGIN_FIELD[write.kind], write.origin_key)
            candidate = Record(RecordKey.of(write.kind, rid), fields, self.clock())
        else:
            if write.id is None or write.id not in table:
                return self._fail(write, "not_found", "record does not exist")
            old = table[write.id]
            candidate = attrs.evolve(old, fields={**old.fields, **fields}, modified=self.clock())
        candidate = self._stored_form(candidate)
        problem = self._violation(candidate)
        if problem is not None:
            return self._fail(write, "duplicate_value", problem[1], field=problem[0])
        table[candidate.key.id] = candidate
        if write.op is WriteOp.CREATE and write.origin_key:
            self.origins[candidate.key] = write.origin_key
        return WriteResult(write.item_id, candidate)

    def _unique_fields(self, kind: Kind) -> list[PropertyMap]:
        """The fields Zendesk holds unique for ``kind``: the dataflow's names and identities."""
        if self.system is not System.ZENDESK:
            return []
        return list(self.dataflow.unique_properties(kind))

    def _stored_form(self, record: Record) -> Record:
        """How the system stores a record: Zendesk trims a unique name and lower-cases an
        identifying e-mail."""
        fields = dict(record.fields)
        for prop in self._unique_fields(record.kind):
            value = fields.get(prop.zendesk)
            if prop.compare_as is Datatype.EMAIL:
                if value:
                    stored = normalise(value)
                    fields[prop.zendesk] = stored.lower() if stored else None
            elif value is not None:
                fields[prop.zendesk] = normalise(value)
        return attrs.evolve(record, fields=fields)

    def _violation(self, record: Record) -> tuple[str, str] | None:
        for prop in self._unique_fields(record.kind):
            field = prop.zendesk
            mine = name_key(record.get(field))
            if mine is None:
                continue
            for other in self.records.get(record.kind, {}).values():
                if other.key != record.key and name_key(other.get(field)) == mine:
                    return (
                        field,
                        f"{field.capitalize()}: {record.get(field)} has already been taken",
                    )
        return None

    def _fail(
        self, write: WriteRequest, code: str, message: str, field: str | None = None
    ) -> WriteResult:
        where = f"{self.system} {write.kind} {write.id or write.origin_key or ''}".strip()
        return WriteResult(write.item_id, error=WriteError(code, message, where, field))


def memory_poweroffice(clock: Clock | None = None) -> MemorySystem:
    """An empty in-memory PowerOffice Go."""
    return MemorySystem(System.POWEROFFICE, clock or Clock())


def memory_zendesk(clock: Clock | None = None) -> MemorySystem:
    """An empty in-memory Zendesk Support."""
    return MemorySystem(System.ZENDESK, clock or Clock())


@attrs.define
class MemoryStateStore:
    """The state store in a dict: same contract as the SQLite store, nothing on disk."""

    state: SyncState = attrs.field(factory=SyncState)
    mirrors: dict[System, Snapshot] = attrs.field(factory=dict)
    intents: dict[str, tuple[str, WriteRequest]] = attrs.field(factory=dict)
    results: dict[str, WriteResult] = attrs.field(factory=dict)
    runs: list[dict[str, Any]] = attrs.field(factory=list)
    locked: bool = False
    saves: int = 0
    dataflow: Dataflow = DEFAULT_DATAFLOW
    """Which properties the view's look-ups by identity value, name and origin key read."""

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse a second holder at once."""
        if self.locked:
            raise AlreadyRunning("another talksync run holds this state")
        self.locked = True
        try:
            yield
        finally:
            self.locked = False

    def load_state(self) -> SyncState:
        """The saved state."""
        return self.state

    def load_state_except_links(self) -> SyncState:
        """The saved state without its link tables."""
        return attrs.evolve(self.state, links={})

    def load_mirror(self, system: System) -> Snapshot:
        """The saved mirror of ``system``."""
        return self.mirrors.get(system, Snapshot(system))

    def save(self, state: SyncState, mirrors: Sequence[Snapshot]) -> None:
        """Replace state and mirrors."""
        self.state = state
        for mirror in mirrors:
            self.mirrors[mirror.system] = mirror
        self.saves += 1

    def save_partial(
        self,
        state: SyncState,
        mirrors: Sequence[Snapshot],
        since: tuple[SyncState, Sequence[Snapshot]],
    ) -> None:
        """Put in what differs from ``since``; keep the rest."""
        self.save(*self._merged(state, mirrors, since))

    def _merged(
        self,
        state: SyncState,
        mirrors: Sequence[Snapshot],
        since: tuple[SyncState, Sequence[Snapshot]],
    ) -> tuple[SyncState, list[Snapshot]]:
        """The whole state and mirrors with a partial save's changes put in."""
        seen_state, seen_mirrors = since
        tables = dict(self.state.links)
        for change in link_changes(seen_state, state):
            table = dict(self.state.table(change.scope).by_poweroffice)
            for po_id in change.gone:
                table.pop(po_id, None)
            table.update({link.poweroffice_id: link for link in change.changed})
            tables[change.scope] = LinkTable.of(table.values())
        merged: list[Snapshot] = []
        seen = {m.system: m for m in seen_mirrors}
        for mirror in mirrors:
            whole = self.load_mirror(mirror.system)
            gone: set[RecordKey] = set()
            changed: list[Record] = []
            for change in record_changes(seen.get(mirror.system), mirror):
                gone |= {RecordKey.of(Kind(change.scope), rid) for rid in change.gone}
                changed += change.changed
            kept = (r for r in whole if r.key not in gone)
            merged.append(
                upsert(Snapshot.of(mirror.system, kept, complete=mirror.complete), changed)
            )
        return attrs.evolve(state, links=tables), merged

    def journal_intents(self, run_id: str, writes: Sequence[WriteRequest]) -> None:
        """Remember writes about to be sent."""
        for write in writes:
            self.intents[write.item_id] = (run_id, write)
            self.results.pop(write.item_id, None)

    def journal_results(self, run_id: str, results: Sequence[WriteResult]) -> None:
        """Remember their outcomes."""
        for result in results:
            self.results[result.item_id] = result

    def open_intents(self) -> list[WriteRequest]:
        """Intents without an outcome."""
        return [w for item, (_, w) in self.intents.items() if item not in self.results]

    def close_intents(self, item_ids: Sequence[str]) -> None:
        """Forget intents that were reconciled."""
        for item in item_ids:
            self.intents.pop(item, None)

    def record_run(self, report: RunReport) -> None:
        """Append to the run log, in the shape ``sync --json`` prints (as the SQL stores do)."""
        self.runs.append(report_json(report))

    def recent_runs(self, limit: int = 10) -> Sequence[Mapping[str, Any]]:
        """The last ``limit`` reports, newest first."""
        return list(reversed(self.runs))[:limit]

    def records(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, Record]:
        """The mirrored records of ``keys`` (absent ones left out)."""
        found: dict[RecordKey, Record] = {}
        for key in keys:
            record = self.mirrors.get(key.system, Snapshot(key.system)).get(key)
            if record is not None:
                found[key] = record
        return found

    def links_touching(self, flow: str, system: System, ids: Sequence[str]) -> list[Link]:
        """The links of ``flow`` whose ``system``-side id is one of ``ids``."""
        return links_touching(self.state.table(flow), system, ids)

    def find(self, kind: Kind, lookup: Lookup, values: Sequence[str]) -> list[Record]:
        """The records of ``kind`` whose ``lookup`` key is one of ``values`` (indexed)."""
        found = lookup_fields(self.dataflow).get(kind, {}).get(lookup)
        if found is None:
            return []
        field, key = found
        mirror = self.load_mirror(kind.system)
        records = {
            r.key: r
            for value in dict.fromkeys(values)
            for r in mirror.lookup(kind, field, key, value)
        }
        return [records[k] for k in sorted(records, key=lambda k: id_order(k.id))]

    def link_count(self, flow: str) -> int:
        """How many links ``flow`` has."""
        return len(self.state.table(flow))

    def mirror_holds_records(self, system: System) -> bool:
        """Whether the mirror of ``system`` holds any record."""
        return len(self.load_mirror(system)) > 0

    def mirror_complete(self, system: System) -> frozenset[Kind]:
        """The kinds of ``system`` last read in full."""
        return self.load_mirror(system).complete

    def mirror_ids(self, kind: Kind) -> Iterator[str]:
        """The ids of the mirrored records of ``kind``."""
        yield from list(self.load_mirror(kind.system).of_kind(kind))
