"""The PostgreSQL state store: the SQLite store's tables, once per tenant, in one database.

Every row carries its tenant and every query names it (``tenant_id = %s`` first in each key and
each ``WHERE``), so one database holds many companies' states and no query reaches another's.
A store object serves one tenant, found (or, when opening for writing, created) by name.

Like the SQLite store, every ``save`` is one transaction that writes only what changed since
the last load or save (the diffing and the row shapes are shared: ``adapters.staterows``).
The schema is versioned: numbered SQL files in ``postgres_schema/`` applied in order, each in
the transaction that records its version, under an advisory lock so two processes starting at
once migrate once.

A run holds a session-level advisory lock on (talksync, tenant) on a connection of its own:
PostgreSQL drops it when that connection ends, so a crashed run never leaves a stale lock, and
the CLI and the workers exclude each other per tenant. Nothing secret is ever stored here.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, LiteralString

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict

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

DEFAULT_TENANT = "default"
"""The tenant a single-company setup (``TALKSYNC_DATABASE_URL`` alone) keeps its state under."""

LOCK_SPACE = 0x74616C6B
"""The first key of talksync's advisory locks ("talk"); the second is the tenant id."""
MIGRATION_LOCK = 0
"""The second key while migrating (tenant ids start at 1)."""


class NothingStored(StateFileError):
    """A read-only open found no schema or no such tenant: nothing to read yet."""


@attrs.frozen
class Migration:
    """One numbered SQL file of ``postgres_schema/``."""

    version: int
    name: str
    sql: str


def migrations() -> tuple[Migration, ...]:
    """The schema's migrations in order; their numbers must run 1, 2, 3, … without a gap."""
    found = []
    for entry in resources.files("adapters").joinpath("postgres_schema").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    numbers = [m.version for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"postgres_schema migrations must be numbered 1..n, found {numbers}")
    return tuple(found)


MIGRATIONS = migrations()

_UPSERT_RECORD = (
    "INSERT INTO records"  # noqa: S608 - fixed names
    f" (tenant_id, system, kind, id, fields, modified, active, {', '.join(KEY_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * (7 + len(KEY_COLUMNS)))})"
    " ON CONFLICT (tenant_id, system, kind, id) DO UPDATE SET"
    " fields = excluded.fields, modified = excluded.modified, active = excluded.active, "
    + ", ".join(f"{column} = excluded.{column}" for column in KEY_COLUMNS)
)
SCHEMA_VERSION = len(MIGRATIONS)


def describe(url: str) -> str:
    """Where ``url`` points, for messages: user, host, port and database, never a password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unreadable database URL"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection named after this process; ``StateFileError`` naming where
    (never the password) when it cannot be had."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            application_name=f"talksync {os.getpid()}@{socket.gethostname()}"[:63],
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StateFileError(f"cannot connect to PostgreSQL at {describe(url)}: {reason}") from None


def schema_version(db: psycopg.Connection[Any]) -> int:
    """The schema version of the database (0: never migrated)."""
    exists = db.execute("SELECT to_regclass('talksync_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = db.execute("SELECT coalesce(max(version), 0) FROM talksync_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(db: psycopg.Connection[Any], where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; refuse a database a newer talksync wrote."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))
        # The one table that must exist before a version can be read: the version record.
        db.execute(
            "CREATE TABLE IF NOT EXISTS talksync_schema (version integer PRIMARY KEY,"
            " name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"
        )
        version = schema_version(db)
        if version > SCHEMA_VERSION:
            raise _too_new(where, version)
        for migration in MIGRATIONS[version:]:
            db.execute(migration.sql.encode())
            db.execute(
                "INSERT INTO talksync_schema (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )


def readable(db: psycopg.Connection[Any], where: str) -> bool:
    """Whether the database holds talksync's schema (``False``: never migrated); a schema of
    another version is an error, since a read-only open migrates nothing."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise _too_new(where, version)
    if version not in (0, SCHEMA_VERSION):
        raise StateFileError(
            f"{where} has schema {version}, this talksync expects {SCHEMA_VERSION}:"
            " run `talksync sync` (or a worker) to migrate it"
        )
    return version != 0


def _too_new(where: str, version: int) -> StateFileError:
    return StateFileError(
        f"{where} was written by a newer talksync (schema {version}; this version "
        f"knows up to {SCHEMA_VERSION}); upgrade talksync to use it"
    )


class PostgresStateStore(DiffingStore):
    """One tenant's state store in PostgreSQL (see the module docstring for its guarantees).

    ``create=False`` opens for reading only: no migration, no tenant created, and
    ``NothingStored`` when there is nothing to read yet.
    """

    def __init__(
        self,
        url: str,
        tenant: str = DEFAULT_TENANT,
        *,
        create: bool = True,
        dataflow: Dataflow = DEFAULT_DATAFLOW,
    ) -> None:
        self.url = url
        self._fields = lookup_fields(dataflow)
        self.tenant = tenant
        self.where = describe(url)
        self._db = connect(url)
        try:
            self.tenant_id = self._open(create)
        except BaseException:
            self._db.close()
            raise
        self._seen_state: SyncState | None = None
        self._seen_mirrors: dict[System, Snapshot] = {}
        self._saved_at: str | None = None

    # -- opening -------------------------------------------------------------------------

    def _open(self, create: bool) -> int:
        if create:
            migrate(self._db, self.where)
            self._db.execute(
                "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (self.tenant,),
            )
        elif not readable(self._db, self.where):
            raise NothingStored(f"no talksync state in {self.where}")
        row = self._db.execute("SELECT id FROM tenants WHERE name = %s", (self.tenant,)).fetchone()
        if row is None:
            raise NothingStored(f"no tenant {self.tenant!r} in {self.where}")
        if create:
            self._rekey(int(row[0]))
        return int(row[0])

    def _rekey(self, tenant: int) -> None:
        """Fill the look-up key columns again when they were computed from other roles (an
        older schema, another dataflow): the view's look-ups must find what the planner would."""
        marker = lookup_marker(self._fields)
        with self._db.transaction():
            row = self._db.execute(
                "SELECT value FROM meta WHERE tenant_id = %s AND key = 'lookup_keys' FOR UPDATE",
                (tenant,),
            ).fetchone()
            if row is not None and row[0] == marker:
                return
            rows = self._db.execute(
                "SELECT system, kind, id, fields FROM records WHERE tenant_id = %s", (tenant,)
            ).fetchall()
            width = len(KEY_COLUMNS)
            with self._db.cursor() as cur:
                cur.executemany(
                    f"UPDATE records SET {key_assignments('%s')}"  # noqa: S608 - fixed names
                    " WHERE tenant_id = %s AND system = %s AND kind = %s AND id = %s",
                    [
                        (*keys[:width], tenant, *keys[width:])
                        for keys in rekeyed_rows(rows, self._fields)
                    ],
                )
            self._db.execute(
                "INSERT INTO meta (tenant_id, key, value) VALUES (%s, 'lookup_keys', %s)"
                " ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value",
                (tenant, marker),
            )

    @property
    def schema_version(self) -> int:
        """The schema version of the database."""
        return schema_version(self._db)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> PostgresStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _many(self, sql: LiteralString, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per row (pipelined by psycopg); nothing when there are no rows."""
        if rows:
            with self._db.cursor() as cursor:
                cursor.executemany(sql, rows)

    # -- StateStore port -----------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this tenant for one run; raise ``AlreadyRunning`` at once if another run holds
        it. The lock lives on a connection of its own, released when that connection ends."""
        db = connect(self.url)
        try:
            row = db.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, self.tenant_id)
            ).fetchone()
            if not row or not row[0]:
                holder = self.run_holder()
                who = (
                    ""
                    if holder is None
                    else f" (pid {holder[0] or '?'}, since {holder[1]:%H:%M:%S} UTC)"
                )
                raise AlreadyRunning(
                    f"another talksync run{who} is syncing tenant {self.tenant!r} in"
                    f" {self.where}; wait for it to finish"
                )
            yield
        finally:
            db.close()

    def _load_state(self, *, links: bool) -> SyncState:
        db, tenant = self._db, (self.tenant_id,)
        tables = (
            link_tables(
                db.execute(
                    "SELECT flow, poweroffice_id, zendesk_id, base FROM links WHERE tenant_id = %s",
                    tenant,
                )
            )
            if links
            else {}
        )
        cursors = dict(
            db.execute("SELECT name, value FROM cursors WHERE tenant_id = %s", tenant).fetchall()
        )
        conflicts = {
            key: load(data, Conflict)
            for key, data in db.execute(
                "SELECT key, conflict FROM conflicts WHERE tenant_id = %s", tenant
            )
        }
        resolutions = {
            key: System(winner)
            for key, winner in db.execute(
                "SELECT key, winner FROM resolutions WHERE tenant_id = %s", tenant
            )
        }
        ambiguities = tuple(
            load(data, Ambiguity)
            for (data,) in db.execute(
                "SELECT ambiguity FROM ambiguities WHERE tenant_id = %s ORDER BY position", tenant
            )
        )
        kept_apart = frozenset(
            KeptApart(*row)
            for row in db.execute(
                "SELECT flow, poweroffice_id, zendesk_id FROM kept_apart WHERE tenant_id = %s",
                tenant,
            )
        )
        decisions = tuple(
            load(data, Decision)
            for (data,) in db.execute(
                "SELECT decision FROM decisions WHERE tenant_id = %s ORDER BY seq", tenant
            )
        )
        full = self._meta("last_full_sync")
        state = SyncState(
            links=tables,
            cursors=cursors,
            conflicts=conflicts,
            resolutions=resolutions,
            ambiguities=ambiguities,
            last_full_sync=datetime.fromisoformat(full) if full else None,
            retry=retry_from_text(self._meta("retry")),
            kept_apart=kept_apart,
            decisions=decisions,
            full_plan_basis=self._meta("full_plan_basis"),
        )
        return state

    def load_mirror(self, system: System) -> Snapshot:
        """The last-seen records of ``system`` (empty on first use).

        In a process that saved the mirror itself and nobody has saved since, the very snapshot
        saved is returned: no reload, and its lookup indexes stay warm.
        """
        cached = self._seen_mirrors.get(system)
        if cached is not None and self._saved_at is not None and self._saved_at == self._marker():
            return cached
        by_kind: dict[Kind, dict[str, Record]] = {}
        rows = self._db.execute(
            "SELECT kind, id, fields, modified, active FROM records"
            " WHERE tenant_id = %s AND system = %s",
            (self.tenant_id, system.value),
        )
        for kind, rid, fields, modified, active in rows:
            record = record_from_row(system, kind, rid, fields, modified, active)
            by_kind.setdefault(record.key.kind, {})[rid] = record
        snapshot = Snapshot(system, by_kind, self.mirror_complete(system))
        self._seen_mirrors[system] = snapshot
        return snapshot

    def _marker(self) -> str | None:
        return self._meta("saved_at")

    def _write(
        self, state: SyncState, mirrors: Sequence[Snapshot], seen: Seen, marker: str
    ) -> None:
        with self._db.transaction():
            self._save_state(state, seen[0])
            for mirror in mirrors:
                self._save_mirror(mirror, seen[1].get(mirror.system))
            self._set_meta("saved_at", marker)

    def journal_intents(self, run_id: str, writes: Sequence[WriteRequest]) -> None:
        """Durably record writes about to be sent (committed before this returns)."""
        now = datetime.now(UTC).isoformat()
        with self._db.transaction():
            # Journaling an intent again reopens it and moves it to the end (a new seq).
            self._many(
                "INSERT INTO journal (tenant_id, item_id, run_id, intent, result, recorded,"
                " closed) VALUES (%s, %s, %s, %s, NULL, %s, false)"
                " ON CONFLICT (tenant_id, item_id) DO UPDATE SET run_id = excluded.run_id,"
                " intent = excluded.intent, result = NULL, recorded = excluded.recorded,"
                " closed = false, seq = DEFAULT",
                [(self.tenant_id, w.item_id, run_id, dump(w), now) for w in writes],
            )

    def journal_results(self, run_id: str, results: Sequence[WriteResult]) -> None:
        """Durably record the outcome of journaled writes."""
        now = datetime.now(UTC).isoformat()
        with self._db.transaction():
            # A result with no intent (never in practice) is kept as SQLite keeps it.
            self._many(
                "INSERT INTO journal (tenant_id, item_id, run_id, intent, result, recorded)"
                " VALUES (%s, %s, %s, NULL, %s, %s)"
                " ON CONFLICT (tenant_id, item_id) DO UPDATE SET result = excluded.result,"
                " recorded = excluded.recorded",
                [(self.tenant_id, r.item_id, run_id, dump(r), now) for r in results],
            )

    def open_intents(self) -> list[WriteRequest]:
        """Journaled writes with no recorded outcome, in the order they were journaled."""
        rows = self._db.execute(
            "SELECT intent FROM journal WHERE tenant_id = %s AND result IS NULL"
            " AND intent IS NOT NULL AND NOT closed ORDER BY seq",
            (self.tenant_id,),
        )
        return [load(intent, WriteRequest) for (intent,) in rows]

    def close_intents(self, item_ids: Sequence[str]) -> None:
        """Mark journaled writes as settled (kept for the audit trail, no longer open)."""
        with self._db.transaction():
            self._many(
                "UPDATE journal SET closed = true WHERE tenant_id = %s AND item_id = %s",
                [(self.tenant_id, i) for i in item_ids],
            )

    def record_run(self, report: RunReport) -> None:
        """Append one run's report to the run log, in the shape ``sync --json`` prints; that
        run's settled journal entries go."""
        run_id = report.run_id
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO runs (tenant_id, run_id, report) VALUES (%s, %s, %s)",
                (self.tenant_id, run_id, report_text(report)),
            )
            # The run log now holds the outcome; open intents stay for crash recovery.
            self._db.execute(
                "DELETE FROM journal WHERE tenant_id = %s AND run_id = %s"
                " AND (result IS NOT NULL OR closed)",
                (self.tenant_id, run_id),
            )

    def records(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, Record]:
        """The mirrored records of ``keys`` (by primary key; absent ones left out)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        rows = self._db.execute(
            "SELECT system, kind, id, fields, modified, active FROM records"
            " WHERE tenant_id = %s AND (system, kind, id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            (
                self.tenant_id,
                [k.system.value for k in wanted],
                [k.kind.value for k in wanted],
                [k.id for k in wanted],
            ),
        )
        found = {}
        for system, *row in rows:
            record = record_from_row(System(system), *row)
            found[record.key] = record
        return {key: found[key] for key in wanted if key in found}

    def links_touching(self, flow: str, system: System, ids: Sequence[str]) -> list[Link]:
        """The links of ``flow`` whose ``system``-side id is one of ``ids`` (one indexed query)."""
        column = "poweroffice_id" if system is System.POWEROFFICE else "zendesk_id"
        rows = self._db.execute(
            "SELECT flow, poweroffice_id, zendesk_id, base FROM links"  # noqa: S608 - fixed names
            f" WHERE tenant_id = %s AND flow = %s AND {column} = ANY(%s::text[])",
            (self.tenant_id, flow, list(dict.fromkeys(ids))),
        )
        return links_touching(LinkTable.of(link_from_row(*row) for row in rows), system, ids)

    def find(self, kind: Kind, lookup: Lookup, values: Sequence[str]) -> list[Record]:
        """The records of ``kind`` whose ``lookup`` key is one of ``values`` (one indexed query)."""
        column = LOOKUP_COLUMNS[lookup]
        rows = self._db.execute(
            "SELECT kind, id, fields, modified, active FROM records"  # noqa: S608 - fixed names
            f" WHERE tenant_id = %s AND system = %s AND kind = %s AND {column} = ANY(%s::text[])",
            (self.tenant_id, kind.system.value, kind.value, list(dict.fromkeys(values))),
        )
        found = {row[1]: record_from_row(kind.system, *row) for row in rows}
        return [found[rid] for rid in sorted(found, key=id_order)]

    def link_count(self, flow: str) -> int:
        """How many links ``flow`` has."""
        row = self._db.execute(
            "SELECT count(*) FROM links WHERE tenant_id = %s AND flow = %s",
            (self.tenant_id, flow),
        ).fetchone()
        return int(row[0]) if row else 0

    def mirror_holds_records(self, system: System) -> bool:
        """Whether the mirror of ``system`` holds any record (one row read, not a count)."""
        row = self._db.execute(
            "SELECT 1 FROM records WHERE tenant_id = %s AND system = %s LIMIT 1",
            (self.tenant_id, system.value),
        ).fetchone()
        return row is not None

    def mirror_ids(self, kind: Kind) -> Iterator[str]:
        """The ids of the mirrored records of ``kind``, fetched in batches (a server-side
        cursor, so a million ids are never one result in memory)."""
        # A server-side cursor lives in a transaction (the connection autocommits).
        with self._db.transaction(), self._db.cursor(name="mirror_ids") as cursor:
            cursor.itersize = 20_000
            cursor.execute(
                "SELECT id FROM records WHERE tenant_id = %s AND system = %s AND kind = %s",
                (self.tenant_id, kind.system.value, kind.value),
            )
            for (rid,) in cursor:
                yield rid

    def mirror_complete(self, system: System) -> frozenset[Kind]:
        """The kinds of ``system`` whose last read was a full read."""
        rows = self._db.execute(
            "SELECT kind FROM mirror_complete WHERE tenant_id = %s AND system = %s",
            (self.tenant_id, system.value),
        )
        return frozenset(Kind(kind) for (kind,) in rows)

    # -- the run log and look-ups for the CLI ----------------------------------------------

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last ``limit`` run reports, newest first."""
        rows = self._db.execute(
            "SELECT report FROM runs WHERE tenant_id = %s ORDER BY seq DESC LIMIT %s",
            (self.tenant_id, limit),
        )
        return [json.loads(report) for (report,) in rows]

    def find_records(
        self, system: System, kind: Kind, *, email: str | None = None, name: str | None = None
    ) -> list[Record]:
        """Mirrored records of ``kind`` whose normalised e-mail or organization name matches."""
        column, key = lookup_column(email, name)
        rows = self._db.execute(
            "SELECT kind, id, fields, modified, active FROM records"  # noqa: S608 - fixed names
            f" WHERE tenant_id = %s AND system = %s AND kind = %s AND {column} = %s ORDER BY id",
            (self.tenant_id, system.value, kind.value, key),
        )
        return [record_from_row(system, *row) for row in rows]

    def run_holder(self) -> tuple[int | None, datetime] | None:
        """The process id (``None`` for a client that is not talksync) and the start of the run
        holding this tenant's lock; ``None`` when no run holds it."""
        row = self._db.execute(
            "SELECT a.application_name, a.backend_start FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
            " AND l.objsubid = 2",
            (LOCK_SPACE, self.tenant_id),
        ).fetchone()
        if row is None:
            return None
        name, since = row
        pid = re.match(r"talksync (\d+)@", name or "")
        return (int(pid[1]) if pid else None, since.astimezone(UTC))

    # -- internals -----------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM meta WHERE tenant_id = %s AND key = %s", (self.tenant_id, key)
        ).fetchone()
        return str(row[0]) if row else None

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute(
                "DELETE FROM meta WHERE tenant_id = %s AND key = %s", (self.tenant_id, key)
            )
            return
        self._db.execute(
            "INSERT INTO meta (tenant_id, key, value) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value",
            (self.tenant_id, key, value),
        )

    def _clear(self, table: str) -> None:
        self._db.execute(
            f"DELETE FROM {table} WHERE tenant_id = %s".encode(),  # noqa: S608 - fixed names
            (self.tenant_id,),
        )

    def _save_state(self, state: SyncState, seen: SyncState | None) -> None:
        tenant = self.tenant_id
        if seen is None:
            self._clear("links")
        for change in link_changes(seen, state):
            self._many(
                "DELETE FROM links WHERE tenant_id = %s AND flow = %s AND poweroffice_id = %s",
                [(tenant, change.scope, po_id) for po_id in change.gone],
            )
            self._many(
                "INSERT INTO links (tenant_id, flow, poweroffice_id, zendesk_id, base)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, flow, poweroffice_id)"
                " DO UPDATE SET zendesk_id = excluded.zendesk_id, base = excluded.base",
                [(tenant, *link_row(link)) for link in change.changed],
            )
        # The queues and cursors are small: rewriting them whole is simpler than diffing.
        for table in ("cursors", "conflicts", "resolutions", "ambiguities"):
            self._clear(table)
        self._many(
            "INSERT INTO cursors (tenant_id, name, value) VALUES (%s, %s, %s)",
            [(tenant, *item) for item in state.cursors.items()],
        )
        self._many(
            "INSERT INTO conflicts (tenant_id, key, conflict) VALUES (%s, %s, %s)",
            [(tenant, key, dump(conflict)) for key, conflict in state.conflicts.items()],
        )
        self._many(
            "INSERT INTO resolutions (tenant_id, key, winner) VALUES (%s, %s, %s)",
            [(tenant, key, system.value) for key, system in state.resolutions.items()],
        )
        self._many(
            "INSERT INTO ambiguities (tenant_id, position, ambiguity) VALUES (%s, %s, %s)",
            [(tenant, i, dump(a)) for i, a in enumerate(state.ambiguities)],
        )
        kept = state.kept_apart
        if seen is None or seen.kept_apart is not kept:
            self._clear("kept_apart")
            self._many(
                "INSERT INTO kept_apart (tenant_id, flow, poweroffice_id, zendesk_id)"
                " VALUES (%s, %s, %s, %s)",
                [(tenant, k.flow, k.poweroffice_id, k.zendesk_id) for k in sorted(kept)],
            )
        rewrite, known = new_decisions(seen, state)
        if rewrite:
            self._clear("decisions")
        self._many(
            "INSERT INTO decisions (tenant_id, seq, decision) VALUES (%s, %s, %s)",
            [(tenant, *row) for row in decision_rows(state.decisions, known)],
        )
        self._set_meta("retry", retry_text(state.retry))
        full = state.last_full_sync
        self._set_meta("last_full_sync", None if full is None else full.isoformat())
        self._set_meta("full_plan_basis", state.full_plan_basis)

    def _save_mirror(self, mirror: Snapshot, seen: Snapshot | None) -> None:
        system, tenant = mirror.system.value, self.tenant_id
        if seen is None:
            self._db.execute(
                "DELETE FROM records WHERE tenant_id = %s AND system = %s", (tenant, system)
            )
        for change in record_changes(seen, mirror):
            self._many(
                "DELETE FROM records WHERE tenant_id = %s AND system = %s AND kind = %s"
                " AND id = %s",
                [(tenant, system, change.scope, rid) for rid in change.gone],
            )
            self._many(
                _UPSERT_RECORD,
                [(tenant, *record_row(rec, self._fields)) for rec in change.changed],
            )
        self._db.execute(
            "DELETE FROM mirror_complete WHERE tenant_id = %s AND system = %s", (tenant, system)
        )
        self._many(
            "INSERT INTO mirror_complete (tenant_id, system, kind) VALUES (%s, %s, %s)",
            [(tenant, system, kind.value) for kind in sorted(mirror.complete)],
        )
