"""Rate limits, retries, in-doubt creates, typed errors and secrecy of the Zendesk adapter."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from structlog.testing import capture_logs
from zendesk_support import EMAIL, NOW, TOKEN, Sleeps, make_port

from adapters.zendesk import (
    ZendeskAccessDenied,
    ZendeskAuth,
    ZendeskForbidden,
    ZendeskRateLimited,
    ZendeskUnauthorized,
    ZendeskUnavailable,
)
from talkcore.ports import SystemUnavailable, WriteOp, WriteRequest
from talkcore.records import Kind

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
ME = {"user": {"id": 99, "name": "Sync Agent", "role": "admin", "active": True}}
EMPTY_ORGS = {"organizations": [], "meta": {"has_more": False}, "links": {"next": None}}


class Script:
    """Answers requests with ``answers`` in order (an exception is raised in transit)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.answers, f"unexpected {request.method} {request.url}"
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


def ok(body: object, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def create(item: str, name: str, origin: str) -> WriteRequest:
    return WriteRequest(item, WriteOp.CREATE, Kind.ORGANIZATION, None, {"name": name}, origin)


def org(id: int, name: str, ext: str) -> dict[str, object]:
    return {"id": id, "name": name, "external_id": ext, "updated_at": "2026-03-01T12:00:00Z"}


# -- 429 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "waited"), [("7", 7.0), ("0", 1.0), (None, 60.0)])
def test_429_waits_retry_after_then_retries(retry_after: str | None, waited: float) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    script = Script(httpx.Response(429, text="Too Many Requests", headers=headers), ok(ME))
    sleeps = Sleeps()
    assert "user 99" in make_port(script, sleep=sleeps).check()
    assert sleeps == [waited]
    assert len(script.requests) == 2


def test_429_on_a_create_is_resent_because_nothing_was_applied() -> None:
    job = {
        "job_status": {
            "id": "J",
            "status": "completed",
            "results": [{"index": 0, "id": 5, "status": "Created"}],
        }
    }
    script = Script(
        httpx.Response(429, json={"error": "APIRateLimitExceeded"}, headers={"Retry-After": "2"}),
        ok(job),
    )
    [result] = make_port(script).apply([create("a", "Nord AS", "po:1")])
    assert result.ok
    assert [r.method for r in script.requests] == ["POST", "POST"]


def test_endless_429_gives_up_as_system_unavailable() -> None:
    script = Script(*[httpx.Response(429, headers={"Retry-After": "1"}) for _ in range(10)])
    with pytest.raises(ZendeskRateLimited) as caught:
        make_port(script).check()
    assert isinstance(caught.value, SystemUnavailable)


def test_too_many_jobs_waits_and_resends_the_bulk_call() -> None:
    job = {
        "job_status": {
            "id": "J",
            "status": "completed",
            "results": [{"index": 0, "id": 5, "status": "Created"}],
        }
    }
    script = Script(
        httpx.Response(429, json={"error": "TooManyJobs", "description": "30 jobs queued"}),
        ok(job),
        ok({"organizations": [org(5, "Nord AS", "po:1")]}),
    )
    sleeps = Sleeps()
    [result] = make_port(script, sleep=sleeps).apply([create("a", "Nord AS", "po:1")])
    assert result.ok
    assert sleeps == [60.0]


# -- 5xx, timeouts, broken bodies -------------------------------------------------------------


def test_5xx_then_success_retries_with_jittered_backoff() -> None:
    script = Script(
        httpx.Response(503, text="<html>Service Unavailable</html>"),
        httpx.Response(500, json={"error": "InternalError"}),
        ok(ME),
    )
    sleeps = Sleeps()
    make_port(script, sleep=sleeps).check()
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5  # base 1 s, jitter ±50 %
    assert 1.0 <= sleeps[1] <= 3.0


def test_5xx_after_retries_raises_system_unavailable_without_secrets() -> None:
    script = Script(*[httpx.Response(502, text="<html>Bad Gateway</html>") for _ in range(5)])
    with pytest.raises(ZendeskUnavailable) as caught:
        make_port(script).read(frozenset({Kind.ORGANIZATION}), None)
    message = str(caught.value)
    assert "acme.zendesk.com" in message
    assert "502" in message
    assert TOKEN not in message
    assert EMAIL not in message
    assert len(script.requests) == 5


@pytest.mark.parametrize(
    "broken",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.Response(200, text='{"organizations": [{"id": 1, "na'),
        httpx.Response(200, text="<html><body>Maintenance</body></html>"),
    ],
    ids=["timeout", "connect", "cut-off-json", "html"],
)
def test_idempotent_reads_are_retried_on_transport_errors(broken: Answer) -> None:
    script = Script(broken, ok(EMPTY_ORGS))
    result = make_port(script).read(frozenset({Kind.ORGANIZATION}), None)
    assert result.full
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    "broken",
    [
        httpx.ReadTimeout("slow"),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(200, text='{"job_status": {"id": "J", "sta'),
    ],
    ids=["timeout", "5xx", "cut-off-json"],
)
def test_create_failing_in_transit_is_reconciled_never_blindly_resent(broken: Answer) -> None:
    script = Script(
        broken,
        ok({"organizations": [org(9, "Nord AS", "po:1")], "count": 1}),  # search finds it
    )
    [result] = make_port(script).apply([create("a", "Nord AS", "po:1")])
    assert result.ok
    assert result.record is not None
    assert result.record.id == "9"
    assert [r.method for r in script.requests] == ["POST", "GET"]
    assert script.requests[1].url.path == "/api/v2/organizations/search.json"
    assert script.requests[1].url.params["external_id"] == "po:1"


def test_create_in_doubt_every_time_ends_in_a_retryable_error_after_bounded_sends() -> None:
    not_found = ok({"organizations": [], "count": 0})
    script = Script(
        httpx.ReadTimeout("slow"), not_found,
        httpx.ReadTimeout("slow"), not_found,
        httpx.ReadTimeout("slow"), not_found,
    )  # fmt: skip
    [result] = make_port(script).apply([create("a", "Nord AS", "po:1")])
    assert result.error is not None
    assert result.error.code == "in_doubt"
    assert result.error.retryable
    assert [r.method for r in script.requests].count("POST") == 3
    assert not script.answers


# -- typed errors ---------------------------------------------------------------------------


def test_401_on_read_is_system_unavailable() -> None:
    script = Script(httpx.Response(401, json={"error": "Couldn't authenticate you"}))
    with pytest.raises(ZendeskUnauthorized) as caught:
        make_port(script).read(frozenset({Kind.USER}), None)
    assert isinstance(caught.value, SystemUnavailable)
    assert TOKEN not in str(caught.value)


def test_check_403_and_anonymous_user() -> None:
    forbidden = {"error": {"title": "Forbidden", "message": "You do not have access"}}
    with pytest.raises(ZendeskForbidden):
        make_port(Script(httpx.Response(403, json=forbidden))).check()
    anonymous = {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}}
    with pytest.raises(ZendeskUnauthorized):
        make_port(Script(ok(anonymous))).check()


NO_ACCESS = {"error": "Forbidden", "description": "You do not have access to this page."}
AGENT = {"user": {"id": 98, "name": "Helpdesk Agent", "role": "agent", "active": True}}


def test_check_as_an_admin_is_one_call() -> None:
    script = Script(ok(ME))
    assert "(admin)" in make_port(script).check()
    assert [r.url.path for r in script.requests] == ["/api/v2/users/me.json"]


def test_check_names_the_admin_role_when_the_exports_refuse_the_user() -> None:
    script = Script(ok(AGENT), httpx.Response(403, json=NO_ACCESS))
    with pytest.raises(ZendeskAccessDenied) as caught:
        make_port(script).check()
    assert caught.value.role == "admin"
    assert isinstance(caught.value, SystemUnavailable)
    message = str(caught.value)
    assert "'admin' role" in message and "role 'agent'" in message, message
    assert TOKEN not in message
    # The probe asks the organization export from a few minutes back (never under a minute).
    probe = script.requests[1]
    assert probe.url.path == "/api/v2/incremental/organizations.json"
    assert int(probe.url.params["start_time"]) <= int(NOW.timestamp()) - 61


def test_check_passes_a_role_the_account_lets_export_after_all() -> None:
    # The docs say admins only; an account that answers the probe is believed over the docs.
    export = {"organizations": [], "end_time": 1, "end_of_stream": True}
    script = Script(ok(AGENT), ok(export))
    assert "the incremental exports answer this role too" in make_port(script).check()


@pytest.mark.parametrize("kind", [Kind.USER, Kind.ORGANIZATION])
def test_an_export_refused_with_403_names_the_admin_role(kind: Kind) -> None:
    script = Script(httpx.Response(403, json=NO_ACCESS))
    since = int(NOW.timestamp()) - 3600
    with pytest.raises(ZendeskAccessDenied, match="'admin' role") as caught:
        make_port(script).read(frozenset({kind}), {f"zendesk:{kind}": f"start:{since}"})
    assert caught.value.role == "admin"
    assert "incremental" in script.requests[0].url.path


def test_check_unreachable() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(5)])
    with pytest.raises(ZendeskUnavailable, match=r"acme\.zendesk\.com"):
        make_port(script).check()


def test_too_many_values_is_a_per_item_failure() -> None:
    body = {
        "error": "TooManyValues",
        "description": "Maximum 100 organizations may be created per call",
    }
    script = Script(httpx.Response(400, json=body))
    [result] = make_port(script).apply([create("a", "Nord AS", "po:1")])
    assert result.error is not None
    assert result.error.code == "too_many_values"
    assert "Maximum 100" in result.error.message


def test_404_and_409_on_single_updates_name_the_record() -> None:
    script = Script(
        httpx.Response(403, json={"error": "Forbidden", "description": "Bulk import is off"}),
        httpx.Response(404, json={"error": "RecordNotFound", "description": "Not found"}),
        httpx.Response(409, json={"error": "Conflict", "description": "being updated"}),
    )
    results = make_port(script).apply(
        [
            WriteRequest("a", WriteOp.UPDATE, Kind.USER, "1", {"name": "A"}),
            WriteRequest("b", WriteOp.UPDATE, Kind.USER, "2", {"name": "B"}),
        ]
    )
    errors = [r.error for r in results]
    assert [e.code if e else None for e in errors] == ["record_not_found", "conflict"]
    assert [e.record if e else None for e in errors] == ["zendesk user 1", "zendesk user 2"]


def test_bulk_create_over_100_is_split() -> None:
    def job(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)["organizations"]
        results = [{"index": i, "id": 1000 + i, "status": "Created"} for i in range(len(sent))]
        return ok({"job_status": {"id": "J", "status": "completed", "results": results}})

    # Both bulk calls go out before either job is collected (jobs in flight at once).
    script = Script(job, job)
    writes = [create(str(i), f"Org {i}", f"po:{i}") for i in range(150)]
    results = make_port(script).apply(writes)
    sizes = [
        len(json.loads(r.content)["organizations"]) for r in script.requests if r.method == "POST"
    ]
    assert sizes == [100, 50]
    assert all(r.ok for r in results)
    assert len(script.requests) == 2  # what they created is known from the jobs: no read-back


def test_bulk_jobs_are_in_flight_together_and_polled_in_one_call() -> None:
    def queued(request: httpx.Request) -> httpx.Response:
        job_id = f"J{len(script.requests)}-{len(json.loads(request.content)['organizations'])}"
        return ok({"job_status": {"id": job_id, "status": "queued"}})

    def statuses(request: httpx.Request) -> httpx.Response:
        jobs = []
        for job_id in request.url.params["ids"].split(","):
            first, count = (int(n) for n in job_id[1:].split("-"))
            results = [
                {"index": i, "id": first * 1000 + i, "status": "Created"} for i in range(count)
            ]
            jobs.append({"id": job_id, "status": "completed", "results": results})
        return ok({"job_statuses": jobs})

    script = Script(queued, queued, queued, statuses)
    sleeps = Sleeps()
    writes = [create(str(i), f"Org {i}", f"po:{i}") for i in range(250)]
    results = make_port(script, sleep=sleeps).apply(writes)
    assert [r.method for r in script.requests[:3]] == ["POST", "POST", "POST"]
    assert script.requests[3].url.path == "/api/v2/job_statuses/show_many.json"
    assert script.requests[3].url.params["ids"] == "J1-100,J2-100,J3-50"
    assert len(script.requests) == 4
    assert sum(sleeps) == 1.0  # one wait covers every job in flight
    assert all(r.ok for r in results)
    assert len({r.record.id for r in results if r.record}) == 250


def test_organization_export_stops_before_a_start_time_under_a_minute_old() -> None:
    recent = int(NOW.timestamp()) - 30  # the page ends 30 s ago: too recent to ask from
    page = {
        "organizations": [org(7, "Acme", "po:1")],
        "end_time": recent,
        "next_page": f"https://example.zendesk.com/api/v2/incremental/organizations.json?start_time={recent}",
        "end_of_stream": False,
    }
    script = Script(ok(page))
    since = int(NOW.timestamp()) - 3600
    result = make_port(script).read(
        frozenset({Kind.ORGANIZATION}), {"zendesk:organization": f"start:{since}"}
    )
    assert len(script.requests) == 1  # no request Zendesk would refuse
    assert [r.id for r in result.records] == ["7"]
    assert result.cursors["zendesk:organization"] == f"start:{recent}"


def stalled_org_page(start: int, end_time: int | None) -> dict[str, object]:
    return {
        "organizations": [org(7, "Acme", "po:1")],
        "end_time": end_time,
        "next_page": f"https://acme.zendesk.com/api/v2/incremental/organizations.json?start_time={start}",
        "end_of_stream": False,
    }


@pytest.mark.parametrize("end_time", ["same", "earlier", None])
def test_an_organization_export_that_stops_advancing_is_a_read_problem_and_a_full_read_next(
    end_time: str | None,
) -> None:
    since = int(NOW.timestamp()) - 3600
    ends = {"same": since, "earlier": since - 5, None: None}[end_time]
    script = Script(ok(stalled_org_page(since, ends)))
    port = make_port(script)
    with capture_logs() as logs:
        result = port.read(
            frozenset({Kind.ORGANIZATION}), {"zendesk:organization": f"start:{since}"}
        )
    assert len(script.requests) == 1  # not asked again for the same page
    assert [r.id for r in result.records] == ["7"]  # what the page held is kept
    [problem] = result.problems
    assert (problem.system, problem.kind, problem.field) == ("zendesk", "organization", "end_time")
    assert problem.record_id == "(incremental export)"
    assert f"start:{since}" in problem.message and "next run reads every record" in problem.message
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "zendesk.read.export_stalled"
    ]
    # Recovery: the cursor left behind makes the next run read every organization in full.
    assert result.cursors["zendesk:organization"] == "full"
    listing = {"organizations": [org(7, "Acme", "po:1"), org(8, "Nord", "po:2")]}
    script.answers.append(ok({**listing, "meta": {"has_more": False}, "links": {}}))
    later = port.read(frozenset({Kind.ORGANIZATION}), result.cursors)
    assert script.requests[1].url.path == "/api/v2/organizations.json"
    assert later.full and later.problems == ()
    assert sorted(r.id for r in later.records) == ["7", "8"]
    assert later.cursors["zendesk:organization"] == f"start:{int(NOW.timestamp())}"


def test_a_user_export_whose_cursor_stops_moving_is_a_read_problem_too() -> None:
    page = {"users": [], "after_cursor": "SAME", "end_of_stream": False}
    script = Script(ok(page))
    result = make_port(script).read(frozenset({Kind.USER}), {"zendesk:user": "cursor:SAME"})
    assert len(script.requests) == 1
    assert [(p.kind, p.field) for p in result.problems] == [("user", "after_cursor")]
    assert result.cursors["zendesk:user"] == "full"


def test_an_export_that_ends_is_no_problem_even_when_end_time_stands_still() -> None:
    since = int(NOW.timestamp()) - 3600
    page = {"organizations": [], "end_time": since, "end_of_stream": True}
    result = make_port(Script(ok(page))).read(
        frozenset({Kind.ORGANIZATION}), {"zendesk:organization": f"start:{since}"}
    )
    assert result.problems == ()
    assert result.cursors["zendesk:organization"] == f"start:{since}"


# -- rate limiter ---------------------------------------------------------------------------


def test_client_side_limiter_waits_when_the_minute_budget_is_spent() -> None:
    script = Script(ok(ME), ok(ME), ok(ME))
    sleeps = Sleeps()
    port = make_port(script, sleep=sleeps, rate_limit_per_minute=2)
    for _ in range(3):
        port.check()
    assert sleeps == [60.0]  # the clock stands still, so the third waits a full window


def test_limiter_adopts_server_remaining_and_reset() -> None:
    clock = [NOW]

    def now() -> datetime:
        clock[0] += timedelta(seconds=1)
        return clock[0]

    spent = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0", "rate-limit-reset": "13"}
    script = Script(ok(ME, **spent), ok(ME))
    sleeps = Sleeps()
    port = make_port(script, sleep=sleeps, now=now)
    port.check()
    port.check()
    assert sleeps == [13.0]


class MovingClock:
    """A clock only waiting moves: ``now`` for the port, ``sleep`` records and advances."""

    def __init__(self) -> None:
        self.at = NOW
        self.sleeps = Sleeps()

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.sleeps(seconds)
        self.at += timedelta(seconds=seconds)


def test_limiter_learns_from_the_documented_header_names_alone() -> None:
    # Only the names the current docs give: ratelimit-limit / -remaining / -reset.
    documented = {"ratelimit-limit": "2", "ratelimit-remaining": "5", "ratelimit-reset": "40"}
    spent = {"ratelimit-limit": "700", "ratelimit-remaining": "0", "ratelimit-reset": "13"}
    script = Script(*[ok(ME, **documented) for _ in range(3)], ok(ME, **spent), ok(ME))
    clock = MovingClock()
    port = make_port(script, sleep=clock.sleep, now=clock.now, rate_limit_per_minute=200)
    for _ in range(3):
        port.check()
    assert clock.sleeps == [60.0]  # the limit (2 a minute) was learnt: the third waited
    port.check()  # answered: nothing remains, the budget resets in 13 s
    port.check()
    assert clock.sleeps == [60.0, 13.0]


def test_exports_are_paced_by_their_own_budget_and_other_calls_are_not() -> None:
    def page(n: int, end: bool = False) -> httpx.Response:
        return ok({"users": [], "after_cursor": f"C{n}", "end_of_stream": end})

    clock = MovingClock()
    pages = [page(n) for n in range(1, 12)] + [page(12, end=True)]
    script = Script(*pages, *[ok(ME) for _ in range(20)])
    port = make_port(script, sleep=clock.sleep, now=clock.now)
    with capture_logs() as logs:
        result = port.read(frozenset({Kind.USER}), {"zendesk:user": "cursor:C0"})
    assert result.cursors["zendesk:user"] == "cursor:C12"
    # Ten export pages in a minute, then the eleventh waits for the window: no 429 needed.
    assert clock.sleeps == [60.0]
    waits = [e for e in logs if e["event"] == "zendesk.rate_limit.wait"]
    assert [e["budget"] for e in waits] == ["export"]
    for _ in range(20):
        port.check()  # the account's budget (200) is far off: no export wait on other calls
    assert clock.sleeps == [60.0]


# -- secrets --------------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs_and_logs() -> None:
    auth = ZendeskAuth.api_token(EMAIL, TOKEN)
    assert TOKEN not in repr(auth)
    assert EMAIL not in repr(auth)
    assert "oauth-SECRET" not in repr(ZendeskAuth.oauth("oauth-SECRET"))
    script = Script(httpx.Response(503), httpx.ReadTimeout("slow"), ok(ME))
    with capture_logs() as logs:
        port = make_port(script)
        port.check()
    assert TOKEN not in repr(port)
    assert logs  # the retries were logged ...
    assert TOKEN not in repr(logs)  # ... without the credential
    assert EMAIL not in repr(logs)
