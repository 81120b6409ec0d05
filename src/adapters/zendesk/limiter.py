"""A client-side request budget per minute, corrected by what Zendesk reports.

Zendesk counts requests per account per minute (Team plan 200). We keep our own sliding window
so a long run never walks into a 429, and adopt the limit and remaining count from the
``X-Rate-Limit`` headers, because other clients of the same account spend from the same budget.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

_WINDOW = timedelta(minutes=1)
log = structlog.get_logger()


class RateLimiter:
    """Waits (through the injected ``sleep``) before a request that would exceed the budget."""

    def __init__(
        self,
        per_minute: int,
        *,
        sleep: Callable[[float], None],
        now: Callable[[], datetime],
    ) -> None:
        if per_minute < 1:
            raise ValueError("the rate limit must allow at least one request a minute")
        self.per_minute = per_minute
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
            log.info("zendesk.rate_limit.wait", seconds=round(wait, 2))
            self._sleep(wait)
            now = now + timedelta(seconds=wait)
            self._server_remaining = None
        self._sent.append(now)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the limit and remaining budget Zendesk reported on a response."""
        limit = _int(headers.get("x-rate-limit") or headers.get("rate-limit"))
        if limit is not None and limit > 0:
            self.per_minute = limit
        remaining = headers.get("x-rate-limit-remaining") or headers.get("rate-limit-remaining")
        self._server_remaining = _int(remaining)
        reset = _int(headers.get("rate-limit-reset"))
        self._server_reset = float(reset) if reset is not None else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
