"""What only the PostgreSQL state store shows: tenants that share one database and never see
each other's rows, versioned schema migrations, the per-tenant run lock, opening read-only, and
connection errors that name the server but never the password. (The port contract itself is
``test_state_store_contract.py``, run against every store.)"""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from tests.report_support import run_report

import adapters.postgres
from adapters.postgres import (
    MIGRATIONS,
    SCHEMA_VERSION,
    NothingStored,
    PostgresStateStore,
)
from adapters.staterows import StateFileError
from talkcore.plan import Ambiguity
from talkcore.ports import AlreadyRunning, WriteOp, WriteRequest, WriteResult
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Decision, KeptApart, Link, SyncState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _state(tag: str) -> SyncState:
    """A state whose every part carries ``tag``, under the same ids for every tag."""
    return SyncState(
        cursors={"zendesk:user": f"cursor {tag}"},
        resolutions={"customers-organizations/1/Name": System.ZENDESK},
        ambiguities=(
            Ambiguity(
                f"a-{tag}",
                "contact-persons-users",
                f"{tag}@x.no",
                (RecordKey.of(Kind.CONTACT_PERSON, "5"), RecordKey.of(Kind.CONTACT_PERSON, "6")),
            ),
        ),
        last_full_sync=T0,
        kept_apart=frozenset({KeptApart("customers-organizations", "1", f"77{tag}")}),
        decisions=(Decision(T0, tag, "unlink", "customers-organizations", "1 / 77"),),
    ).with_links(
        "customers-organizations", [Link("customers-organizations", "1", "77", {"Name": tag})]
    )


def _mirror(tag: str) -> Snapshot:
    """One customer and one user with the same ids and e-mail for every tag; the name differs."""
    return Snapshot.of(
        System.ZENDESK,
        [
            Record(RecordKey.of(Kind.USER, "501"), {"email": "shared@x.no", "name": tag}),
            Record(RecordKey.of(Kind.ORGANIZATION, "77"), {"name": "Shared AS", "tag": tag}),
        ],
        complete=[Kind.USER],
    )


def _write(item: str) -> WriteRequest:
    return WriteRequest(item, WriteOp.UPDATE, Kind.ORGANIZATION, "77", {"name": "Shared AS"})


@pytest.fixture
def two_tenants(database_url: str) -> Iterator[tuple[PostgresStateStore, PostgresStateStore]]:
    with (
        PostgresStateStore(database_url, "acme") as acme,
        PostgresStateStore(database_url, "beta") as beta,
    ):
        yield acme, beta


def test_two_tenants_sharing_ids_and_emails_never_see_each_others_rows(
    two_tenants: tuple[PostgresStateStore, PostgresStateStore], database_url: str
) -> None:
    acme, beta = two_tenants
    acme.save(_state("acme"), [_mirror("acme")])
    beta.save(_state("beta"), [_mirror("beta")])
    # The same item ids in both journals, one settled in acme only.
    acme.journal_intents("run-a", [_write("i1"), _write("i2")])
    beta.journal_intents("run-b", [_write("i1"), _write("i2")])
    acme.journal_results("run-a", [WriteResult("i1")])
    beta.close_intents(["i2"])
    acme.record_run(run_report("run-a"))
    beta.record_run(run_report("run-b"))

    for tag in ("acme", "beta"):
        with PostgresStateStore(database_url, tag) as store:
            assert store.load_state() == _state(tag)
            mirror = store.load_mirror(System.ZENDESK)
            assert {r.get("name") for r in mirror.of_kind(Kind.USER).values()} == {tag}
            (found,) = store.find_records(System.ZENDESK, Kind.USER, email="SHARED@x.no")
            assert found.get("name") == tag
            (org,) = store.find_records(System.ZENDESK, Kind.ORGANIZATION, name="shared as")
            assert org.get("tag") == tag
            by_key = store.records([RecordKey.of(Kind.USER, "501")])
            assert [r.get("name") for r in by_key.values()] == [tag]
            assert [r["run_id"] for r in store.recent_runs()] == [f"run-{tag[0]}"]
    with PostgresStateStore(database_url, "acme") as store:
        assert [w.item_id for w in store.open_intents()] == ["i2"]
    with PostgresStateStore(database_url, "beta") as store:
        assert [w.item_id for w in store.open_intents()] == ["i1"]

    # A save of one tenant (here: emptying it) leaves the other's rows alone.
    acme.save(SyncState(), [Snapshot(System.ZENDESK)])
    with PostgresStateStore(database_url, "beta") as store:
        assert store.load_state() == _state("beta")
        assert len(store.load_mirror(System.ZENDESK)) == 2


def test_each_tenant_has_its_own_run_lock(
    two_tenants: tuple[PostgresStateStore, PostgresStateStore], database_url: str
) -> None:
    acme, beta = two_tenants
    # Different tenants run side by side; a second run of one is refused, naming the holder.
    with acme.lock(), beta.lock(), PostgresStateStore(database_url, "acme") as other:
        holder = rf"run \(pid {os.getpid()}, since .* UTC\) is syncing tenant 'acme'"
        with pytest.raises(AlreadyRunning, match=holder), other.lock():
            pass  # pragma: no cover - must not get here
        assert other.run_holder() is not None
    with PostgresStateStore(database_url, "acme") as other:
        assert other.run_holder() is None
        with other.lock():
            pass


HOLDER = """
import sys, time
from adapters.postgres import PostgresStateStore
store = PostgresStateStore(sys.argv[1], "acme")
with store.lock():
    print("locked", flush=True)
    time.sleep(3600)
"""


def test_a_killed_run_leaves_no_lock_behind(database_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    with PostgresStateStore(database_url, "acme") as store:
        with pytest.raises(AlreadyRunning), store.lock():
            pass  # pragma: no cover
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # The server ends the dead client's session, and its lock with it, as soon as it reads
        # the closed socket; wait for that (bounded only so a bug cannot hang the suite).
        name = f"talksync {proc.pid}@{socket.gethostname()}"[:63]
        for _ in range(600):
            row = store._db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            if row == (0,):
                break
            time.sleep(0.05)
        assert store.run_holder() is None
        with store.lock():
            pass


# -- every query names its tenant -------------------------------------------------------------


def _tenant_tables() -> set[str]:
    """The tables the migrations give a tenant_id column."""
    sql = "\n".join(m.sql for m in MIGRATIONS)
    tables = set()
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\);", sql, flags=re.S):
        if "tenant_id" in body:
            tables.add(name)
    return tables


def _string_texts(tree: ast.AST) -> list[str]:
    """Every string in ``tree``: an f-string whole, its fields shown as ``{}`` (so a statement
    built with one is read as one text, not as pieces)."""
    texts: list[str] = []
    parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts |= {id(value) for value in node.values}
            texts.append(
                "".join(
                    v.value if isinstance(v, ast.Constant) else "{}"
                    for v in node.values
                    if not isinstance(v, ast.Constant) or isinstance(v.value, str)
                )
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            texts.append(node.value)
    return texts


def test_every_statement_on_a_tenant_table_names_the_tenant() -> None:
    """Read from the store's source: each SQL text touching a tenant's table filters or writes
    by ``tenant_id`` (the behaviour is shown above; this keeps a new query from forgetting)."""
    tables = _tenant_tables()
    assert {"records", "links", "journal", "runs", "meta", "decisions"} <= tables
    source = Path(adapters.postgres.__file__).read_text(encoding="utf-8")
    statements = [
        text
        for text in _string_texts(ast.parse(source))
        if re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE)\b", text)
    ]
    touching = [
        sql
        for sql in statements
        if set(re.findall(r"(?:FROM|INTO|UPDATE|JOIN)\s+(\w+)", sql)) & tables
    ]
    assert len(touching) >= 20
    for sql in touching:
        assert "tenant_id" in sql, sql
    # The one f-string statement: its table names are fixed, its filter is the tenant.
    assert 'f"DELETE FROM {table} WHERE tenant_id = %s"' in source


# -- the schema and its migrations -------------------------------------------------------------


def test_the_migrations_are_numbered_files_applied_once_in_order(database_url: str) -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    with PostgresStateStore(database_url) as store:
        assert store.schema_version == SCHEMA_VERSION
    with PostgresStateStore(database_url) as store:  # a second open applies nothing again
        rows = store._db.execute("SELECT version, name FROM talksync_schema ORDER BY 1").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def open_one(tenant: str) -> None:
        try:
            PostgresStateStore(database_url, tenant).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(database_url) as db:
        count = db.execute("SELECT count(*) FROM talksync_schema").fetchone()
        tenants = db.execute("SELECT count(*) FROM tenants").fetchone()
    assert count == (SCHEMA_VERSION,)
    assert tenants == (4,)


def test_a_database_from_a_newer_version_is_refused(database_url: str) -> None:
    PostgresStateStore(database_url).close()
    with psycopg.connect(database_url) as db:
        db.execute(
            "INSERT INTO talksync_schema (version, name) VALUES (%s, 'future')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(StateFileError, match="newer talksync"):
        PostgresStateStore(database_url)


def test_opening_to_read_creates_nothing_and_says_there_is_nothing(database_url: str) -> None:
    with pytest.raises(NothingStored, match="no talksync state in postgresql://"):
        PostgresStateStore(database_url, create=False)
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT to_regclass('talksync_schema')").fetchone() == (None,)
    PostgresStateStore(database_url, "acme").close()
    with pytest.raises(NothingStored, match="no tenant 'beta'"):
        PostgresStateStore(database_url, "beta", create=False)
    with PostgresStateStore(database_url, "acme", create=False) as store:
        assert store.load_state() == SyncState()


def test_a_server_that_cannot_be_reached_is_named_without_the_password() -> None:
    with socket_that_refuses() as port:
        url = f"postgresql://talksync:hunter2@127.0.0.1:{port}/state"
        with pytest.raises(StateFileError) as caught:
            PostgresStateStore(url)
    message = str(caught.value)
    assert f"postgresql://talksync@127.0.0.1:{port}/state" in message
    assert "hunter2" not in message


class socket_that_refuses:  # noqa: N801 - read as a context manager's name
    """A loopback port with nothing listening (bound, never listened on, so it stays free)."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_removed_tenant_takes_all_its_rows_with_it(database_url: str) -> None:
    with PostgresStateStore(database_url, "acme") as acme:
        acme.save(_state("acme"), [_mirror("acme")])
        acme.journal_intents("r", [_write("i1")])
        acme.record_run(run_report("r"))
    with PostgresStateStore(database_url, "beta") as beta:
        beta.save(_state("beta"), [_mirror("beta")])
    with psycopg.connect(database_url) as db:
        db.execute("DELETE FROM tenants WHERE name = 'acme'")
        for table in sorted(_tenant_tables()):
            orphans = (
                f"SELECT count(*) FROM {table} WHERE tenant_id NOT IN (SELECT id FROM tenants)"
            )
            assert db.execute(orphans.encode()).fetchone() == (0,), table
    with PostgresStateStore(database_url, "beta") as beta:
        assert beta.load_state() == _state("beta")
