"""Token, throttling, retries, typed errors and secret hygiene of the PowerOffice adapter."""

from __future__ import annotations

import base64

import httpx
import pytest
from poweroffice_support import SECRETS, FakeTime, Replay, credentials
from structlog.testing import capture_logs

from adapters.poweroffice import (
    DEMO_BASE_URL,
    DEMO_TOKEN_URL,
    PRODUCTION_BASE_URL,
    PRODUCTION_TOKEN_URL,
    PowerOfficeAccessDenied,
    PowerOfficeAuthError,
    PowerOfficePort,
    PowerOfficeUnavailable,
)
from adapters.poweroffice.limiter import RateLimiter, shared_limiter
from talkcore.ports import SystemUnavailable, WriteOp, WriteRequest
from talkcore.records import Kind

DEPARTMENTS = frozenset({Kind.DEPARTMENT})


def _no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_urls_are_exported() -> None:
    assert PRODUCTION_BASE_URL == "https://goapi.poweroffice.net/v2"
    assert PRODUCTION_TOKEN_URL == "https://goapi.poweroffice.net/OAuth/Token"
    assert DEMO_BASE_URL == "https://goapi.poweroffice.net/Demo/v2"
    assert DEMO_TOKEN_URL == "https://goapi.poweroffice.net/Demo/OAuth/Token"


def test_token_call_uses_basic_auth_of_application_and_client_key() -> None:
    replay = Replay.of("check_ok")
    message = replay.port(FakeTime(), "basic").check()
    replay.assert_done()
    token_call = replay.sent[0]
    expected = base64.b64encode(b"app-key-SECRET1:client-key-SECRET2").decode()
    assert token_call.headers["authorization"] == f"Basic {expected}"
    assert token_call.headers["ocp-apim-subscription-key"] == "sub-key-SECRET3basic"
    assert "customers readable" in message
    _no_secrets(message)


def test_token_is_reused_then_renewed_before_it_expires() -> None:
    replay = Replay.of("token_expiry")
    time = FakeTime()
    port = replay.port(time, "expiry", page_size=2)
    port.read(DEPARTMENTS, None)
    time.advance(500)  # 600 s token, renewed 60 s early: still good at 500 s
    port.read(DEPARTMENTS, None)
    time.advance(90)  # 590 s: inside the renewal margin
    port.read(DEPARTMENTS, None)
    replay.assert_done()


def test_401_renews_the_token_once_and_repeats_the_call() -> None:
    replay = Replay.of("unauthorized_renew")
    result = replay.port(FakeTime(), "401", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert [r.id for r in result.records] == ["7"]


def test_401_after_renewing_is_an_auth_error() -> None:
    replay = Replay.of("unauthorized_twice")
    with pytest.raises(PowerOfficeAuthError) as caught:
        replay.port(FakeTime(), "401x2", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert isinstance(caught.value, SystemUnavailable)
    _no_secrets(str(caught.value))


def test_429_waits_retry_after_then_succeeds() -> None:
    replay = Replay.of("throttled")
    time = FakeTime()
    with capture_logs() as logs:
        result = replay.port(time, "429", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert [r.id for r in result.records] == ["7"]
    assert time.waits() == [3.0]
    assert any(entry["event"] == "poweroffice.throttled" for entry in logs)


def test_429_without_retry_after_waits_at_least_a_second() -> None:
    replay = Replay.of("throttled_no_retry_after")
    time = FakeTime()
    replay.port(time, "429b", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert time.waits() == [1.0]


def test_5xx_and_broken_bodies_are_retried_with_bounded_back_off() -> None:
    replay = Replay.of("server_errors_retried")
    time = FakeTime()
    result = replay.port(time, "5xx", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert [r.id for r in result.records] == ["7"]
    backoffs = time.waits(0.2)
    assert len(backoffs) == 3
    assert all(0.2 <= wait <= 8.0 for wait in backoffs)


def test_5xx_on_every_try_raises_system_unavailable() -> None:
    replay = Replay.of("server_down")
    with pytest.raises(PowerOfficeUnavailable, match="4 times") as caught:
        replay.port(FakeTime(), "down", page_size=2).read(DEPARTMENTS, None)
    replay.assert_done()
    assert isinstance(caught.value, SystemUnavailable)


def test_check_with_refused_credentials_names_no_secret() -> None:
    replay = Replay.of("token_refused")
    port = replay.port(FakeTime(), "refused")
    with pytest.raises(PowerOfficeAuthError, match="application key or client key") as caught:
        port.check()
    _no_secrets(str(caught.value))
    _no_secrets(repr(port))


def test_check_without_the_access_role_says_which_role() -> None:
    replay = Replay.of("forbidden")
    with pytest.raises(PowerOfficeAccessDenied, match="Customer or Customer_Full") as caught:
        replay.port(FakeTime(), "403").check()
    assert caught.value.roles == ("Customer", "Customer_Full")


def test_unreachable_is_system_unavailable_with_a_clear_message() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    time = FakeTime()
    port = PowerOfficePort(
        httpx.Client(transport=httpx.MockTransport(refuse)),
        "https://po.test/v2",
        "https://po.test/OAuth/Token",
        credentials("unreachable"),
        sleep=time.sleep,
        now=time.now,
    )
    with pytest.raises(SystemUnavailable, match="unreachable") as caught:
        port.check()
    _no_secrets(str(caught.value))


def test_post_timing_out_is_never_resent() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/OAuth/Token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 600})
        if request.method == "POST":
            posts.append(request)
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(204)  # the lookup by origin key finds nothing

    time = FakeTime()
    port = PowerOfficePort(
        httpx.Client(transport=httpx.MockTransport(handler)),
        "https://po.test/v2",
        "https://po.test/OAuth/Token",
        credentials("post-timeout"),
        sleep=time.sleep,
        now=time.now,
    )
    write = WriteRequest(
        "c", WriteOp.CREATE, Kind.CUSTOMER, None, {"Name": "X"}, origin_key="zendesk:organization:1"
    )
    [result] = port.apply([write])
    assert len(posts) == 1
    assert result.error is not None and result.error.code == "not_created"
    assert result.error.retryable


def test_credentials_repr_hides_all_three_keys() -> None:
    text = repr(credentials()) + str(credentials())
    _no_secrets(text)


def test_secrets_are_not_logged() -> None:
    replay = Replay.of("check_ok")
    with capture_logs() as logs:
        replay.port(FakeTime(), "logs").check()
    _no_secrets(repr(logs))


def test_rate_limiter_spaces_calls_and_is_shared_per_subscription_key() -> None:
    clock = [100.0]
    limiter = RateLimiter(10.0, clock=lambda: clock[0])
    waits = [limiter.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
    clock[0] += 1.0
    assert limiter.reserve() == 0.0
    limiter.hold_off(2.0)
    assert limiter.reserve() == pytest.approx(2.0)
    key = credentials("shared").limiter_id()
    assert shared_limiter(key, 10.0) is shared_limiter(key, 10.0)
    assert shared_limiter(key, 10.0) is not shared_limiter(credentials("other").limiter_id(), 10.0)


def test_two_ports_with_one_key_share_the_limit() -> None:
    replay_a, replay_b = Replay.of("check_ok"), Replay.of("check_ok")
    time = FakeTime()
    # Ports built separately with one subscription key share the process-wide limiter: the
    # fourth of their calls waits for the fourth slot at 2 per second (1.5 s), not the second.
    for replay in (replay_a, replay_b):
        replay.port(time, "same-key", shared_limit=True, requests_per_second=2.0).check()
    assert max(time.sleeps) >= 1.4


def test_every_request_has_its_own_slot_booked_just_before_it() -> None:
    # A call that needs a token fetches it before booking its own slot: booked first, the
    # call's slot would be spent waiting for the token, and the two requests would go out back
    # to back (over the rate when many processes share one budget).
    replay = Replay.of("token_expiry")
    booked_before: list[int] = []

    class Recording:
        def reserve(self) -> float:
            booked_before.append(len(replay.sent))
            return 0.0

        def hold_off(self, seconds: float) -> None:
            raise AssertionError("no 429 in this exchange")

    time = FakeTime()
    port = replay.port(time, "slots", shared_limit=True, page_size=2, limiter=Recording())
    port.read(DEPARTMENTS, None)  # the first call fetches the token
    time.advance(500)
    port.read(DEPARTMENTS, None)
    time.advance(90)  # inside the renewal margin: this call renews the token
    port.read(DEPARTMENTS, None)
    replay.assert_done()
    assert booked_before == list(range(len(replay.sent)))
