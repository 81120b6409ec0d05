"""The state-store port contract, run against the in-memory, SQLite and PostgreSQL stores alike.

The second half holds what only a durable store can show (SQLite and PostgreSQL): reopening,
writing only what changed, a failed save, and a process killed in the middle of a save; and
what only the SQLite file shows (file mode, its version). PostgreSQL's own (tenants, schema
migrations, connecting) is in ``test_postgres_store.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from tests.report_support import busy_report, run_report

from adapters.memory import MemoryStateStore
from adapters.postgres import PostgresStateStore
from adapters.reportjson import FORMAT, plan_from_json, report_json
from adapters.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStateStore, StateFileError
from talkcore.dataflow import DEFAULT_DATAFLOW, Role
from talkcore.plan import Ambiguity, Conflict
from talkcore.policy import ConflictPolicy
from talkcore.ports import (
    AlreadyRunning,
    Lookup,
    StateStore,
    WriteError,
    WriteOp,
    WriteRequest,
    WriteResult,
)
from talkcore.records import Kind, Record, RecordKey, Snapshot, System, upsert
from talkcore.state import Decision, KeptApart, Link, LinkTable, SyncState
from talkcore.view import lookup_fields, lookup_key

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIELDS = lookup_fields(DEFAULT_DATAFLOW)


@attrs.define
class StoreUnderTest:
    """A store and a way to get it back as a later run would (a fresh open, for SQLite)."""

    store: StateStore
    reopen: Callable[[], StateStore]


Store = SqliteStateStore | PostgresStateStore


@attrs.define
class Durable:
    """A durable store's place: ``open()`` opens it anew (as a later run would), and ``where``
    names it for a child process (``STORE`` in the child's code opens it)."""

    kind: str
    where: str
    tenant: str = ""
    _opened: list[Store] = attrs.field(factory=list)

    def open(self) -> Store:
        store: Store = (
            SqliteStateStore(self.where)
            if self.kind == "sqlite"
            else PostgresStateStore(self.where, self.tenant)
        )
        self._opened.append(store)
        return store

    def child_opener(self) -> str:
        """Python that opens the store in a child process as ``store``."""
        if self.kind == "sqlite":
            return (
                "from adapters.sqlite import SqliteStateStore\n"
                f"store = SqliteStateStore({self.where!r})"
            )
        return (
            "from adapters.postgres import PostgresStateStore\n"
            f"store = PostgresStateStore({self.where!r}, {self.tenant!r})"
        )

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


def _place(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Durable:
    if kind == "sqlite":
        return Durable(kind, str(tmp_path / "state.db"))
    # One database for all; each test is a tenant of its own, so the PostgreSQL runs also show
    # that tenants keep apart (every test's store starts empty beside the others' rows).
    url, tenant = request.getfixturevalue("shared_database"), request.getfixturevalue("tenant_name")
    return Durable(kind, url, tenant)


@pytest.fixture(params=["sqlite", "postgres"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Durable]:
    place = _place(request.param, request, tmp_path)
    yield place
    place.close_all()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "memory":
        mem = MemoryStateStore()
        yield StoreUnderTest(mem, lambda: mem)
        return
    place = _place(request.param, request, tmp_path)
    yield StoreUnderTest(place.open(), place.open)
    place.close_all()


def customer(rid: str, name: str, **extra: str | None) -> Record:
    return Record(RecordKey.of(Kind.CUSTOMER, rid), {"Name": name, **extra}, T0, True)


def user(rid: str, email: str | None, *, active: bool = True) -> Record:
    return Record(
        RecordKey.of(Kind.USER, rid), {"email": email, "organization_id": None}, None, active
    )


def conflict() -> Conflict:
    return Conflict(
        id="c1",
        flow="customers-organizations",
        poweroffice=RecordKey.of(Kind.CUSTOMER, "1"),
        zendesk=RecordKey.of(Kind.ORGANIZATION, "77"),
        property="Name",
        base="Acme",
        poweroffice_value="Acme AS",
        zendesk_value="ACME",
        policy=ConflictPolicy.MANUAL,
        winner=None,
        rule="manual",
    )


def full_state() -> SyncState:
    links = [
        Link("customers-organizations", "1", "77", {"Name": "Acme"}),
        Link("customers-organizations", "2", "78", {"Name": "Beta"}),
    ]
    return SyncState(
        links={
            "customers-organizations": LinkTable.of(links),
            "contact-persons-users": LinkTable.of(
                [
                    Link(
                        "contact-persons-users",
                        "9",
                        "501",
                        {"emailAddress": "a@x.no", "partyId": None},
                    )
                ]
            ),
        },
        cursors={"zendesk:user": "abc", "poweroffice:customer": "2026-03-01T12:00:00+00:00"},
        conflicts={conflict().key: conflict()},
        resolutions={"departments-organizations/4/Name": System.ZENDESK},
        ambiguities=(
            Ambiguity(
                "a1",
                "contact-persons-users",
                "dup@x.no",
                (RecordKey.of(Kind.CONTACT_PERSON, "5"), RecordKey.of(Kind.CONTACT_PERSON, "6")),
            ),
        ),
        last_full_sync=T0,
        retry=frozenset({RecordKey.of(Kind.CUSTOMER, "7"), RecordKey.of(Kind.USER, "501")}),
        full_plan_basis="0123456789abcdef",
    )


def shape(snapshot: Snapshot) -> tuple[System, dict[Kind, dict[str, Record]], frozenset[Kind]]:
    """A snapshot's content, ignoring kinds present but empty."""
    return (
        snapshot.system,
        {kind: dict(recs) for kind, recs in snapshot.records.items() if recs},
        snapshot.complete,
    )


# -- the port contract -----------------------------------------------------------------------


def test_a_new_store_is_empty(subject: StoreUnderTest) -> None:
    assert subject.store.load_state() == SyncState()
    assert len(subject.store.load_mirror(System.ZENDESK)) == 0
    assert subject.store.open_intents() == []


def test_state_and_mirrors_come_back_as_saved(subject: StoreUnderTest) -> None:
    po = Snapshot.of(
        System.POWEROFFICE, [customer("1", "Acme", EmailAddress=None)], complete=[Kind.CUSTOMER]
    )
    zd = Snapshot.of(System.ZENDESK, [user("501", "a@x.no"), user("502", None, active=False)])
    subject.store.save(full_state(), [po, zd])

    again = subject.reopen()
    assert again.load_state() == full_state()
    assert shape(again.load_mirror(System.POWEROFFICE)) == shape(po)
    assert shape(again.load_mirror(System.ZENDESK)) == shape(zd)


def test_links_touching_records_are_found_by_either_side_id(subject: StoreUnderTest) -> None:
    subject.store.save(full_state(), [])
    store = subject.reopen()
    flow = "customers-organizations"

    by_po = store.links_touching(flow, System.POWEROFFICE, ["2", "1", "404", "2"])
    by_zd = store.links_touching(flow, System.ZENDESK, ["77", "999"])

    assert by_po == [full_state().table(flow).for_poweroffice(i) for i in ("2", "1")]
    assert by_zd == [full_state().table(flow).for_poweroffice("1")]
    assert store.links_touching(flow, System.ZENDESK, []) == []
    assert store.links_touching("contact-persons-users", System.POWEROFFICE, ["1"]) == []


def test_save_forgets_records_and_links_that_are_gone(subject: StoreUnderTest) -> None:
    store = subject.store
    po = Snapshot.of(System.POWEROFFICE, [customer("1", "A"), customer("2", "B")])
    store.save(full_state(), [po])
    state = store.load_state()
    mirror = store.load_mirror(System.POWEROFFICE)

    fewer = state.with_links(
        "customers-organizations", [state.table("customers-organizations").for_poweroffice("2")]
    )  # type: ignore[list-item]
    kept = Snapshot(System.POWEROFFICE, {Kind.CUSTOMER: {"2": mirror.of_kind(Kind.CUSTOMER)["2"]}})
    store.save(fewer, [kept])

    again = subject.reopen()
    table = again.load_state().table("customers-organizations")
    assert [link.poweroffice_id for link in table] == ["2"]
    assert list(again.load_mirror(System.POWEROFFICE).of_kind(Kind.CUSTOMER)) == ["2"]


def test_saving_without_mirrors_keeps_the_mirrors(subject: StoreUnderTest) -> None:
    zd = Snapshot.of(System.ZENDESK, [user("501", "a@x.no")])
    subject.store.save(SyncState(), [zd])
    subject.store.save(full_state(), [])
    again = subject.reopen()
    assert shape(again.load_mirror(System.ZENDESK)) == shape(zd)
    assert again.load_state() == full_state()


def test_changed_records_replace_their_old_version(subject: StoreUnderTest) -> None:
    store = subject.store
    store.save(SyncState(), [Snapshot.of(System.POWEROFFICE, [customer("1", "Old")])])
    mirror = store.load_mirror(System.POWEROFFICE)
    edited = attrs.evolve(mirror.of_kind(Kind.CUSTOMER)["1"], fields={"Name": "New"})
    store.save(SyncState(), [Snapshot(System.POWEROFFICE, {Kind.CUSTOMER: {"1": edited}})])
    got = subject.reopen().load_mirror(System.POWEROFFICE).of_kind(Kind.CUSTOMER)["1"]
    assert got.get("Name") == "New"


def write(item: str, op: WriteOp = WriteOp.CREATE) -> WriteRequest:
    return WriteRequest(
        item,
        op,
        Kind.ORGANIZATION,
        None if op is WriteOp.CREATE else "77",
        {"name": "Acme"},
        origin_key="poweroffice:customer:1" if op is WriteOp.CREATE else None,
        current={"name": "Old"},
    )


def test_journaled_intents_stay_open_until_their_result_is_recorded(
    subject: StoreUnderTest,
) -> None:
    store = subject.store
    store.journal_intents("run-1", [write("i1"), write("i2", WriteOp.UPDATE), write("i3")])
    stored = Record(RecordKey.of(Kind.ORGANIZATION, "900"), {"name": "Acme"}, T0)
    store.journal_results(
        "run-1",
        [
            WriteResult("i1", stored),
            WriteResult(
                "i3", error=WriteError("duplicate_value", "taken", "zendesk organization", "name")
            ),
        ],
    )
    assert subject.reopen().open_intents() == [write("i2", WriteOp.UPDATE)]


def test_closed_intents_are_no_longer_open(subject: StoreUnderTest) -> None:
    subject.store.journal_intents("run-1", [write("i1"), write("i2")])
    subject.store.close_intents(["i1"])
    assert [w.item_id for w in subject.reopen().open_intents()] == ["i2"]


def test_journaling_an_intent_again_reopens_it(subject: StoreUnderTest) -> None:
    store = subject.store
    store.journal_intents("run-1", [write("i1")])
    store.journal_results("run-1", [WriteResult("i1")])
    store.journal_intents("run-2", [write("i1")])
    assert [w.item_id for w in store.open_intents()] == ["i1"]


def test_the_lock_refuses_a_second_holder_and_is_released(subject: StoreUnderTest) -> None:
    store = subject.store
    with store.lock(), pytest.raises(AlreadyRunning), store.lock():
        pass  # pragma: no cover - must not get here
    with store.lock():
        pass


def test_run_reports_are_appended(subject: StoreUnderTest) -> None:
    subject.store.record_run(run_report("r1"))
    subject.store.record_run(run_report("r2"))
    assert [r["run_id"] for r in subject.reopen().recent_runs()] == ["r2", "r1"]


def test_the_run_log_keeps_the_shape_sync_json_prints(subject: StoreUnderTest) -> None:
    report = busy_report("r1")
    subject.store.record_run(report)
    (kept,) = subject.reopen().recent_runs()
    assert kept == json.loads(json.dumps(report_json(report)))
    assert kept["format"] == FORMAT
    assert plan_from_json(kept) == report.plan


# -- what only the SQLite store shows --------------------------------------------------------


def test_the_file_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.save(full_state(), [])
    assert path.stat().st_mode & 0o777 == 0o600
    for sidecar in tmp_path.glob("state.db-*"):
        assert sidecar.stat().st_mode & 0o077 == 0, sidecar


def test_intents_journaled_by_an_older_version_come_back_with_their_flow_and_source(
    tmp_path: Path,
) -> None:
    """Crash recovery after an upgrade: a schema-2 journal kept flow and source only in ids."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        db.executescript(migration)
    db.execute("PRAGMA user_version = 2")
    legacy = {
        "create:customers-organizations:7": ("organization", "poweroffice:customer:7"),
        "create:departments-organizations:zendesk:organization:5": (
            "department",
            "zendesk:organization:5",
        ),
        "update:contact-persons-users:zendesk:user:9": ("user", None),
    }
    for item, (kind, origin) in legacy.items():
        op = item.split(":")[0]  # the test writes the old form; nothing in src reads it
        intent = {"item_id": item, "op": op, "kind": kind, "id": None, "fields": {}}
        db.execute(
            "INSERT INTO journal (item_id, run_id, intent, recorded) VALUES (?, 'r', ?, 'now')",
            (item, json.dumps({**intent, "origin_key": origin, "current": {}})),
        )
    db.commit()
    db.close()
    with SqliteStateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        got = {w.item_id: (w.flow, w.source) for w in store.open_intents()}
    assert got == {
        "create:customers-organizations:7": (
            "customers-organizations",
            RecordKey.of(Kind.CUSTOMER, "7"),
        ),
        "create:departments-organizations:zendesk:organization:5": (
            "departments-organizations",
            RecordKey.of(Kind.ORGANIZATION, "5"),
        ),
        "update:contact-persons-users:zendesk:user:9": ("contact-persons-users", None),
    }


def test_intents_carry_their_flow_and_source(subject: StoreUnderTest) -> None:
    typed = attrs.evolve(
        write("i1"), flow="customers-organizations", source=RecordKey.of(Kind.CUSTOMER, "1")
    )
    subject.store.journal_intents("run-1", [typed])
    assert subject.reopen().open_intents() == [typed]


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}").connection.close()
    with pytest.raises(StateFileError, match="newer talksync"):
        SqliteStateStore(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("this is not sqlite, " * 100)
    with pytest.raises(StateFileError, match="not a usable talksync state file"):
        SqliteStateStore(path)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="no such directory"):
        SqliteStateStore(tmp_path / "nope" / "state.db")


# -- what every durable store shows (SQLite and PostgreSQL) ---------------------------------


class CountingConnection:
    """Wraps a sqlite3 connection and counts the rows each statement writes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.writes: list[tuple[str, int]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        self.writes.append((_statement(sql), len(rows)))
        return self.db.executemany(sql, rows)

    def close(self) -> None:
        self.db.close()


def _statement(sql: str) -> str:
    """``INSERT records``: the verb and the table of a statement."""
    table = re.search(r"(?:INTO|FROM)\s+(\w+)", sql)
    assert table is not None
    return f"{sql.split()[0]} {table.group(1)}"


@contextmanager
def counting_writes(store: Store) -> Iterator[list[tuple[str, int]]]:
    """The (statement, rows) of every multi-row write ``store`` makes inside the block."""
    if isinstance(store, SqliteStateStore):
        counting = CountingConnection(store._db)
        store._db = counting  # type: ignore[assignment]
        try:
            yield counting.writes
        finally:
            store._db = counting.db
        return
    writes: list[tuple[str, int]] = []
    many = store._many

    def counted(sql: Any, rows: Any) -> None:
        writes.append((_statement(sql), len(rows)))
        many(sql, rows)

    store._many = counted  # type: ignore[method-assign]
    try:
        yield writes
    finally:
        del store._many


def test_save_writes_only_records_and_links_that_changed(durable: Durable) -> None:
    records = [customer(str(i), f"Customer {i}") for i in range(1000)]
    links = [
        Link("customers-organizations", str(i), str(5000 + i), {"Name": f"Customer {i}"})
        for i in range(1000)
    ]
    durable.open().save(
        SyncState().with_links("customers-organizations", links),
        [Snapshot.of(System.POWEROFFICE, records)],
    )

    store = durable.open()
    state = store.load_state()
    mirror = store.load_mirror(System.POWEROFFICE)
    recs = dict(mirror.of_kind(Kind.CUSTOMER))
    recs["5"] = attrs.evolve(recs["5"], fields={"Name": "Renamed"})
    del recs["6"]
    table = state.table("customers-organizations")
    new_links = [link for link in table if link.poweroffice_id != "7"]
    new_links[0] = attrs.evolve(new_links[0], base={"Name": "moved"})
    with counting_writes(store) as writes:
        store.save(
            state.with_links("customers-organizations", new_links),
            [Snapshot(System.POWEROFFICE, {Kind.CUSTOMER: recs})],
        )

    written: dict[str, int] = {}
    for what, count in writes:
        written[what] = written.get(what, 0) + count
    assert written["INSERT records"] == 1
    assert written["DELETE records"] == 1
    assert written["INSERT links"] == 1
    assert written["DELETE links"] == 1

    again = durable.open()
    got = again.load_mirror(System.POWEROFFICE).of_kind(Kind.CUSTOMER)
    assert len(got) == 999
    assert got["5"].get("Name") == "Renamed"
    assert "6" not in got
    assert len(again.load_state().table("customers-organizations")) == 999


def test_records_can_be_found_by_normalised_email_and_name(durable: Durable) -> None:
    store = durable.open()
    store.save(
        SyncState(),
        [
            Snapshot.of(System.ZENDESK, [user("1", "Kari@Example.NO"), user("2", "other@x.no")]),
            Snapshot.of(System.POWEROFFICE, [customer("3", "  Acme AS ")]),
        ],
    )
    assert [
        r.id for r in store.find_records(System.ZENDESK, Kind.USER, email=" kari@example.no")
    ] == ["1"]
    assert [
        r.id for r in store.find_records(System.POWEROFFICE, Kind.CUSTOMER, name="ACME as")
    ] == ["3"]


def test_a_failed_save_changes_nothing(durable: Durable) -> None:
    store = durable.open()
    store.save(full_state(), [Snapshot.of(System.POWEROFFICE, [customer("1", "A")])])
    bad = Snapshot(System.POWEROFFICE, {Kind.CUSTOMER: {"2": customer("2", "B")}})
    # A cursor that cannot be stored fails half-way through the transaction.
    broken = attrs.evolve(full_state(), cursors={"x": object()})  # type: ignore[dict-item]
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        store.save(broken, [bad])
    again = durable.open()
    assert again.load_state() == full_state()
    assert list(again.load_mirror(System.POWEROFFICE).of_kind(Kind.CUSTOMER)) == ["1"]


# A child that saves generation after generation of a large state; every record, link and the
# cursor of one generation carry its number, so a torn save would show mixed numbers.
SAVER = """
import sys
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Link, SyncState

n = int(sys.argv[1])
gen = 0
while True:
    gen += 1
    records = [Record(RecordKey.of(Kind.CUSTOMER, i), {"Name": f"gen {gen}"}) for i in range(n)]
    links = [Link("customers-organizations", str(i), str(i), {"Name": f"gen {gen}"})
             for i in range(n)]
    state = SyncState(cursors={"gen": str(gen)}).with_links("customers-organizations", links)
    store.save(state, [Snapshot.of(System.POWEROFFICE, records)])
    print(gen, flush=True)
"""


@pytest.mark.slow
def test_a_process_killed_during_save_leaves_the_old_or_the_new_state(durable: Durable) -> None:
    n = 20_000
    child = durable.child_opener() + "\n" + SAVER
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen(
            [sys.executable, "-c", child, str(n)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # at least one generation is committed
        assert first.strip().isdigit(), first
        time.sleep(delay)  # land somewhere inside a later save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        store = durable.open()
        state = store.load_state()
        gen = state.cursors["gen"]
        names = {r.get("Name") for r in store.load_mirror(System.POWEROFFICE)}
        bases = {link.base["Name"] for link in state.table("customers-organizations")}
        assert names == {f"gen {gen}"}
        assert bases == {f"gen {gen}"}
        assert len(state.table("customers-organizations")) == n
        if isinstance(store, SqliteStateStore):
            integrity = store._db.execute("PRAGMA integrity_check").fetchone()[0]
            assert integrity == "ok"


def test_reports_are_stored_as_json(durable: Durable) -> None:
    store = durable.open()
    store.record_run(run_report("r1"))
    if isinstance(store, SqliteStateStore):
        row = store._db.execute("SELECT report FROM runs").fetchone()
    else:
        row = store._db.execute(
            "SELECT report FROM runs WHERE tenant_id = %s", (store.tenant_id,)
        ).fetchone()
    assert row is not None
    assert json.loads(row[0]) == report_json(run_report("r1"))


def test_a_mirror_this_process_saved_comes_back_warm_until_another_saves(
    durable: Durable,
) -> None:
    zd = Snapshot.of(System.ZENDESK, [user("501", "a@x.no")], complete=[Kind.USER])
    store = durable.open()
    store.save(SyncState(), [zd])
    assert store.load_mirror(System.ZENDESK) is zd  # same object: its indexes stay warm
    other = durable.open()
    changed = Snapshot.of(System.ZENDESK, [user("502", "b@x.no")], complete=[Kind.USER])
    other.save(SyncState(), [changed])
    again = store.load_mirror(System.ZENDESK)
    assert again is not zd
    assert shape(again) == shape(changed)


# -- a person's decisions last (decision 10) and the look-up by key -------------------------


def test_kept_apart_pairs_and_decisions_survive_a_reopen(subject: StoreUnderTest) -> None:
    decided = Decision(T0, "kari", "unlink", "customers-organizations", "poweroffice 1 / zd 77")
    state = attrs.evolve(
        full_state(),
        kept_apart=frozenset({KeptApart("customers-organizations", "1", "77")}),
        decisions=(decided,),
    )
    subject.store.save(state, [])
    loaded = subject.reopen().load_state()
    assert loaded.kept_apart == state.kept_apart
    assert loaded.decisions == (decided,)
    assert loaded.is_kept_apart("customers-organizations", "1", "77")


def test_the_decision_trail_grows_and_an_undone_pair_is_gone(subject: StoreUnderTest) -> None:
    first = Decision(T0, "kari", "unlink", "customers-organizations", "1 / 77")
    second = Decision(T0, "ola", "relink", "customers-organizations", "1 / 77")
    apart = frozenset({KeptApart("customers-organizations", "1", "77")})
    state = attrs.evolve(full_state(), kept_apart=apart, decisions=(first,))
    subject.store.save(state, [])
    store = subject.reopen()
    later = attrs.evolve(store.load_state(), kept_apart=frozenset(), decisions=(first, second))
    store.save(later, [])
    loaded = subject.reopen().load_state()
    assert loaded.kept_apart == frozenset()
    assert loaded.decisions == (first, second)


def test_records_are_found_by_key_without_the_whole_mirror(subject: StoreUnderTest) -> None:
    po = Snapshot.of(System.POWEROFFICE, [customer("1", "Acme AS")])
    zd = Snapshot.of(System.ZENDESK, [user("501", "kari@acme.no", active=False)])
    subject.store.save(SyncState(), [po, zd])
    store = subject.reopen()
    wanted = [
        RecordKey.of(Kind.CUSTOMER, "1"),
        RecordKey.of(Kind.USER, "501"),
        RecordKey.of(Kind.USER, "404"),
    ]
    found = store.records(wanted)
    assert set(found) == set(wanted[:2])  # the missing one is left out
    assert found[wanted[0]].get("Name") == "Acme AS"
    assert found[wanted[1]].active is False  # inactive records are returned too
    assert store.records([]) == {}


def test_mirror_ids_streams_the_ids_of_one_kind(subject: StoreUnderTest) -> None:
    """What a streamed full reconcile finds deletes with: every id of the kind, no other."""
    po = Snapshot.of(
        System.POWEROFFICE,
        [customer(str(i), f"Kunde {i}") for i in range(1, 1201)] + [contact("9", "a@x.no")],
    )
    zd = Snapshot.of(System.ZENDESK, [user("501", "a@x.no"), user("502", None, active=False)])
    subject.store.save(SyncState(), [po, zd])
    store = subject.reopen()
    ids = store.mirror_ids(Kind.CUSTOMER)
    assert not isinstance(ids, (list, tuple, set))  # handed over as it is read
    assert sorted(ids, key=int) == [str(i) for i in range(1, 1201)]
    assert list(store.mirror_ids(Kind.CONTACT_PERSON)) == ["9"]
    assert sorted(store.mirror_ids(Kind.USER)) == ["501", "502"]  # inactive ones too
    assert list(store.mirror_ids(Kind.ORGANIZATION)) == []


# -- the mirror view (issue 13) ---------------------------------------------------------------


def org(rid: str, name: str | None, external_id: str | None = None) -> Record:
    return Record(
        RecordKey.of(Kind.ORGANIZATION, rid), {"name": name, "external_id": external_id}, T0, True
    )


def contact(rid: str, email: str | None, party: str | None = None) -> Record:
    return Record(
        RecordKey.of(Kind.CONTACT_PERSON, rid),
        {"emailAddress": email, "partyId": party},
        T0,
        True,
    )


def member(rid: str, email: str, organization: str) -> Record:
    return Record(RecordKey.of(Kind.USER, rid), {"email": email, "organization_id": organization})


def view_mirrors() -> list[Snapshot]:
    po = Snapshot.of(
        System.POWEROFFICE,
        [
            customer("1", "  Acme AS ", EmailAddress="post@acme.no"),
            customer("2", "Beta"),
            contact("9", "Kari@Acme.NO", " 1"),
            contact("10", "per@acme.no", "2"),
        ],
        complete=[Kind.CUSTOMER],
    )
    zd = Snapshot.of(
        System.ZENDESK,
        [
            org("77", "ACME as", "poweroffice:customer:1"),
            org("78", "Beta", " PowerOffice:Customer:2 "),
            user("501", " kari@acme.no"),
            user("502", "KARI@acme.no", active=False),
            user("503", "other@x.no"),
            member("504", "ola@acme.no", "77"),
            member("505", "per@acme.no", "77"),
        ],
    )
    return [po, zd]


def test_the_view_finds_records_by_identity_name_origin_key_and_reference(
    subject: StoreUnderTest,
) -> None:
    """Keys as ``talkcore.view.lookup_key`` computes them; inactive records too; ids in order."""
    subject.store.save(full_state(), view_mirrors())
    store = subject.reopen()

    def ids(kind: Kind, lookup: Lookup, *values: str) -> list[str]:
        return [r.id for r in store.find(kind, lookup, list(values))]

    assert ids(Kind.USER, Lookup.IDENTITY, "kari@acme.no") == ["501", "502"]
    assert ids(Kind.CONTACT_PERSON, Lookup.IDENTITY, "kari@acme.no") == ["9"]
    assert ids(Kind.CUSTOMER, Lookup.IDENTITY, "post@acme.no") == ["1"]
    assert ids(Kind.ORGANIZATION, Lookup.NAME, "acme as", "beta", "nobody") == ["77", "78"]
    assert ids(Kind.CUSTOMER, Lookup.NAME, "acme as") == ["1"]
    assert ids(Kind.ORGANIZATION, Lookup.ORIGIN, "poweroffice:customer:2") == ["78"]
    assert ids(Kind.CONTACT_PERSON, Lookup.REFERENCE, "1") == ["9"]  # who refers to customer 1
    assert ids(Kind.CONTACT_PERSON, Lookup.REFERENCE, "1", "2") == ["9", "10"]
    assert ids(Kind.USER, Lookup.REFERENCE, "77") == ["504", "505"]
    assert ids(Kind.CUSTOMER, Lookup.REFERENCE, "1") == []  # customers refer to nothing
    assert ids(Kind.USER, Lookup.NAME, "kari@acme.no") == []  # users have no unique name
    assert ids(Kind.USER, Lookup.IDENTITY) == []
    # The keys are the ones the planner compares by.
    inactive = user("502", "KARI@acme.no", active=False)
    assert lookup_key(inactive, FIELDS, Lookup.IDENTITY) == "kari@acme.no"


def test_the_view_counts_links_and_records_and_knows_complete_kinds(
    subject: StoreUnderTest,
) -> None:
    assert not subject.store.mirror_holds_records(System.POWEROFFICE)
    subject.store.save(full_state(), view_mirrors())
    store = subject.reopen()
    assert store.link_count("customers-organizations") == 2
    assert store.link_count("departments-organizations") == 0
    assert store.mirror_holds_records(System.POWEROFFICE)
    assert store.mirror_holds_records(System.ZENDESK)
    assert store.mirror_complete(System.POWEROFFICE) == frozenset({Kind.CUSTOMER})
    assert store.mirror_complete(System.ZENDESK) == frozenset()


def test_state_without_links_holds_everything_else(subject: StoreUnderTest) -> None:
    subject.store.save(full_state(), [])
    assert subject.reopen().load_state_except_links() == attrs.evolve(full_state(), links={})


def test_a_partial_save_writes_what_changed_and_keeps_the_rest(subject: StoreUnderTest) -> None:
    """An incremental run saves its working set against what it read (``since``)."""
    subject.store.save(full_state(), view_mirrors())
    store = subject.reopen()
    flow = "customers-organizations"
    seen_state = attrs.evolve(
        store.load_state_except_links(),
        links={flow: LinkTable.of(store.links_touching(flow, System.POWEROFFICE, ["1"]))},
    )
    keys = [RecordKey.of(Kind.CUSTOMER, "1"), RecordKey.of(Kind.ORGANIZATION, "77")]
    found = store.records(keys)
    seen = [
        Snapshot.of(System.POWEROFFICE, [found[keys[0]]], complete=[Kind.CUSTOMER]),
        Snapshot.of(System.ZENDESK, [found[keys[1]]]),
    ]
    renamed = customer("1", "Acme Group", EmailAddress="post@acme.no")
    new_state = attrs.evolve(
        seen_state,
        links={flow: LinkTable.of([Link(flow, "1", "77", {"Name": "Acme Group"})])},
        cursors={"zendesk:user": "def"},
    )
    store.save_partial(
        new_state,
        [upsert(seen[0], [renamed]), upsert(seen[1], [org("79", "New")])],
        (seen_state, seen),
    )

    again = subject.reopen()
    state = again.load_state()
    assert state.table(flow).for_poweroffice("1") == Link(flow, "1", "77", {"Name": "Acme Group"})
    assert state.table(flow).for_poweroffice("2") == full_state().table(flow).for_poweroffice("2")
    assert state.table("contact-persons-users") == full_state().table("contact-persons-users")
    assert state.cursors == {"zendesk:user": "def"}
    po, zd = again.load_mirror(System.POWEROFFICE), again.load_mirror(System.ZENDESK)
    assert po.get(renamed.key) == renamed
    assert len(po) == 4 and len(zd) == 8  # the rest kept, the new one added
    assert [r.id for r in again.find(Kind.CUSTOMER, Lookup.NAME, ["acme group"])] == ["1"]
    assert again.find(Kind.CUSTOMER, Lookup.NAME, ["acme as"]) == []


def test_an_older_file_gets_its_look_up_keys_from_the_dataflow(tmp_path: Path) -> None:
    """Schema 3 kept no origin keys, and keys came from hard-coded field names (issue 16): an
    open computes them again from the dataflow's roles, once."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        db.executescript(migration)
    db.execute("PRAGMA user_version = 3")
    db.execute(
        "INSERT INTO records VALUES ('zendesk', 'organization', '77', ?, NULL, 1, NULL, NULL)",
        (json.dumps({"name": "Acme", "external_id": "poweroffice:customer:1"}),),
    )
    db.execute(
        "INSERT INTO records VALUES ('zendesk', 'user', '501', ?, NULL, 1, NULL, NULL)",
        (json.dumps({"email": "ola@acme.no", "organization_id": "77"}),),
    )
    db.commit()
    db.close()
    with SqliteStateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [
            r.id for r in store.find(Kind.ORGANIZATION, Lookup.ORIGIN, ["poweroffice:customer:1"])
        ] == ["77"]
        assert [r.id for r in store.find(Kind.ORGANIZATION, Lookup.NAME, ["acme"])] == ["77"]
        assert [r.id for r in store.find(Kind.USER, Lookup.REFERENCE, ["77"])] == ["501"]


def test_look_up_keys_follow_the_dataflow_roles_not_field_names(tmp_path: Path) -> None:
    """A dataflow naming organizations by another field is found by that field (issue 16)."""
    flows = tuple(
        attrs.evolve(
            flow,
            properties=tuple(
                attrs.evolve(p, zendesk="display_name") if p.role is Role.NAME else p
                for p in flow.properties
            ),
        )
        for flow in DEFAULT_DATAFLOW
    )
    dataflow = attrs.evolve(DEFAULT_DATAFLOW, flows=flows)
    renamed = Record(
        RecordKey.of(Kind.ORGANIZATION, "77"), {"name": "Old", "display_name": "Acme"}, T0
    )
    with SqliteStateStore(tmp_path / "state.db") as store:
        store.save(SyncState(), [Snapshot.of(System.ZENDESK, [renamed])])
    with SqliteStateStore(tmp_path / "state.db", dataflow) as store:
        assert [r.id for r in store.find(Kind.ORGANIZATION, Lookup.NAME, ["acme"])] == ["77"]
        assert store.find(Kind.ORGANIZATION, Lookup.NAME, ["old"]) == []
    memory = MemoryStateStore(dataflow=dataflow)
    memory.save(SyncState(), [Snapshot.of(System.ZENDESK, [renamed])])
    assert [r.id for r in memory.find(Kind.ORGANIZATION, Lookup.NAME, ["acme"])] == ["77"]


def test_a_streamed_full_run_over_the_store_plans_what_the_whole_one_plans(
    subject: StoreUnderTest,
) -> None:
    """The streamed full reconcile (issue 13) through each store's view and ``mirror_ids``,
    under the store's lock: a rename, a hard delete and a new record, planned as the full plan
    over both whole mirrors plans them."""
    from adapters.memory import Clock, memory_poweroffice, memory_zendesk
    from talkcore.engine import RunOptions, plan_run, run_sync

    clock = Clock()
    po, zd = memory_poweroffice(clock), memory_zendesk(clock)
    for i in range(1, 8):
        po.put(Kind.CUSTOMER, i, Name=f"Kunde {i} AS", IsPerson="false")
        po.put(Kind.CONTACT_PERSON, 100 + i, emailAddress=f"p{i}@x.no", partyId=str(i))
        zd.put(Kind.USER, 500 + i, email=f"p{i}@x.no", name=f"P {i}")
    store = subject.store
    assert run_sync(po, zd, store).failures == []
    po.edit(Kind.CUSTOMER, "1", Name="Omdøpt AS")
    zd.remove(Kind.USER, "502")
    po.put(Kind.CUSTOMER, 9, Name="Ny Kunde AS", IsPerson="false")
    heard: list[tuple[str, dict[str, object]]] = []

    class Heard:
        def event(self, name: str, data: Any) -> None:
            heard.append((name, dict(data)))

    streamed = plan_run(po, zd, store, RunOptions(full=True, observer=Heard()))
    whole = plan_run(po, zd, store, RunOptions(full=True, whole_mirrors=True))
    reads = {d["system"]: d for name, d in heard if name == "read.done"}
    assert (reads["poweroffice"]["differ"], reads["zendesk"]["removed"]) == (2, 1)
    assert sorted(map(repr, streamed.plan)) == sorted(map(repr, whole.plan))
    assert len(streamed.plan) >= 3  # the rename, the create, the ended link
    done = run_sync(po, zd, subject.reopen(), RunOptions(full=True))
    assert done.failures == []
    assert len(plan_run(po, zd, subject.reopen(), RunOptions(full=True)).plan) == 0
