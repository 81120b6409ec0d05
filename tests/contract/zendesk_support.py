"""Test helpers for the Zendesk adapter: replaying recorded exchanges through httpx.

An exchange file is a JSON list of ``{"request": {...}, "response": {...}}`` — the format of
``../shared/fixtures/zendesk-recorded/`` — so our own fixtures and the recorded ones read alike.
A response may instead say ``{"raise": "timeout"}`` or ``{"raise": "connect"}`` (the call fails
in transit) or carry a raw ``"text"`` body (cut off JSON, an HTML error page).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from adapters.zendesk import RetryPolicy, ZendeskAuth, ZendeskPort

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "zendesk"
RECORDED = HERE.parents[1].parent / "shared" / "fixtures" / "zendesk-recorded"
BASE_URL = "https://acme.zendesk.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EMAIL = "agent@acme.example"
TOKEN = "tok-SECRET-123"


def load(name: str) -> list[dict[str, Any]]:
    """Our own fixture file ``name`` (without ``.json``)."""
    data: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return data


def recorded_files() -> list[Path]:
    """Every recorded exchange file (empty when ``../shared`` is absent)."""
    return sorted(RECORDED.glob("*.json")) if RECORDED.is_dir() else []


def needs_recorded() -> pytest.MarkDecorator:
    """Skip marker for tests that read ``../shared/fixtures/zendesk-recorded``."""
    return pytest.mark.skipif(
        not RECORDED.is_dir(),
        reason=f"recorded Zendesk traffic not available (expected at {RECORDED.name} next to "
        "the repository, under shared/fixtures); a plain clone has no ../shared",
    )


class Replay:
    """A transport that answers with ``exchanges`` in order, checking each request.

    With ``strict`` the method, path, query and JSON body must match the recorded request;
    otherwise only method and path are checked (for traffic recorded from another client).
    """

    def __init__(self, exchanges: Iterable[Mapping[str, Any]], *, strict: bool = True) -> None:
        self.pending = list(exchanges)
        self.strict = strict
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.pending, f"unexpected request {request.method} {request.url}"
        exchange = self.pending.pop(0)
        want, answer = exchange["request"], exchange["response"]
        got = describe(request)
        assert (got["method"], got["path"]) == (want["method"], want["path"]), (got, want)
        if self.strict:
            assert got["query"] == want.get("query", {}), (got, want)
            assert got["json"] == want.get("json"), (got, want)
        if "raise" in answer:
            if answer["raise"] == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            raise httpx.ConnectError("connection refused", request=request)
        headers = dict(answer.get("headers") or {})
        if "text" in answer:
            return httpx.Response(answer["status"], headers=headers, text=answer["text"])
        if answer.get("json") is None:
            return httpx.Response(answer["status"], headers=headers)
        return httpx.Response(answer["status"], headers=headers, json=answer["json"])

    def done(self) -> None:
        """Assert every exchange was used."""
        assert not self.pending, f"{len(self.pending)} exchanges never requested: " + ", ".join(
            f"{e['request']['method']} {e['request']['path']}" for e in self.pending
        )


def describe(request: httpx.Request) -> dict[str, Any]:
    """Method, path, query (as lists) and JSON body of a request."""
    body = json.loads(request.content) if request.content else None
    query = parse_qs(request.url.query.decode())
    return {"method": request.method, "path": request.url.path, "query": query, "json": body}


class Sleeps(list[float]):
    """An injectable ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_port(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    sleep: Sleeps | None = None,
    now: Callable[[], datetime] = lambda: NOW,
    rate_limit_per_minute: int = 200,
    auth: ZendeskAuth | None = None,
    remove_old_emails: bool = False,
) -> ZendeskPort:
    """A port over ``handler`` with recorded sleeps and a fixed clock."""
    client = httpx.Client(transport=httpx.MockTransport(handler))
    import random

    return ZendeskPort(
        client,
        BASE_URL,
        auth or ZendeskAuth.api_token(EMAIL, TOKEN),
        rate_limit_per_minute=rate_limit_per_minute,
        sleep=sleep if sleep is not None else Sleeps(),
        now=now,
        retry=RetryPolicy(rng=random.Random(7)),
        remove_old_emails=remove_old_emails,
    )
