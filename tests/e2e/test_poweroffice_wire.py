"""PowerOffice behaviour that only shows on the wire: the adapter against the sandbox served on a
loopback socket, with the production HTTP client (``make_client``).

- an origin look-up of many long keys is packed into URLs the gateway accepts, measured on the
  URLs that really went out (the sandbox refuses longer ones with 404, as the real API does);
- when the gateway's limit is lower than the adapter's budget, the look-up still finds everything;
- the gateway's 429 (its own ``{statusCode, message}`` body, ``Retry-After``) is sat out;
- paging ends on ``X-Pagination`` naming no next page, and without the header on the 204 after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort, make_client
from adapters.poweroffice.limiter import RateLimiter
from adapters.poweroffice.port import MAX_URL_LENGTH
from adapters.sandbox.base import FakeClock
from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.server import serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from talkcore.records import Kind

pytestmark = pytest.mark.e2e


@contextmanager
def served_port(
    po: PowerOfficeSandbox, sent: list[httpx.Request], **options: Any
) -> Iterator[PowerOfficePort]:
    """The adapter over ``po`` served on loopback; every request it sends lands in ``sent``.

    The adapter's waits move the sandbox's clock when it has a settable one, so a Retry-After
    is obeyed without the test waiting.
    """
    clock = po.clock if isinstance(po.clock, FakeClock) else None

    def sleep(seconds: float) -> None:
        if clock is not None:
            clock.advance(seconds)

    with serve_sandboxes(po, ZendeskSandbox(job_polls=0)) as running:
        client = make_client()
        client.event_hooks["request"] = [sent.append]
        keys = po.credentials
        port = PowerOfficePort(
            client,
            f"{running.poweroffice_url}/v2",
            f"{running.poweroffice_url}/OAuth/Token",
            PowerOfficeCredentials(keys.application_key, keys.client_key, keys.subscription_key),
            sleep=sleep,
            # The gateway's limit, not ours, is under test; ours keeps the same clock.
            limiter=RateLimiter(1000.0, clock=clock or time.monotonic),
            **options,
        )
        try:
            yield port
        finally:
            client.close()


def _long_codes(po: PowerOfficeSandbox, count: int) -> dict[str, str]:
    party = po.add_customer(Name="Mange Folk AS")["Id"]
    found = {}
    for n in range(count):
        code = f"zendesk:user:{n:037d}"  # 50 characters, the most ExternalCode holds
        row = po.add_contact_person(party, FirstName="P", LastName=str(n), ExternalCode=code)
        found[code] = str(row["Id"])
    return found


def _looked_up(sent: list[httpx.Request]) -> list[httpx.Request]:
    return [r for r in sent if r.url.path.endswith("/ContactPersons")]


def test_a_look_up_of_many_long_keys_goes_out_in_urls_the_gateway_accepts() -> None:
    po = PowerOfficeSandbox()
    ids = _long_codes(po, 200)
    sent: list[httpx.Request] = []
    with served_port(po, sent) as port:
        found = port.find_by_origin(Kind.CONTACT_PERSON, list(ids))
    assert {key: record.id for key, record in found.items()} == ids
    assert po.refused_urls == []
    lengths = [len(str(r.url)) for r in _looked_up(sent)]
    assert max(lengths) <= MAX_URL_LENGTH
    assert len(lengths) == 7  # 200 keys at 31 a look-up; 50 a look-up would be refused


def test_a_gateway_stricter_than_reported_still_answers_every_key() -> None:
    po = PowerOfficeSandbox(max_url_length=1000)
    ids = _long_codes(po, 60)
    sent: list[httpx.Request] = []
    with served_port(po, sent) as port:
        found = port.find_by_origin(Kind.CONTACT_PERSON, list(ids))
    assert {key: record.id for key, record in found.items()} == ids
    assert po.refused_urls, "the first, longer look-ups were refused"
    assert all(length > 1000 for length in po.refused_urls)


def test_the_gateways_429_is_sat_out_and_the_read_completes() -> None:
    clock = FakeClock()
    po = PowerOfficeSandbox(clock=clock, rate_limit=3, rate_limit_retry_after=2)
    made = {str(po.add_department(Name=f"Avd {n}")["Id"]) for n in range(5)}
    sent: list[httpx.Request] = []
    started = clock.now
    with served_port(po, sent, page_size=1) as port:
        result = port.read(frozenset({Kind.DEPARTMENT}), None)
    assert {r.id for r in result.records} == made
    # Token and pages 1-2 fill the second; page 3 is throttled once, waits the 2 s it is told
    # (in the sandbox's clock), and pages 3-5 then fit in the next window.
    assert len(sent) == 1 + 5 + 1
    assert 2 <= clock.now - started < 3


@pytest.mark.parametrize("header", [True, False])
def test_paging_over_the_socket_with_and_without_x_pagination(header: bool) -> None:
    po = PowerOfficeSandbox(pagination_header=header)
    made = {str(po.add_department(Name=f"Avd {n}")["Id"]) for n in range(6)}
    sent: list[httpx.Request] = []
    with served_port(po, sent, page_size=3) as port:
        result = port.read(frozenset({Kind.DEPARTMENT}), None)
    assert {r.id for r in result.records} == made
    pages = [r.url.params["PageNumber"] for r in sent if r.url.path.endswith("/Departments")]
    assert pages == (["1", "2"] if header else ["1", "2", "3"])
