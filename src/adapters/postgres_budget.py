"""The PowerOffice request budget shared through PostgreSQL by every worker and CLI run.

PowerOffice allows 10 requests a second per subscription key, summed over every client key
and every process that uses it. One row per subscription key (named by its hash,
``PowerOfficeCredentials.limiter_id()``) holds the next free request slot on the database's
clock; :meth:`PostgresBudget.reserve` books it and moves it on by one interval in a single
``UPDATE``, so processes on any number of machines hand out evenly spaced slots from one
sequence and the sum of their requests stays under the rate.

Why slots rather than tokens held: a booked slot is only a time. A worker SIGKILLed after
booking leaves nothing to release; its slot passes unused and the next booking is unaffected,
so the budget never stalls on a dead worker (the most it wastes is the slots it had booked, at
most one per sync thread).

Fairness: bookings queue on the row lock, which PostgreSQL grants in arrival order, and a sync
makes its requests one after another, so when demand exceeds the budget every running sync
gets an equal share of slots (round robin by request). Which tenants run is decided by the
job queue, first due first served, so a tenant waits at most the queue ahead of it: see
``docs/deploy.md``.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from adapters.postgres import connect, describe, migrate

_BOOK = """
INSERT INTO poweroffice_budget AS b (limiter_id, next_slot)
VALUES (%(id)s, extract(epoch FROM clock_timestamp()) + %(interval)s)
ON CONFLICT (limiter_id) DO UPDATE
    SET next_slot = greatest(b.next_slot, extract(epoch FROM clock_timestamp())) + %(interval)s
RETURNING next_slot - %(interval)s, extract(epoch FROM clock_timestamp())
"""

_HOLD_OFF = """
INSERT INTO poweroffice_budget AS b (limiter_id, next_slot)
VALUES (%(id)s, extract(epoch FROM clock_timestamp()) + %(seconds)s)
ON CONFLICT (limiter_id) DO UPDATE
    SET next_slot = greatest(b.next_slot, extract(epoch FROM clock_timestamp()) + %(seconds)s)
"""


class PostgresBudget:
    """One subscription key's request slots, booked in PostgreSQL (see the module docstring).

    Thread-safe: the threads of one process share one connection, one booking at a time (a
    booking is one short statement). Implements ``adapters.poweroffice.limiter.Limiter``.
    """

    def __init__(self, url: str, key_id: str, requests_per_second: float) -> None:
        self.url = url
        self.key_id = key_id
        self.requests_per_second = requests_per_second
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None

    def __repr__(self) -> str:
        return f"PostgresBudget({describe(self.url)}, key {self.key_id})"

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before using it (0 when free now)."""
        slot, now = self.book()
        return max(0.0, slot - now)

    def book(self) -> tuple[float, float]:
        """Book the next slot: (the slot, the time of booking), both in seconds since the epoch
        on the database's clock (what :meth:`reserve` waits out; tests read the slots)."""
        row = self._run(_BOOK, {"id": self.key_id, "interval": 1.0 / self.requests_per_second})
        if row is None:
            raise RuntimeError(f"{self!r}: booking a slot returned no row")
        return float(row[0]), float(row[1])

    def hold_off(self, seconds: float) -> None:
        """Push every later slot, in every process, back by at least ``seconds`` from now."""
        self._run(_HOLD_OFF, {"id": self.key_id, "seconds": float(seconds)})

    def close(self) -> None:
        """Close the connection (a later booking opens a new one)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._lock:
            # One retry on a fresh connection: a restarted server or a dropped idle connection
            # must not fail a sync; a second failure is real and propagates.
            for attempt in (1, 2):
                if self._db is None or self._db.closed:
                    self._db = connect(self.url)
                    migrate(self._db, describe(self.url))
                try:
                    cursor = self._db.execute(sql.encode(), params)
                    return cursor.fetchone() if cursor.description else None
                except psycopg.OperationalError:
                    self._db.close()
                    self._db = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")


_BUDGETS: dict[tuple[str, str], PostgresBudget] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_budget(url: str, key_id: str, requests_per_second: float) -> PostgresBudget:
    """The process's budget for one subscription key in one database (one connection for all
    its threads); like ``shared_limiter``, a later, stricter rate lowers it for everyone."""
    with _REGISTRY_LOCK:
        budget = _BUDGETS.get((url, key_id))
        if budget is None:
            budget = _BUDGETS[(url, key_id)] = PostgresBudget(url, key_id, requests_per_second)
        elif requests_per_second < budget.requests_per_second:
            budget.requests_per_second = requests_per_second
        return budget
