"""Every file of ``../shared/fixtures/zendesk-recorded/`` replayed through the adapter's parsing.

Real traffic (recorded by zenpy) keeps our reading of the wire honest: every user,
organization, job status, page and error body in it must structure and map without problems.
Where a whole flow was recorded, it is driven through the port itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from zendesk_support import Replay, make_port, needs_recorded, recorded_files

from adapters.zendesk.errors import ZendeskError, error_for
from adapters.zendesk.jobs import line_up, succeeded
from adapters.zendesk.reading import Batch
from adapters.zendesk.wire import (
    CursorLinks,
    CursorMeta,
    IncrementalTimePage,
    IncrementalUsersPage,
    JobStatusDTO,
    structure,
)
from adapters.zendesk.writing import to_record
from talkcore.ports import WriteOp, WriteRequest
from talkcore.records import Kind

pytestmark = needs_recorded()

FILES = recorded_files()


def _exchanges(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    return data


def parse_response(exchange: dict[str, Any]) -> list[str]:
    """Parse one recorded response the way the adapter does; return what was recognised."""
    status = exchange["response"]["status"]
    body = exchange["response"].get("json")
    seen: list[str] = []
    if status >= 400:
        error = error_for(status, body)
        assert isinstance(error, ZendeskError)
        assert error.code and error.code != f"http_{status}", body
        return [f"error:{type(error).__name__}"]
    assert isinstance(body, dict), exchange["request"]
    for key, kind in (("users", Kind.USER), ("organizations", Kind.ORGANIZATION)):
        if key in body:
            batch = Batch(kind)
            for raw in body[key]:
                batch.add(raw)
            assert batch.problems == [], batch.problems
            assert len(batch.take()) == len(body[key])
            seen.append(key)
    for key, kind in (("user", Kind.USER), ("organization", Kind.ORGANIZATION)):
        if key in body:
            record = to_record(kind, body[key])
            assert record.id == str(body[key]["id"])
            seen.append(key)
    if "job_status" in body:
        job = structure(body["job_status"], JobStatusDTO)
        lined = line_up(job, job.total or 0)
        if job.status == "completed":
            assert all(r is not None and succeeded(r) for r in lined)
        seen.append("job_status")
    if "meta" in body:
        meta = structure(body["meta"], CursorMeta)
        links = structure(body["links"], CursorLinks)
        # has_more says whether there is more; a next link alone says nothing (the API leaves
        # one on the last page too), so only "more implies a way on" is checked.
        assert not meta.has_more or links.next or meta.after_cursor
        seen.append("cursor_page")
    if "after_cursor" in body:
        page = structure(body, IncrementalUsersPage)
        assert page.after_cursor
        seen.append("incremental_cursor")
    elif "end_time" in body:
        structure(body, IncrementalTimePage)
        seen.append("incremental_time")
    return seen


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_recorded_response_parses(path: Path) -> None:
    exchanges = _exchanges(path)
    assert exchanges
    for exchange in exchanges:
        assert parse_response(exchange), f"nothing recognised in {exchange['request']['path']}"


def test_recorded_users_are_mapped_with_the_conventions() -> None:
    path = next(p for p in FILES if p.stem.startswith("UsersIncrementalTest"))
    batch = Batch(Kind.USER)
    for exchange in _exchanges(path):
        for raw in exchange["response"]["json"]["users"]:
            batch.add(raw)
    assert batch.problems == []
    records = batch.take()
    with_email = [r for r in records if r.get("email")]
    assert with_email
    assert all(r.modified is not None for r in records)
    assert {r.get("role") for r in records} <= {"end-user", "agent", "admin"}


def _as_batched_polls(exchanges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded flow as the writer now asks it: zenpy polled ``/job_statuses/{id}``; the
    writer polls ``/job_statuses/show_many?ids=``, whose answer lists the same job status."""
    out = []
    for exchange in exchanges:
        request, response = exchange["request"], exchange["response"]
        if request["path"].startswith("/api/v2/job_statuses/"):
            request = {**request, "path": "/api/v2/job_statuses/show_many.json"}
            response = {**response, "json": {"job_statuses": [response["json"]["job_status"]]}}
        out.append({"request": request, "response": response})
    return out


def test_recorded_organization_bulk_create_drives_the_port() -> None:
    path = next(p for p in FILES if "Organization" in p.stem and "create-multiple" in p.stem)
    exchanges = _exchanges(path)
    sent = exchanges[0]["request"]["json"]["organizations"]
    writes = [
        WriteRequest(f"i{n}", WriteOp.CREATE, Kind.ORGANIZATION, None, {"name": o["name"]})
        for n, o in enumerate(sent)
    ]
    # The recording ends with zenpy's read-back of the created organizations; the writer no
    # longer makes it, so it serves here to check what the writer derives instead.
    *flow, read_back = _as_batched_polls(exchanges)
    assert read_back["request"]["path"] == "/api/v2/organizations/show_many.json"
    replay = Replay(flow, strict=False)
    results = make_port(replay).apply(writes)
    replay.done()
    assert all(r.ok for r in results)
    # No index in these results: they are placed by position.
    assert [r.record.get("name") if r.record else None for r in results] == [
        o["name"] for o in sent
    ]
    stored = {
        str(raw["id"]): to_record(Kind.ORGANIZATION, raw).fields
        for raw in read_back["response"]["json"]["organizations"]
    }
    assert {r.record.id: r.record.fields for r in results if r.record} == stored


def test_recorded_deleted_user_comes_back_inactive() -> None:
    path = next(p for p in FILES if "deletion" in p.stem)
    delete = next(e for e in _exchanges(path) if e["request"]["method"] == "DELETE")
    record = to_record(Kind.USER, delete["response"]["json"]["user"])
    assert not record.active
