"""The Zendesk adapter reading from the sandbox (in process): paging, exports and their limits.

The sandbox runs on a fake clock that the adapter's waits move, so pacing is measured in
sandbox time and nothing sleeps. Every answer the sandbox gives is recorded, so a 429 or a
request too many cannot pass unseen.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from adapters.sandbox import FakeClock, ZendeskSandbox
from adapters.sandbox.zendesk import EXPORT_RATE_LIMIT
from adapters.zendesk import ZendeskAccessDenied, ZendeskAuth, ZendeskPort
from talkcore.records import Kind

BASE = "https://sandbox.zendesk.test"
KINDS = frozenset({Kind.USER, Kind.ORGANIZATION})


class Wire:
    """The adapter's connection to a sandbox, with every (status, path) it saw."""

    def __init__(self, zd: ZendeskSandbox, clock: FakeClock) -> None:
        self.seen: list[tuple[int, str]] = []
        self.clock = clock
        client = httpx.Client(
            transport=httpx.WSGITransport(app=zd.app),
            base_url=BASE,
            event_hooks={"response": [self._note]},
        )
        creds = zd.credentials
        self.port = ZendeskPort(
            client,
            BASE,
            ZendeskAuth.api_token(creds.email, creds.api_token),
            sleep=clock.advance,
            now=lambda: datetime.fromtimestamp(clock(), UTC),
        )

    def _note(self, response: httpx.Response) -> None:
        self.seen.append((response.status_code, response.request.url.path))

    def paths(self) -> Counter[str]:
        """Requests per path."""
        return Counter(path for _, path in self.seen)

    def statuses(self) -> set[int]:
        """Every status answered."""
        return {status for status, _ in self.seen}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_full_read_stops_on_has_more_false_though_the_last_page_links_on(
    clock: FakeClock,
) -> None:
    zd = ZendeskSandbox(clock=clock)
    for n in range(249):  # with the sandbox's own admin: 250 users, three pages of 100
        zd.add_user(name=f"Bruker {n}", email=f"b{n}@x.no")
    zd.add_organization(name="Acme AS")
    wire = Wire(zd, clock)
    result = wire.port.read(KINDS, None)
    assert sum(r.kind is Kind.USER for r in result.records) == 250
    # Not one request past the page that said has_more: false (whose links.next is set).
    assert wire.paths() == {"/api/v2/users.json": 3, "/api/v2/organizations.json": 1}


def test_exports_paced_against_a_sandbox_that_enforces_their_budget(clock: FakeClock) -> None:
    zd = ZendeskSandbox(clock=clock, export_rate_limit=EXPORT_RATE_LIMIT)
    zd.add_organization(name="Acme AS")
    wire = Wire(zd, clock)
    cursors = dict(wire.port.read(KINDS, None).cursors)
    clock.advance(120)  # the next start_time must be over a minute old
    started = clock()
    for n in range(12):
        zd.add_organization(name=f"Ny {n} AS")
        read = wire.port.read(KINDS, cursors)
        assert read.problems == ()
        cursors.update(read.cursors)
    exports = sum(n for path, n in wire.paths().items() if "/incremental/" in path)
    assert exports == 24
    # Paced by the client, never refused by the sandbox: 24 exports take two waits of a window.
    assert 429 not in wire.statuses()
    assert 120 <= clock() - started < 180


def test_check_against_an_agent_token_names_the_admin_role(clock: FakeClock) -> None:
    wire = Wire(ZendeskSandbox(clock=clock, caller_role="agent"), clock)
    with pytest.raises(ZendeskAccessDenied, match="'admin' role") as caught:
        wire.port.check()
    assert "role 'agent'" in str(caught.value)
    assert (403, "/api/v2/incremental/organizations.json") in wire.seen


def test_a_stalled_organization_export_is_reported_then_read_in_full(clock: FakeClock) -> None:
    zd = ZendeskSandbox(clock=clock)
    zd.add_organization(name="Acme AS")
    wire = Wire(zd, clock)
    cursors = dict(wire.port.read(KINDS, None).cursors)
    clock.advance(120)
    zd.stall_organization_export = True
    stalled = wire.port.read(KINDS, cursors)
    [problem] = stalled.problems
    assert (problem.kind, problem.field) == (Kind.ORGANIZATION, "end_time")
    assert stalled.cursors["zendesk:organization"] == "full"
    cursors.update(stalled.cursors)
    before = wire.paths()["/api/v2/organizations.json"]
    # The stall is still there, but the next run does not ask the export: it reads in full.
    recovered = wire.port.read(KINDS, cursors)
    assert recovered.problems == ()
    assert wire.paths()["/api/v2/organizations.json"] == before + 1
    assert recovered.cursors["zendesk:organization"].startswith("start:")
    assert "Acme AS" in {r.get("name") for r in recovered.records if r.kind is Kind.ORGANIZATION}
