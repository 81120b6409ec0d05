"""One port contract for PowerOffice, run against the in-memory fake and the real adapter.

The adapter runs over the sandbox app (in-process, through ``httpx.WSGITransport``) when
``adapters.sandbox.poweroffice`` is importable, and always over replayed fixtures written from
the spec, so neither the fake nor the adapter can drift from what the core relies on:

- a full read maps seeded records with the shared logical field names;
- a contact person's ``partyId`` is its ``ContactId``;
- an update returns the record as stored;
- an incremental read after a write returns the written record.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any, Protocol

import attrs
import httpx
import pytest
from poweroffice_openapi import check_token_request, check_token_response, load_spec
from poweroffice_support import TOKEN_PATH, FakeTime, Replay

from adapters.memory import MemorySystem, memory_poweroffice
from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort
from adapters.poweroffice.limiter import RateLimiter
from talkcore.ports import SystemPort, WriteOp, WriteRequest
from talkcore.records import Kind, System

CUSTOMERS = frozenset({Kind.CUSTOMER})
PEOPLE = frozenset({Kind.CUSTOMER, Kind.CONTACT_PERSON})


class Backend(Protocol):
    """A PowerOffice behind a port, and a way to seed it as a person would."""

    port: SystemPort

    def customer(self, name: str) -> str: ...

    def contact_person(self, party_id: str, email: str, first: str, last: str) -> str: ...


@attrs.define
class MemoryBackend:
    system: MemorySystem = attrs.field(factory=memory_poweroffice)

    @property
    def port(self) -> SystemPort:
        return self.system

    def customer(self, name: str) -> str:
        return self.system.put(Kind.CUSTOMER, Name=name, IsPerson="false").id

    def contact_person(self, party_id: str, email: str, first: str, last: str) -> str:
        record = self.system.put(
            Kind.CONTACT_PERSON,
            partyId=party_id,
            emailAddress=email,
            firstName=first,
            lastName=last,
        )
        return record.id


@attrs.define
class SpecCheckedTransport(httpx.BaseTransport):
    """Checks every request the adapter sends, and every answer, against the v2 document."""

    inner: httpx.BaseTransport
    sent: list[httpx.Request] = attrs.field(factory=list)
    received: list[httpx.Response] = attrs.field(factory=list)

    def responses(self, path: str) -> list[httpx.Response]:
        """The answers to requests for ``path``, in order."""
        return [r for r in self.received if r.request.url.path == path]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        spec = load_spec()
        if request.url.path == TOKEN_PATH:
            check_token_request(request)
        elif spec is not None:
            spec.check_httpx_request(request, "/v2")
        response = self.inner.handle_request(request)
        response.read()
        response.request = request
        self.received.append(response)
        if request.url.path == TOKEN_PATH:
            check_token_response(response)
        elif spec is not None:
            spec.check_httpx_response(response, "/v2")
        return response


@attrs.define
class SandboxBackend:
    sandbox: Any
    port: PowerOfficePort
    transport: SpecCheckedTransport
    time: FakeTime

    @classmethod
    def start(
        cls, *, port_options: dict[str, Any] | None = None, **sandbox_options: Any
    ) -> SandboxBackend:
        """The adapter over a fresh sandbox; the sandbox's clock is the adapter's fake time."""
        from adapters.sandbox.poweroffice import PowerOfficeSandbox

        time = FakeTime()
        sandbox = PowerOfficeSandbox(clock=time.monotonic, **sandbox_options)
        keys = sandbox.credentials
        transport = SpecCheckedTransport(httpx.WSGITransport(app=sandbox.app))
        port = PowerOfficePort(
            httpx.Client(transport=transport),
            "http://po-sandbox/v2",
            "http://po-sandbox/OAuth/Token",
            PowerOfficeCredentials(keys.application_key, keys.client_key, keys.subscription_key),
            sleep=time.sleep,
            now=time.now,
            limiter=RateLimiter(10.0, clock=time.monotonic),
            **(port_options or {}),
        )
        return cls(sandbox, port, transport, time)

    def api_requests(self, path: str) -> list[httpx.Request]:
        """The requests the adapter sent to ``path`` (under ``/v2``)."""
        return [r for r in self.transport.sent if r.url.path == f"/v2{path}"]

    def customer(self, name: str) -> str:
        return str(self.sandbox.add_customer(Name=name, IsPerson=False)["Id"])

    def contact_person(self, party_id: str, email: str, first: str, last: str) -> str:
        row = self.sandbox.add_contact_person(
            int(party_id), EmailAddress=email, FirstName=first, LastName=last
        )
        return str(row["Id"])


@attrs.define
class ReplayBackend:
    """Seeding is already in the fixture: it hands out the ids the fixture was written with."""

    replay: Replay
    port: PowerOfficePort
    customer_ids: Iterator[str] = attrs.field(factory=lambda: iter(["101", "104"]))
    person_ids: Iterator[str] = attrs.field(factory=lambda: iter(["201"]))

    @classmethod
    def of(cls, name: str) -> ReplayBackend:
        replay = Replay.of(name)
        return cls(replay, replay.port(FakeTime(), f"contract-{name}", page_size=50))

    def customer(self, name: str) -> str:
        return next(self.customer_ids)

    def contact_person(self, party_id: str, email: str, first: str, last: str) -> str:
        return next(self.person_ids)


_SANDBOX = importlib.util.find_spec("adapters.sandbox.poweroffice") is not None


@pytest.fixture(params=["memory", "sandbox", "replay"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
    elif request.param == "sandbox":
        if not _SANDBOX:
            pytest.skip("adapters.sandbox.poweroffice is not there yet; the replay run covers it")
        yield SandboxBackend.start()
    else:
        chosen = ReplayBackend.of(f"contract_{request.node.originalname.removeprefix('test_')}")
        yield chosen
        chosen.replay.assert_done()


def test_read_all_maps_seeded_records(backend: Backend) -> None:
    acme = backend.customer("Acme AS")
    nordlys = backend.customer("Nordlys AS")
    per = backend.contact_person(acme, "per@acme.no", "Per", "Olsen")

    result = backend.port.read(PEOPLE, None)

    assert result.full and result.system is System.POWEROFFICE
    customers = {r.id: r for r in result.records if r.kind is Kind.CUSTOMER}
    assert {customers[acme].get("Name"), customers[nordlys].get("Name")} == {
        "Acme AS",
        "Nordlys AS",
    }
    assert customers[acme].get("IsPerson") == "false"
    assert customers[acme].active
    person = next(r for r in result.records if r.kind is Kind.CONTACT_PERSON and r.id == per)
    assert person.get("emailAddress") == "per@acme.no"
    assert person.get("firstName") == "Per" and person.get("lastName") == "Olsen"
    assert set(result.cursors) >= {"poweroffice:customer", "poweroffice:contact_person"}


def test_contact_person_party_id_is_its_contact_id(backend: Backend) -> None:
    acme = backend.customer("Acme AS")
    per = backend.contact_person(acme, "per@acme.no", "Per", "Olsen")
    result = backend.port.read(frozenset({Kind.CONTACT_PERSON}), None)
    [person] = [r for r in result.records if r.id == per]
    assert person.get("partyId") == acme


def test_update_returns_the_stored_record(backend: Backend) -> None:
    acme = backend.customer("Acme AS")
    [result] = backend.port.apply(
        [WriteRequest("u1", WriteOp.UPDATE, Kind.CUSTOMER, acme, {"Name": "Acme Norge AS"})]
    )
    assert result.ok and result.item_id == "u1"
    assert result.record is not None
    assert result.record.id == acme and result.record.get("Name") == "Acme Norge AS"


def test_incremental_read_after_a_write_returns_it(backend: Backend) -> None:
    acme = backend.customer("Acme AS")
    backend.customer("Nordlys AS")
    first = backend.port.read(CUSTOMERS, None)
    [written] = backend.port.apply(
        [WriteRequest("u1", WriteOp.UPDATE, Kind.CUSTOMER, acme, {"Name": "Acme Norge AS"})]
    )
    assert written.ok

    later = backend.port.read(CUSTOMERS, first.cursors)

    assert not later.full
    changed = {r.id: r.get("Name") for r in later.records}
    assert changed.get(acme) == "Acme Norge AS"
    assert later.cursors["poweroffice:customer"] >= first.cursors["poweroffice:customer"]
