"""The SQLite state store: link state, both mirrors, the journal and the run log in one file.

The file is opened in WAL mode so readers (``talksync status``) never block a running sync, and
every ``save`` is one transaction: a crash leaves the old state or the new, never half.

Saving must stay cheap at a million records, so the store remembers the snapshots and link
tables it loaded or saved last and writes only what is not the *identical object* (records and
links are immutable, so ``is`` tells the unchanged ones apart), plus what disappeared.

A run holds an ``flock`` on a sidecar ``<db>.lock`` file: the kernel drops it when the holder
dies, so a crashed run never leaves a stale lock behind. Nothing secret is ever stored here.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.staterows import (
    KEY_COLUMNS,
    LOOKUP_COLUMNS,
    DiffingStore,
    Seen,
    StateFileError,
    decision_rows,
    dump,
    key_assignments,
    link_changes,
    link_from_row,
    link_row,
    link_tables,
    links_touching,
    load,
    lookup_column,
    lookup_marker,
    new_decisions,
    record_changes,
    record_from_row,
    record_row,
    rekeyed_rows,
    report_text,
    retry_from_text,
    retry_text,
)
from talkcore.context import id_order
from talkcore.dataflow import DEFAULT_DATAFLOW, Dataflow
from talkcore.engine import RunReport
from talkcore.plan import Ambiguity, Conflict
from talkcore.ports import AlreadyRunning, Lookup, WriteRequest, WriteResult
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Decision, KeptApart, Link, LinkTable, SyncState
from talkcore.view import lookup_fields

__all__ = ["DEFAULT_STATE_PATH", "SCHEMA_VERSION", "SqliteStateStore", "StateFileError"]

DEFAULT_STATE_PATH = Path("talksync.db")

# Each entry moves the schema from version i to i + 1 (``PRAGMA user_version``). Never edit a
# released entry: append a new one, so every older file can be brought forward step by step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE records (
        system TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
        fields TEXT NOT NULL, modified TEXT, active INTEGER NOT NULL,
        email_key TEXT, name_key TEXT,
        PRIMARY KEY (system, kind, id)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_email ON records (system, kind, email_key) WHERE email_key IS NOT NULL;
    CREATE INDEX records_by_name ON records (system, kind, name_key) WHERE name_key IS NOT NULL;
    CREATE TABLE mirror_complete (system TEXT NOT NULL, kind TEXT NOT NULL,
                                  PRIMARY KEY (system, kind));
    CREATE TABLE links (
        flow TEXT NOT NULL, poweroffice_id TEXT NOT NULL, zendesk_id TEXT NOT NULL,
        base TEXT NOT NULL,
        PRIMARY KEY (flow, poweroffice_id)
    ) WITHOUT ROWID;
    CREATE INDEX links_by_zendesk ON links (flow, zendesk_id);
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE conflicts (key TEXT PRIMARY KEY, conflict TEXT NOT NULL);
    CREATE TABLE resolutions (key TEXT PRIMARY KEY, winner TEXT NOT NULL);
    CREATE TABLE ambiguities (position INTEGER PRIMARY KEY, ambiguity TEXT NOT NULL);
    CREATE TABLE journal (
        item_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, intent TEXT, result TEXT,
        recorded TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, recorded TEXT NOT NULL,
        report TEXT NOT NULL
    );
    """,
    # 2: a person's decisions last (dataflow decision 10): pairs kept apart, the audit trail.
    """
    CREATE TABLE kept_apart (
        flow TEXT NOT NULL, poweroffice_id TEXT NOT NULL, zendesk_id TEXT NOT NULL,
        PRIMARY KEY (flow, poweroffice_id, zendesk_id)
    ) WITHOUT ROWID;
    CREATE TABLE decisions (seq INTEGER PRIMARY KEY, decision TEXT NOT NULL);
    """,
    # 3: journaled writes carry their flow and source typed. Intents journaled before had them
    # only inside their ids ("create:<flow>:…", the origin key being the source's key): read
    # them out here, once, so crash recovery after an upgrade still links what a run created.
    """
    UPDATE journal SET intent = json_set(
        intent,
        '$.flow', substr(item_id, 8, instr(substr(item_id, 8), ':') - 1),
        '$.source', json_extract(intent, '$.origin_key')
    )
    WHERE intent IS NOT NULL AND json_extract(intent, '$.flow') IS NULL
      AND item_id GLOB '[a-z][a-z][a-z][a-z][a-z][a-z]:?*:?*'
    """,
    # 4: the mirror view finds records by origin key too (issue 13). The key columns are
    # filled from the dataflow's roles when the store opens (``_rekey``), not here.
    """
    ALTER TABLE records ADD COLUMN origin_key TEXT;
    CREATE INDEX records_by_origin ON records (system, kind, origin_key)
        WHERE origin_key IS NOT NULL
    """,
    # 5: … and by the id a reference names, to find who refers to a record whose link ends.
    # Filled when the store opens (``_rekey``), like 4.
    """
    ALTER TABLE records ADD COLUMN reference_key TEXT;
    CREATE INDEX records_by_reference ON records (system, kind, reference_key)
        WHERE reference_key IS NOT NULL
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_LOOKUP_INDEXES = {
    Lookup.IDENTITY: "records_by_email",
    Lookup.NAME: "records_by_name",
    Lookup.ORIGIN: "records_by_origin",
    Lookup.REFERENCE: "records_by_reference",
}
"""The index each look-up of the mirror view reads (named in its query)."""

_INSERT_RECORD = (
    "INSERT OR REPLACE INTO records"  # noqa: S608 - fixed names
    f" (system, kind, id, fields, modified, active, {', '.join(KEY_COLUMNS)})"
    f" VALUES ({', '.join('?' * (6 + len(KEY_COLUMNS)))})"
)


_IDS_PER_STATEMENT = 500
"""Ids bound in one ``IN (...)`` look-up (SQLite allows 999 variables in older builds)."""


class SqliteStateStore(DiffingStore):
    """The state store in one SQLite file (see the module docstring for its guarantees)."""

    def __init__(
        self, path: Path | str = DEFAULT_STATE_PATH, dataflow: Dataflow = DEFAULT_DATAFLOW
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fields = lookup_fields(dataflow)
        self._db = self._open()
        self._seen_state: SyncState | None = None
        self._seen_mirrors: dict[System, Snapshot] = {}
        self._saved_at: str | None = None

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise StateFileError(f"cannot create state file {self.path}: no such directory")
        try:
            # Created 0600 before SQLite sees it; SQLite gives its -wal/-shm files the same mode.
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateFileError(f"cannot create state file {self.path}: {exc.strerror}") from exc
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute("PRAGMA journal_mode = WAL")
            # FULL: a journaled intent must survive power loss, not only a process crash.
            db.execute("PRAGMA synchronous = FULL")
            self._migrate(db)
            self._rekey(db)
        except sqlite3.DatabaseError as exc:
            raise StateFileError(f"{self.path} is not a usable talksync state file: {exc}") from exc
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateFileError(
                f"{self.path} was written by a newer talksync (schema {version}; this version "
                f"knows up to {SCHEMA_VERSION}); upgrade talksync to use it"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _rekey(self, db: sqlite3.Connection) -> None:
        """Fill the look-up key columns again when they were computed from other roles (an
        older schema, another dataflow): the view's look-ups must find what the planner would."""
        marker = lookup_marker(self._fields)
        row = db.execute("SELECT value FROM meta WHERE key = 'lookup_keys'").fetchone()
        if row is not None and row[0] == marker:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute("SELECT system, kind, id, fields FROM records").fetchall()
            db.executemany(
                f"UPDATE records SET {key_assignments('?')}"  # noqa: S608 - fixed names
                " WHERE system = ? AND kind = ? AND id = ?",
                rekeyed_rows(rows, self._fields),
            )
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('lookup_keys', ?)", (marker,)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- StateStore port -----------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store for one run; raise ``AlreadyRunning`` at once if another run holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"another talksync run{who} is using {self.path}; wait for it to finish"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load_state(self, *, links: bool) -> SyncState:
        db = self._db
        tables = (
            link_tables(db.execute("SELECT flow, poweroffice_id, zendesk_id, base FROM links"))
            if links
            else {}
        )
        cursors = dict(db.execute("SELECT name, value FROM cursors").fetchall())
        conflicts = {
            key: load(data, Conflict)
            for key, data in db.execute("SELECT key, conflict FROM conflicts")
        }
        resolutions = {
            key: System(winner) for key, winner in db.execute("SELECT key, winner FROM resolutions")
        }
        ambiguities = tuple(
            load(data, Ambiguity)
            for (data,) in db.execute("SELECT ambiguity FROM ambiguities ORDER BY position")
        )
        kept_apart = frozenset(
            KeptApart(*row)
            for row in db.execute("SELECT flow, poweroffice_id, zendesk_id FROM kept_apart")
        )
        decisions = tuple(
            load(data, Decision)
            for (data,) in db.execute("SELECT decision FROM decisions ORDER BY seq")
        )
        full = db.execute("SELECT value FROM meta WHERE key = 'last_full_sync'").fetchone()
        retry = db.execute("SELECT value FROM meta WHERE key = 'retry'").fetchone()
        basis = db.execute("SELECT value FROM meta WHERE key = 'full_plan_basis'").fetchone()
        state = SyncState(
            links=tables,
            cursors=cursors,
            conflicts=conflicts,
            resolutions=resolutions,
            ambiguities=ambiguities,
            last_full_sync=datetime.fromisoformat(full[0]) if full else None,
            retry=retry_from_text(retry[0] if retry else None),
            kept_apart=kept_apart,
            decisions=decisions,
            full_plan_basis=basis[0] if basis else None,
        )
        return state

    def load_mirror(self, system: System) -> Snapshot:
        """The last-seen records of ``system`` (empty on first use).

        In a process that saved the mirror itself (``sync --every``) and nobody has saved since,
        the very snapshot saved is returned: no reload, and its lookup indexes stay warm.
        """
        cached = self._seen_mirrors.get(system)
        if cached is not None and self._saved_at is not None and self._saved_at == self._marker():
            return cached
        by_kind: dict[Kind, dict[str, Record]] = {}
        rows = self._db.execute(
            "SELECT kind, id, fields, modified, active FROM records WHERE system = ?",
            (system.value,),
        )
        for kind, rid, fields, modified, active in rows:
            record = record_from_row(system, kind, rid, fields, modified, active)
            by_kind.setdefault(record.key.kind, {})[rid] = record
        snapshot = Snapshot(system, by_kind, self.mirror_complete(system))
        self._seen_mirrors[system] = snapshot
        return snapshot

    def _marker(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'saved_at'").fetchone()
        return str(row[0]) if row else None

    def _write(
        self, state: SyncState, mirrors: Sequence[Snapshot], seen: Seen, marker: str
    ) -> None:
        with self._transaction() as db:
            self._save_state(db, state, seen[0])
            for mirror in mirrors:
                self._save_mirror(db, mirror, seen[1].get(mirror.system))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('saved_at', ?)", (marker,))

    def journal_intents(self, run_id: str, writes: Sequence[WriteRequest]) -> None:
        """Durably record writes about to be sent (committed before this returns)."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO journal (item_id, run_id, intent, result, recorded, closed)"
                " VALUES (?, ?, ?, NULL, ?, 0)",
                [(w.item_id, run_id, dump(w), now) for w in writes],
            )

    def journal_results(self, run_id: str, results: Sequence[WriteResult]) -> None:
        """Durably record the outcome of journaled writes."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as db:
            for result in results:
                data = dump(result)
                updated = db.execute(
                    "UPDATE journal SET result = ?, recorded = ? WHERE item_id = ?",
                    (data, now, result.item_id),
                )
                if updated.rowcount == 0:
                    db.execute(
                        "INSERT INTO journal (item_id, run_id, intent, result, recorded)"
                        " VALUES (?, ?, NULL, ?, ?)",
                        (result.item_id, run_id, data, now),
                    )

    def open_intents(self) -> list[WriteRequest]:
        """Journaled writes with no recorded outcome, in the order they were journaled."""
        rows = self._db.execute(
            "SELECT intent FROM journal WHERE result IS NULL AND intent IS NOT NULL"
            " AND closed = 0 ORDER BY rowid"
        )
        return [load(intent, WriteRequest) for (intent,) in rows]

    def close_intents(self, item_ids: Sequence[str]) -> None:
        """Mark journaled writes as settled (kept for the audit trail, no longer open)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE journal SET closed = 1 WHERE item_id = ?", [(i,) for i in item_ids]
            )

    def record_run(self, report: RunReport) -> None:
        """Append one run's report to the run log, in the shape ``sync --json`` prints; that
        run's settled journal entries go."""
        run_id = report.run_id
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, recorded, report) VALUES (?, ?, ?)",
                (run_id, datetime.now(UTC).isoformat(), report_text(report)),
            )
            # The run log now holds the outcome; keeping a million settled rows per run would
            # only grow the file. Open intents stay: they are what crash recovery needs.
            db.execute(
                "DELETE FROM journal WHERE run_id = ? AND (result IS NOT NULL OR closed = 1)",
                (run_id,),
            )

    def records(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, Record]:
        """The mirrored records of ``keys`` (by primary key; absent ones left out)."""
        by_kind: dict[tuple[System, Kind], list[str]] = {}
        for key in dict.fromkeys(keys):
            by_kind.setdefault((key.system, key.kind), []).append(key.id)
        found: dict[RecordKey, Record] = {}
        for (system, kind), ids in by_kind.items():
            # A few hundred ids a statement: one statement per key costs more than the
            # look-up when a streamed full read asks for a page of thousands.
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                chunk = ids[start : start + _IDS_PER_STATEMENT]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT kind, id, fields, modified, active FROM records"  # noqa: S608 - marks
                    f" WHERE system = ? AND kind = ? AND id IN ({marks})",
                    (system.value, kind.value, *chunk),
                )
                for row in rows:
                    record = record_from_row(system, *row)
                    found[record.key] = record
        return {key: found[key] for key in keys if key in found}

    def links_touching(self, flow: str, system: System, ids: Sequence[str]) -> list[Link]:
        """The links of ``flow`` whose ``system``-side id is one of ``ids`` (indexed look-ups)."""
        column = "poweroffice_id" if system is System.POWEROFFICE else "zendesk_id"
        # By Zendesk id the index is named: without statistics SQLite prefers the primary key's
        # flow prefix, a scan of the flow's links.
        index = "" if system is System.POWEROFFICE else " INDEXED BY links_by_zendesk"
        rows = [
            row
            for rid in dict.fromkeys(ids)
            for row in self._db.execute(
                "SELECT flow, poweroffice_id, zendesk_id, base FROM links"  # noqa: S608 - fixed
                f"{index} WHERE flow = ? AND {column} = ?",
                (flow, rid),
            )
        ]
        return links_touching(LinkTable.of(link_from_row(*row) for row in rows), system, ids)

    def find(self, kind: Kind, lookup: Lookup, values: Sequence[str]) -> list[Record]:
        """The records of ``kind`` whose ``lookup`` key is one of ``values`` (indexed)."""
        column = LOOKUP_COLUMNS[lookup]
        found: dict[str, Record] = {}
        for value in dict.fromkeys(values):
            # Named: without statistics SQLite prefers the primary key's (system, kind) prefix,
            # a scan of the whole kind.
            rows = self._db.execute(
                f"SELECT kind, id, fields, modified, active FROM records"  # noqa: S608 - fixed
                f" INDEXED BY {_LOOKUP_INDEXES[lookup]}"
                f" WHERE system = ? AND kind = ? AND {column} = ? AND {column} IS NOT NULL",
                (kind.system.value, kind.value, value),
            )
            for row in rows:
                found[row[1]] = record_from_row(kind.system, *row)
        return [found[rid] for rid in sorted(found, key=id_order)]

    def link_count(self, flow: str) -> int:
        """How many links ``flow`` has (counted on the index)."""
        row = self._db.execute("SELECT count(*) FROM links WHERE flow = ?", (flow,)).fetchone()
        return int(row[0])

    def mirror_holds_records(self, system: System) -> bool:
        """Whether the mirror of ``system`` holds any record (one row read, not a count)."""
        row = self._db.execute(
            "SELECT 1 FROM records WHERE system = ? LIMIT 1", (system.value,)
        ).fetchone()
        return row is not None

    def mirror_complete(self, system: System) -> frozenset[Kind]:
        """The kinds of ``system`` whose last read was a full read."""
        rows = self._db.execute(
            "SELECT kind FROM mirror_complete WHERE system = ?", (system.value,)
        )
        return frozenset(Kind(kind) for (kind,) in rows)

    def mirror_ids(self, kind: Kind) -> Iterator[str]:
        """The ids of the mirrored records of ``kind``, streamed from the table."""
        rows = self._db.execute(
            "SELECT id FROM records WHERE system = ? AND kind = ?", (kind.system.value, kind.value)
        )
        for (rid,) in rows:
            yield rid

    # -- the run log and look-ups for the CLI ----------------------------------------------

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last ``limit`` run reports, newest first."""
        rows = self._db.execute("SELECT report FROM runs ORDER BY seq DESC LIMIT ?", (limit,))
        return [json.loads(report) for (report,) in rows]

    def find_records(
        self, system: System, kind: Kind, *, email: str | None = None, name: str | None = None
    ) -> list[Record]:
        """Mirrored records of ``kind`` whose normalised e-mail or organization name matches."""
        column, key = lookup_column(email, name)
        rows = self._db.execute(
            "SELECT kind, id, fields, modified, active FROM records"  # noqa: S608 - fixed names
            f" WHERE system = ? AND kind = ? AND {column} = ? ORDER BY id",
            (system.value, kind.value, key),
        )
        return [record_from_row(system, *row) for row in rows]

    # -- internals -----------------------------------------------------------------------

    def _save_state(self, db: sqlite3.Connection, state: SyncState, seen: SyncState | None) -> None:
        if seen is None:
            db.execute("DELETE FROM links")
        for change in link_changes(seen, state):
            db.executemany(
                "DELETE FROM links WHERE flow = ? AND poweroffice_id = ?",
                [(change.scope, po_id) for po_id in change.gone],
            )
            db.executemany(
                "INSERT OR REPLACE INTO links (flow, poweroffice_id, zendesk_id, base)"
                " VALUES (?, ?, ?, ?)",
                [link_row(link) for link in change.changed],
            )
        # The queues and cursors are small: rewriting them whole is simpler than diffing.
        for table in ("cursors", "conflicts", "resolutions", "ambiguities"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        db.executemany("INSERT INTO cursors VALUES (?, ?)", list(state.cursors.items()))
        db.executemany(
            "INSERT INTO conflicts VALUES (?, ?)",
            [(key, dump(conflict)) for key, conflict in state.conflicts.items()],
        )
        db.executemany(
            "INSERT INTO resolutions VALUES (?, ?)",
            [(key, system.value) for key, system in state.resolutions.items()],
        )
        db.executemany(
            "INSERT INTO ambiguities VALUES (?, ?)",
            [(i, dump(a)) for i, a in enumerate(state.ambiguities)],
        )
        if seen is None or seen.kept_apart is not state.kept_apart:
            db.execute("DELETE FROM kept_apart")
            db.executemany(
                "INSERT INTO kept_apart VALUES (?, ?, ?)",
                [(k.flow, k.poweroffice_id, k.zendesk_id) for k in sorted(state.kept_apart)],
            )
        rewrite, known = new_decisions(seen, state)
        if rewrite:
            db.execute("DELETE FROM decisions")
        db.executemany(
            "INSERT INTO decisions (seq, decision) VALUES (?, ?)",
            decision_rows(state.decisions, known),
        )
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('retry', ?)",
            (retry_text(state.retry),),
        )
        full = state.last_full_sync
        for key, value in (
            ("last_full_sync", None if full is None else full.isoformat()),
            ("full_plan_basis", state.full_plan_basis),
        ):
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _save_mirror(self, db: sqlite3.Connection, mirror: Snapshot, seen: Snapshot | None) -> None:
        system = mirror.system.value
        if seen is None:
            db.execute("DELETE FROM records WHERE system = ?", (system,))
        for change in record_changes(seen, mirror):
            db.executemany(
                "DELETE FROM records WHERE system = ? AND kind = ? AND id = ?",
                [(system, change.scope, rid) for rid in change.gone],
            )
            db.executemany(
                _INSERT_RECORD,
                [record_row(rec, self._fields) for rec in change.changed],
            )
        db.execute("DELETE FROM mirror_complete WHERE system = ?", (system,))
        db.executemany(
            "INSERT INTO mirror_complete VALUES (?, ?)",
            [(system, kind.value) for kind in sorted(mirror.complete)],
        )
