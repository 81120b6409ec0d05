"""One port contract, run against the in-memory Zendesk fake and the real adapter.

The adapter runs over the Zendesk sandbox app (in process, through ``httpx.WSGITransport``)
when ``adapters.sandbox.zendesk`` is present, and over replayed fixtures — what Zendesk answers
for the same seeded data — always, so the fake cannot drift from the real thing unnoticed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import pytest
from zendesk_support import Replay, Sleeps, load, make_port

from adapters.memory import memory_zendesk
from adapters.zendesk import ZendeskAuth, ZendeskPort
from talkcore.ports import SystemPort, WriteOp, WriteRequest
from talkcore.records import Kind

HAS_SANDBOX = importlib.util.find_spec("adapters.sandbox.zendesk") is not None
SEED_EMAIL = "Kari.Nordmann@Acme.Example"
ORIGIN = "poweroffice:customer:42"


class Backend(Protocol):
    """A Zendesk to run the contract on: seed it, then use its port."""

    def seed_user(self, email: str, name: str) -> None: ...
    def seed_organization(self, name: str) -> None: ...
    def port(self, scenario: str) -> SystemPort: ...
    def finish(self) -> None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.fake = memory_zendesk()

    def seed_user(self, email: str, name: str) -> None:
        self.fake.put(Kind.USER, email=email, name=name)

    def seed_organization(self, name: str) -> None:
        self.fake.put(Kind.ORGANIZATION, name=name)

    def port(self, scenario: str) -> SystemPort:
        return self.fake

    def finish(self) -> None:
        pass


class ReplayBackend:
    """The adapter over exchanges recorded for each scenario's seeded data."""

    def __init__(self) -> None:
        self.replay: Replay | None = None

    def seed_user(self, email: str, name: str) -> None:
        pass  # the scenario's fixture answers with these records

    def seed_organization(self, name: str) -> None:
        pass

    def port(self, scenario: str) -> SystemPort:
        self.replay = Replay(load(f"contract_{scenario}"))
        return make_port(self.replay)

    def finish(self) -> None:
        if self.replay is not None:
            self.replay.done()


class SandboxBackend:
    """The adapter over the Zendesk sandbox app, in process."""

    def __init__(self) -> None:
        from adapters.sandbox.zendesk import ZendeskSandbox

        self.sb: Any = ZendeskSandbox()

    def seed_user(self, email: str, name: str) -> None:
        self.sb.add_user(name=name, email=email)

    def seed_organization(self, name: str) -> None:
        self.sb.add_organization(name=name)

    def port(self, scenario: str) -> SystemPort:
        base = "https://sandbox.zendesk.test"
        client = httpx.Client(transport=httpx.WSGITransport(app=self.sb.app), base_url=base)
        creds = self.sb.credentials
        clock = getattr(self.sb, "clock", None)
        sleep: Any = Sleeps()
        now: Any = None
        if clock is not None and callable(clock) and hasattr(clock, "advance"):
            # The sandbox runs on a settable clock: our waits move it, our "now" reads it.
            sleep = clock.advance
            now = lambda: datetime.fromtimestamp(clock(), UTC)  # noqa: E731
        return ZendeskPort(
            client,
            base,
            ZendeskAuth.api_token(creds.email, creds.api_token),
            sleep=sleep,
            **({"now": now} if now is not None else {}),
        )

    def finish(self) -> None:
        pass


BACKENDS = [
    pytest.param(MemoryBackend, id="memory"),
    pytest.param(ReplayBackend, id="adapter-replay"),
    pytest.param(
        SandboxBackend,
        id="adapter-sandbox",
        marks=pytest.mark.skipif(
            not HAS_SANDBOX, reason="adapters.sandbox.zendesk is not written yet"
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    made: Backend = request.param()
    made.seed_organization("Acme AS")
    made.seed_user(SEED_EMAIL, "Kari Nordmann")
    yield made
    made.finish()


def create_nord() -> WriteRequest:
    return WriteRequest("c1", WriteOp.CREATE, Kind.ORGANIZATION, None, {"name": "Nord AS"}, ORIGIN)


def test_read_all_returns_seeded_records_mapped(backend: Backend) -> None:
    port = backend.port("read_all")
    result = port.read(frozenset({Kind.USER, Kind.ORGANIZATION}), None)
    assert result.full
    users = [r for r in result.records if r.kind is Kind.USER and r.get("name") == "Kari Nordmann"]
    orgs = [r for r in result.records if r.kind is Kind.ORGANIZATION]
    assert len(users) == 1
    assert users[0].active
    assert users[0].get("email") == SEED_EMAIL.lower()  # e-mail stored lower-cased
    assert [o.get("name") for o in orgs if o.get("name") == "Acme AS"] == ["Acme AS"]
    assert all(o.active for o in orgs)
    assert {"zendesk:user", "zendesk:organization"} <= set(result.cursors)


def test_incremental_read_after_a_write_returns_the_written_record(backend: Backend) -> None:
    port = backend.port("incremental_after_write")
    kinds = frozenset({Kind.USER, Kind.ORGANIZATION})
    first = port.read(kinds, None)
    [created] = port.apply([create_nord()])
    assert created.record is not None
    later = port.read(kinds, first.cursors)
    assert not later.full
    ids = {r.id for r in later.records if r.kind is Kind.ORGANIZATION}
    assert created.record.id in ids


def test_create_organization_stores_origin_key_as_external_id(backend: Backend) -> None:
    port = backend.port("create")
    [result] = port.apply([create_nord()])
    assert result.ok
    assert result.item_id == "c1"
    assert result.record is not None
    assert result.record.kind is Kind.ORGANIZATION
    assert result.record.get("external_id") == ORIGIN
    assert result.record.get("name") == "Nord AS"


def test_duplicate_organization_name_fails_naming_the_field(backend: Backend) -> None:
    port = backend.port("duplicate_name")
    write = WriteRequest(
        "d1",
        WriteOp.CREATE,
        Kind.ORGANIZATION,
        None,
        {"name": "  acme as"},
        "poweroffice:customer:43",
    )
    [result] = port.apply([write])
    assert result.error is not None
    assert result.error.code == "duplicate_value"
    assert result.error.field == "name"
    assert result.error.record.startswith("zendesk organization")


def test_find_by_origin_finds_a_created_organization(backend: Backend) -> None:
    port = backend.port("find_by_origin")
    [created] = port.apply([create_nord()])
    assert created.record is not None
    found = port.find_by_origin(Kind.ORGANIZATION, [ORIGIN])
    assert set(found) == {ORIGIN}
    assert found[ORIGIN].id == created.record.id
