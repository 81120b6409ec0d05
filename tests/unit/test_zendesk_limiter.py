"""The Zendesk rate limiter: the headers it learns from, and pacing by a budget of its own.

A fake clock that the limiter's waits move forward stands in for time, so every wait is
measured exactly and nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from adapters.zendesk.limiter import EXPORT_RATE_LIMIT, RateLimiter

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """``now()`` reads it; ``sleep`` records the wait and moves it on."""

    def __init__(self) -> None:
        self.at = START
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.at += timedelta(seconds=seconds)

    def tick(self, seconds: float) -> None:
        """Time passing between requests (the request itself, the caller's work)."""
        self.at += timedelta(seconds=seconds)


def limiter(clock: Clock, per_minute: int = 200, budget: str = "account") -> RateLimiter:
    return RateLimiter(per_minute, sleep=clock.sleep, now=clock.now, budget=budget)


# Header sets as Zendesk has sent them: the current docs' names, the 2023 names, the old ones.
DOCUMENTED = {"ratelimit-limit": "400", "ratelimit-remaining": "0", "ratelimit-reset": "17"}
DASHED = {"rate-limit": "400", "rate-limit-remaining": "0", "rate-limit-reset": "17"}
X_NAMES = {"X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "0"}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        pytest.param(DOCUMENTED, 17.0, id="documented-names-only"),
        pytest.param(DASHED, 17.0, id="2023-names-only"),
        # No reset header in this set: a spent budget waits a whole window.
        pytest.param(X_NAMES, 60.0, id="x-names-only"),
    ],
)
def test_each_header_set_alone_teaches_limit_remaining_and_reset(
    headers: dict[str, str], wait: float
) -> None:
    clock = Clock()
    limits = limiter(clock)
    limits.acquire()
    limits.observe(httpx.Headers(headers))
    assert limits.per_minute == 400
    limits.acquire()  # the account's budget is spent: wait for its reset
    assert clock.waits == [wait]
    limits.acquire()  # the wait used up what Zendesk reported: no second wait
    assert clock.waits == [wait]


def test_remaining_budget_is_used_before_waiting() -> None:
    clock = Clock()
    limits = limiter(clock)
    headers = {"ratelimit-limit": "700", "ratelimit-remaining": "3", "ratelimit-reset": "9"}
    limits.observe(httpx.Headers(headers))
    limits.acquire()
    assert clock.waits == []


def test_the_documented_names_win_when_the_sets_disagree() -> None:
    clock = Clock()
    limits = limiter(clock)
    headers = {
        "ratelimit-limit": "400",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "5",
        "rate-limit": "700",
        "rate-limit-remaining": "650",
        "rate-limit-reset": "50",
        "X-Rate-Limit": "700",
        "X-Rate-Limit-Remaining": "650",
    }
    limits.observe(httpx.Headers(headers))
    assert limits.per_minute == 400
    limits.acquire()
    assert clock.waits == [5.0]


def test_a_reset_given_as_a_point_in_time_waits_until_then() -> None:
    clock = Clock()
    limits = limiter(clock)
    reset_at = int(START.timestamp()) + 23
    limits.observe(httpx.Headers({"ratelimit-remaining": "0", "ratelimit-reset": str(reset_at)}))
    limits.acquire()
    assert clock.waits == [23.0]


def test_unreadable_headers_are_ignored() -> None:
    clock = Clock()
    limits = limiter(clock, per_minute=200)
    limits.observe(httpx.Headers({"ratelimit-limit": "lots", "ratelimit-remaining": ""}))
    assert limits.per_minute == 200
    limits.acquire()
    assert clock.waits == []


def test_export_budget_paces_to_ten_a_minute_without_a_429() -> None:
    clock = Clock()
    exports = limiter(clock, per_minute=EXPORT_RATE_LIMIT, budget="export")
    sent: list[datetime] = []
    for _ in range(35):
        exports.acquire()
        sent.append(clock.now())
        clock.tick(0.5)
    assert EXPORT_RATE_LIMIT == 10
    # No minute ever holds more than ten requests ...
    for first in sent:
        assert sum(first <= t < first + timedelta(minutes=1) for t in sent) <= 10
    # ... the first ten go at once, and the eleventh waits for the first to leave the window.
    assert sent[9] - sent[0] == timedelta(seconds=4.5)
    assert sent[10] - sent[0] == timedelta(minutes=1)
    # Paced, not stalled: 35 requests take a little over three minutes.
    assert sent[-1] - sent[0] < timedelta(minutes=3, seconds=10)


def test_wait_is_logged_with_the_budget_it_waited_for() -> None:
    clock = Clock()
    exports = limiter(clock, per_minute=1, budget="export")
    with capture_logs() as logs:
        exports.acquire()
        exports.acquire()
    assert [(e["event"], e["budget"], e["seconds"]) for e in logs] == [
        ("zendesk.rate_limit.wait", "export", 60.0)
    ]
