"""The PowerOffice budget shared through PostgreSQL (``adapters.postgres_budget``): processes
book slots from one sequence (none twice, each a full interval after the last), a SIGKILLed
process stalls nobody, a 429's hold-off reaches every process, the key itself is never stored,
and the CLI and workers use it whenever the state is in PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from adapters.postgres_budget import PostgresBudget, shared_budget
from adapters.poweroffice import PowerOfficeCredentials
from cli.config import Settings
from cli.wiring import SHARED_POWEROFFICE_RATE, poweroffice_limiter

# A process that books ``n`` slots and prints them as JSON, then (when told) waits to be killed.
BOOKER = """
import json, sys, time
from adapters.postgres_budget import PostgresBudget
url, key, rate, n, hang = sys.argv[1:6]
budget = PostgresBudget(url, key, float(rate))
print(json.dumps([budget.book()[0] for _ in range(int(n))]), flush=True)
if hang == "hang":
    time.sleep(600)
"""


@pytest.fixture
def key_id(request: pytest.FixtureRequest) -> str:
    """A subscription-key id no other test books against."""
    return hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]


@pytest.fixture
def budget(shared_database: str, key_id: str) -> Iterator[PostgresBudget]:
    made = PostgresBudget(shared_database, key_id, 10.0)
    yield made
    made.close()


def _booker(url: str, key: str, rate: float, n: int, hang: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BOOKER, url, key, str(rate), str(n), "hang" if hang else "exit"],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_concurrent_processes_book_one_sequence_of_evenly_spaced_slots(
    shared_database: str, key_id: str
) -> None:
    # A high rate so the bookings finish at once; the spacing law is the same at any rate.
    rate, per_process = 1000.0, 40
    procs = [_booker(shared_database, key_id, rate, per_process) for _ in range(3)]
    slots: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        slots += json.loads(out)
    slots.sort()
    assert len(slots) == 3 * per_process
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    # Every slot at least one interval after the one before: no slot handed out twice and no
    # two processes' requests closer than the rate allows (float rounding aside).
    assert min(gaps) >= 1 / rate - 1e-6


def test_a_slot_is_booked_a_full_interval_after_the_last(budget: PostgresBudget) -> None:
    first, _ = budget.book()
    second, _ = budget.book()
    third, _ = budget.book()
    # Exactly 0.1 apart unless the machine paused between bookings; never closer.
    assert second - first >= 0.1 - 1e-6
    assert third - second >= 0.1 - 1e-6
    # A free budget waits nothing; once slots are booked ahead, reserve waits for its own.
    assert budget.reserve() > 0.0


def test_a_killed_process_holding_slots_stalls_nobody(
    shared_database: str, key_id: str, budget: PostgresBudget
) -> None:
    proc = _booker(shared_database, key_id, 10.0, 5, hang=True)
    assert proc.stdout is not None
    booked = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The dead process's slots are only times: the next booking comes right after the last of
    # them, never later, and nothing needs releasing.
    slot, now = budget.book()
    assert slot == pytest.approx(max(booked[-1] + 0.1, now), abs=1e-3)
    assert slot - now <= 5 * 0.1 + 1e-6


def test_a_hold_off_after_a_429_reaches_every_process(
    shared_database: str, key_id: str, budget: PostgresBudget
) -> None:
    other = PostgresBudget(shared_database, key_id, 10.0)
    try:
        other.hold_off(30.0)
        assert budget.reserve() >= 29.0
    finally:
        other.close()


def test_the_budget_survives_a_dropped_connection(
    shared_database: str, key_id: str, budget: PostgresBudget
) -> None:
    budget.book()
    assert budget._db is not None
    backend = budget._db.info.backend_pid
    with psycopg.connect(shared_database, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    slot, now = budget.book()
    assert slot >= now - 1e-6
    assert budget._db is not None and budget._db.info.backend_pid != backend


def test_only_the_hash_of_the_subscription_key_is_stored(shared_database: str) -> None:
    creds = PowerOfficeCredentials("app-key", "client-key", "the-subscription-secret")
    budget = shared_budget(shared_database, creds.limiter_id(), 10.0)
    budget.reserve()
    with psycopg.connect(shared_database) as db:
        rows = db.execute("SELECT limiter_id, next_slot::text FROM poweroffice_budget").fetchall()
    assert (creds.limiter_id(),) in [(row[0],) for row in rows]
    assert "the-subscription-secret" not in repr(rows)
    assert "the-subscription-secret" not in repr(budget)


def test_postgresql_settings_choose_the_shared_budget(shared_database: str, key_id: str) -> None:
    chosen = poweroffice_limiter(Settings(database_url=shared_database), key_id)
    assert isinstance(chosen, PostgresBudget)
    assert chosen.requests_per_second == SHARED_POWEROFFICE_RATE <= 10.0
    # The same process asking again shares the one booking connection.
    assert poweroffice_limiter(Settings(database_url=shared_database), key_id) is chosen
    # Without PostgreSQL the port keeps its process-wide limiter.
    assert poweroffice_limiter(Settings(), key_id) is None
