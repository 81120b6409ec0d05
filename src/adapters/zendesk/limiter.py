"""A client-side request budget per minute, corrected by what Zendesk reports.

Zendesk counts requests per account per minute (Team plan 200). We keep our own sliding window
so a long run never walks into a 429, and adopt the limit, remaining count and reset from the
rate-limit headers, because other clients of the same account spend from the same budget.

The headers go by three sets of names: the current docs name ``ratelimit-limit``,
``ratelimit-remaining`` and ``ratelimit-reset``; recorded traffic from 2023 carries
``rate-limit``, ``rate-limit-remaining`` and ``rate-limit-reset``; older answers (and all recorded
ones) carry ``X-Rate-Limit`` and ``X-Rate-Limit-Remaining``. Any one set is enough; where several
are present the documented names come first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

_WINDOW = timedelta(minutes=1)
log = structlog.get_logger()

EXPORT_RATE_LIMIT = 10
"""Requests a minute the incremental exports allow per account (documented for both the users
and the organizations export; one report gives the cursor-based users export 20, so one shared
budget of 10 is within either reading)."""


class RateLimiter:
    """Waits (through the injected ``sleep``) before a request that would exceed the budget.

    ``budget`` names the budget in the log line of a wait: ``account`` for the account-wide
    limit, ``export`` for the incremental exports' own one.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        sleep: Callable[[float], None],
        now: Callable[[], datetime],
        budget: str = "account",
    ) -> None:
        if per_minute < 1:
            raise ValueError("the rate limit must allow at least one request a minute")
        self.per_minute = per_minute
        self.budget = budget
        self._sleep = sleep
        self._now = now
        self._sent: deque[datetime] = deque()
        self._server_remaining: int | None = None
        self._server_reset: float | None = None

    def acquire(self) -> None:
        """Block until one more request fits the budget, then count it."""
        now = self._now()
        while self._sent and now - self._sent[0] >= _WINDOW:
            self._sent.popleft()
        wait = 0.0
        if len(self._sent) >= self.per_minute:
            wait = (_WINDOW - (now - self._sent[0])).total_seconds()
        elif self._server_remaining is not None and self._server_remaining <= 0:
            # The account's budget is spent (by us or another client): wait for its reset.
            wait = self._server_reset if self._server_reset is not None else 60.0
        if wait > 0:
            log.info("zendesk.rate_limit.wait", budget=self.budget, seconds=round(wait, 2))
            self._sleep(wait)
            now = now + timedelta(seconds=wait)
            self._server_remaining = None
        self._sent.append(now)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the limit, remaining budget and reset Zendesk reported on a response."""
        limit = _first_int(headers, LIMIT_HEADERS)
        if limit is not None and limit > 0:
            self.per_minute = limit
        self._server_remaining = _first_int(headers, REMAINING_HEADERS)
        reset = _first_int(headers, RESET_HEADERS)
        self._server_reset = None if reset is None else _reset_seconds(reset, self._now)


LIMIT_HEADERS = ("ratelimit-limit", "rate-limit", "x-rate-limit")
"""Names of the per-minute limit, documented name first (headers are looked up ignoring case)."""
REMAINING_HEADERS = ("ratelimit-remaining", "rate-limit-remaining", "x-rate-limit-remaining")
"""Names of what remains of the minute's budget."""
RESET_HEADERS = ("ratelimit-reset", "rate-limit-reset")
"""Names of the seconds until the budget resets (``X-Rate-Limit`` has no reset)."""

# A reset this large is a point in time (epoch seconds), not a number of seconds to wait.
_EPOCH_FLOOR = 1_000_000_000


def _first_int(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _int(headers.get(name))
        if value is not None:
            return value
    return None


def _reset_seconds(reset: int, now: Callable[[], datetime]) -> float:
    """Seconds to wait for a reset given as seconds (the docs' reading) or as an epoch time.

    Zendesk's answers carry a small number of seconds; other APIs' reset headers carry a Unix
    time. Both are accepted, since reading one as the other waits for decades or not at all.
    """
    if reset >= _EPOCH_FLOOR:
        return max(0.0, reset - now().timestamp())
    return float(max(0, reset))


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
