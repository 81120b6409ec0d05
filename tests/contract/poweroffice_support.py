"""Replaying PowerOffice fixtures through the real adapter, with every exchange checked.

A fixture (``fixtures/poweroffice/<name>.json``) is a list of exchanges written from the v2
spec's documented shapes: the request the adapter must send (method, path, query, JSON body or
token form) and the response to give it. :class:`Replay` serves them in order as an
``httpx.MockTransport``, fails the test on any request that differs from the next expected one,
and checks every request the adapter sends and every response it is given against the OpenAPI
document (responses marked ``"off_spec"`` are deliberately broken and are checked to break it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
from poweroffice_openapi import (
    OpenApiSpec,
    SpecViolationError,
    check_token_request,
    check_token_response,
    load_spec,
)

from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort
from adapters.poweroffice.limiter import RateLimiter

FIXTURES = Path(__file__).parent / "fixtures" / "poweroffice"
HOST = "https://po.test"
BASE_PATH = "/v2"
BASE_URL = HOST + BASE_PATH
TOKEN_PATH = "/OAuth/Token"
TOKEN_URL = HOST + TOKEN_PATH
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def credentials(tag: str = "") -> PowerOfficeCredentials:
    """Test credentials; ``tag`` gives each test its own subscription key (its own limiter)."""
    return PowerOfficeCredentials("app-key-SECRET1", "client-key-SECRET2", f"sub-key-SECRET3{tag}")


SECRETS = ("app-key-SECRET1", "client-key-SECRET2", "sub-key-SECRET3")


def fixture_names() -> list[str]:
    """Every fixture file's name (without ``.json``)."""
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def load_fixture(name: str) -> dict[str, Any]:
    """A fixture document by name."""
    with (FIXTURES / f"{name}.json").open(encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def to_httpx_response(spec: dict[str, Any], request: httpx.Request) -> httpx.Response:
    """The response an exchange describes."""
    headers = dict(spec.get("headers", {}))
    if "json" in spec:
        content = json.dumps(spec["json"]).encode()
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
    elif "text" in spec:
        content = spec["text"].encode()
    else:
        content = b""
    return httpx.Response(spec["status"], headers=headers, content=content, request=request)


def check_exchange_response(spec: OpenApiSpec, response: httpx.Response) -> None:
    """Check one response against the document (or RFC 6749 for the token endpoint)."""
    if response.request.url.path == TOKEN_PATH:
        check_token_response(response)
    else:
        spec.check_httpx_response(response, BASE_PATH)


@attrs.define
class FakeTime:
    """``now`` and ``sleep`` for the port: sleeping advances ``now``; every sleep is recorded."""

    current: datetime = T0
    sleeps: list[float] = attrs.field(factory=list)

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.current.timestamp()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def waits(self, at_least: float = 0.5) -> list[float]:
        """Sleeps that were more than rate-limiter pacing."""
        return [s for s in self.sleeps if s >= at_least]


@attrs.define
class Replay:
    """Serve a fixture's exchanges in order, checking each request and response (see module)."""

    exchanges: list[dict[str, Any]]
    spec: OpenApiSpec | None
    sent: list[httpx.Request] = attrs.field(factory=list)
    position: int = 0

    @classmethod
    def of(cls, name: str) -> Replay:
        return cls(list(load_fixture(name)["exchanges"]), load_spec())

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if self.position >= len(self.exchanges):
            raise AssertionError(f"unexpected extra request {request.method} {request.url}")
        exchange = self.exchanges[self.position]
        self.position += 1
        assert_matches(exchange["request"], request)
        if request.url.path == TOKEN_PATH:
            check_token_request(request)
        elif self.spec is not None:
            self.spec.check_httpx_request(request, BASE_PATH)
        response = to_httpx_response(exchange["response"], request)
        if self.spec is not None and not exchange["response"].get("off_spec"):
            check_exchange_response(self.spec, response)
        return response

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def port(
        self, time: FakeTime, tag: str, *, shared_limit: bool = False, **options: Any
    ) -> PowerOfficePort:
        """The adapter over this replay; its rate limiter runs on ``time`` unless shared."""
        if not shared_limit:
            rate = options.pop("requests_per_second", 10.0)
            options["limiter"] = RateLimiter(rate, clock=time.monotonic)
        return PowerOfficePort(
            self.client(),
            BASE_URL,
            TOKEN_URL,
            credentials(tag),
            sleep=time.sleep,
            now=time.now,
            **options,
        )

    def assert_done(self) -> None:
        left = self.exchanges[self.position :]
        assert not left, f"{len(left)} expected requests never sent, first: {left[0]['request']}"

    def api_requests(self) -> Iterator[httpx.Request]:
        return (r for r in self.sent if r.url.path != TOKEN_PATH)


def assert_matches(expected: dict[str, Any], request: httpx.Request) -> None:
    """Fail unless ``request`` is the one the fixture expects next."""
    got = f"{request.method} {request.url.path}"
    want = f"{expected['method']} {expected['path']}"
    assert got == want, f"expected {want}, adapter sent {got}"
    query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
    assert query == expected.get("query", {}), f"{want}: query {query} != {expected.get('query')}"
    if "json" in expected:
        assert json.loads(request.content) == expected["json"], f"{want}: body differs"
    if "content_type" in expected:
        assert request.headers["content-type"] == expected["content_type"]
    if "form" in expected:
        assert dict(parse_qsl(request.content.decode())) == expected["form"]
    if request.url.path != TOKEN_PATH:
        assert request.headers["authorization"] == f"Bearer {expected.get('token', 'tok-1')}"
    assert request.headers["ocp-apim-subscription-key"].startswith("sub-key-SECRET3")


def validate_fixture_statically(spec: OpenApiSpec, name: str) -> list[str]:
    """Problems of a fixture's documented exchanges against the spec (empty when clean)."""
    problems = []
    for index, exchange in enumerate(load_fixture(name)["exchanges"]):
        req = exchange["request"]
        url = httpx.URL(HOST + req["path"], params=req.get("query", {}))
        content = json.dumps(req["json"]).encode() if "json" in req else b""
        headers = {"Content-Type": req.get("content_type", "application/json")} if content else {}
        if "form" in req:
            content = httpx.QueryParams(req["form"]).__str__().encode()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic YTpi",
                "Ocp-Apim-Subscription-Key": "k",
            }
        request = httpx.Request(req["method"], url, content=content, headers=headers)
        response = to_httpx_response(exchange["response"], request)
        where = f"{name}[{index}]"
        try:
            if req["path"] == TOKEN_PATH:
                check_token_request(request)
            else:
                spec.check_httpx_request(request, BASE_PATH)
        except SpecViolationError as exc:
            problems.append(f"{where} request: {exc}")
        try:
            check_exchange_response(spec, response)
            if exchange["response"].get("off_spec"):
                problems.append(f"{where}: marked off_spec but the spec accepts it")
        except SpecViolationError as exc:
            if not exchange["response"].get("off_spec"):
                problems.append(f"{where} response: {exc}")
    return problems
