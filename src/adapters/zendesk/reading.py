"""Reading users and organizations: everything (cursor pages) or what changed (incremental).

Cursors are opaque to the core; ours are ``start:<epoch seconds>`` (a time to export from) or
``cursor:<after_cursor>`` (where the cursor-based user export left off). A full read returns a
``start:`` cursor taken just before it began, so the next run can go incremental.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import structlog

from adapters.zendesk.mapping import organization_record, user_record
from adapters.zendesk.transport import ZendeskHttp
from adapters.zendesk.wire import (
    CursorLinks,
    CursorMeta,
    IncrementalTimePage,
    IncrementalUsersPage,
    OrganizationDTO,
    UserDTO,
    WireError,
    items,
    member,
    structure,
)
from talkcore.records import Kind, Record, RecordProblem, System

log = structlog.get_logger()

PAGE_SIZE = 100
MAX_PAGES = 100_000
"""A guard against a server that keeps answering ``has_more`` forever."""

_PATHS = {Kind.USER: "/api/v2/users.json", Kind.ORGANIZATION: "/api/v2/organizations.json"}
_KEYS = {Kind.USER: "users", Kind.ORGANIZATION: "organizations"}

# Zendesk refuses (or silently moves) a start_time less than a minute old.
_EXPORT_LAG = timedelta(seconds=61)


class Batch:
    """Records and problems collected during one read of one kind."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.records: dict[str, Record] = {}
        self.problems: list[RecordProblem] = []

    def add(self, raw: Any) -> None:
        """Map one wire object; a misfit becomes a problem naming record and field."""
        try:
            if self.kind is Kind.USER:
                record = user_record(structure(raw, UserDTO))
            else:
                record = organization_record(structure(raw, OrganizationDTO))
        except WireError as exc:
            rid = raw.get("id") if isinstance(raw, dict) else None
            self.problems.append(
                RecordProblem(System.ZENDESK, self.kind, str(rid), exc.field, exc.problem)
            )
            return
        # Exports may send one record several times: keep the newest version.
        old = self.records.get(record.id)
        if old is None or _not_older(record, old):
            self.records[record.id] = record


def _not_older(new: Record, old: Record) -> bool:
    if new.modified is None or old.modified is None:
        return True
    return new.modified >= old.modified


def start_cursor(moment: datetime) -> str:
    """The cursor that exports everything changed from ``moment`` on."""
    return f"start:{int(moment.timestamp())}"


def read_all(http: ZendeskHttp, kind: Kind, batch: Batch) -> None:
    """Every record of ``kind`` through cursor pagination."""
    url: str | None = _PATHS[kind]
    params: dict[str, str | int] | None = {"page[size]": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        if url is None:
            return
        body = http.get(url, params).body
        for raw in items(body, _KEYS[kind]):
            batch.add(raw)
        meta = structure(member(body, "meta") or {}, CursorMeta)
        links = structure(member(body, "links") or {}, CursorLinks)
        if not meta.has_more:
            return
        if links.next:
            url, params = links.next, None
        elif meta.after_cursor:
            params = {"page[size]": PAGE_SIZE, "page[after]": meta.after_cursor}
        else:
            return


def read_users_since(
    http: ZendeskHttp, cursor: str, batch: Batch, now: Callable[[], datetime]
) -> str:
    """Users changed since ``cursor`` (cursor-based export); returns the next cursor."""
    params: dict[str, str | int]
    if cursor.startswith("cursor:"):
        params = {"cursor": cursor.removeprefix("cursor:")}
    else:
        params = {"start_time": _start_time(cursor, now)}
    next_cursor = cursor
    for _ in range(MAX_PAGES):
        body = http.get("/api/v2/incremental/users/cursor.json", params).body
        for raw in items(body, "users"):
            batch.add(raw)
        page = structure(body, IncrementalUsersPage)
        if page.after_cursor:
            next_cursor = f"cursor:{page.after_cursor}"
        if page.end_of_stream or not page.after_cursor:
            break
        params = {"cursor": page.after_cursor}
    return next_cursor


def read_organizations_since(
    http: ZendeskHttp, cursor: str, batch: Batch, now: Callable[[], datetime]
) -> str:
    """Organizations changed since ``cursor`` (time-based export); returns the next cursor."""
    start = _start_time(cursor, now)
    next_cursor = f"start:{start}"
    for _ in range(MAX_PAGES):
        body = http.get("/api/v2/incremental/organizations.json", {"start_time": start}).body
        for raw in items(body, "organizations"):
            batch.add(raw)
        page = structure(body, IncrementalTimePage)
        if page.end_time is not None:
            next_cursor = f"start:{page.end_time}"
        if page.end_of_stream or page.end_time is None or page.end_time <= start:
            # end_time not moving means the export has nothing further to give.
            break
        start = page.end_time
        if start > int((now() - _EXPORT_LAG).timestamp()):
            # Zendesk refuses a start_time under a minute old: the rest waits for the next run,
            # which starts from this cursor.
            break
    return next_cursor


def _start_time(cursor: str, now: Callable[[], datetime]) -> int:
    latest = int((now() - _EXPORT_LAG).timestamp())
    try:
        wanted = int(cursor.removeprefix("start:"))
    except ValueError:
        log.warning("zendesk.read.bad_cursor", cursor=cursor[:40])
        wanted = 0
    return max(0, min(wanted, latest))


def pages_of(values: list[str], size: int = 100) -> Iterator[list[str]]:
    """``values`` in chunks of at most ``size``."""
    for i in range(0, len(values), size):
        yield values[i : i + size]
