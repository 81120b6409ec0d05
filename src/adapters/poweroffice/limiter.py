"""A client-side rate limiter shared by every port of the process using one subscription key.

PowerOffice allows 10 requests/second per subscription key across all its clients, so the
limit belongs to the key, not to a port: two ports built with the same key share one limiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs


class Limiter(Protocol):
    """What the transport needs of a rate limiter: a slot to wait for, and a way to back off.

    :class:`RateLimiter` is one process's; ``adapters.postgres_budget.PostgresBudget`` is shared
    by every process using one PostgreSQL database.
    """

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before using it (0 when free now)."""
        ...

    def hold_off(self, seconds: float) -> None:
        """Push every later slot back by at least ``seconds`` from now (after a 429)."""
        ...


@attrs.define
class RateLimiter:
    """Hands out evenly spaced request slots; thread-safe.

    :meth:`reserve` books the next slot and returns how long the caller must wait for it, so
    the caller sleeps with its own (injectable) ``sleep`` and the lock is never held while asleep.
    """

    requests_per_second: float
    clock: Callable[[], float] = time.monotonic
    _next_slot: float = attrs.field(default=0.0, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before using it (0 when free now)."""
        interval = 1.0 / self.requests_per_second
        with self._lock:
            now = self.clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + interval
            return slot - now

    def hold_off(self, seconds: float) -> None:
        """Push every later slot back by at least ``seconds`` from now (after a 429)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self.clock() + seconds)


_LIMITERS: dict[str, RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_limiter(key_id: str, requests_per_second: float) -> RateLimiter:
    """The process-wide limiter for one subscription key (``key_id`` is its hashed name).

    The first port to ask sets the rate; a later, stricter rate lowers it for everyone.
    """
    with _REGISTRY_LOCK:
        limiter = _LIMITERS.get(key_id)
        if limiter is None:
            limiter = _LIMITERS[key_id] = RateLimiter(requests_per_second)
        elif requests_per_second < limiter.requests_per_second:
            limiter.requests_per_second = requests_per_second
        return limiter
