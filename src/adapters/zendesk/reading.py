"""Reading users and organizations: everything (cursor pages) or what changed (incremental).

Cursors are opaque to the core; ours are ``start:<epoch seconds>`` (a time to export from),
``cursor:<after_cursor>`` (where the cursor-based user export left off) or ``full`` (read this
kind in full next time: an export stopped advancing). A full read returns a ``start:`` cursor
taken just before it began, so the next run can go incremental.

The incremental exports are for admins only: a 403 on one is ``ZendeskAccessDenied`` naming the
role, not a bare "forbidden".
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timedelta
from typing import Any

import structlog

from adapters.zendesk.errors import ZendeskAccessDenied, ZendeskForbidden
from adapters.zendesk.mapping import to_record
from adapters.zendesk.transport import Params, ZendeskHttp
from adapters.zendesk.wire import (
    CursorLinks,
    CursorMeta,
    IncrementalTimePage,
    IncrementalUsersPage,
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

FULL_READ = "full"
"""The cursor that makes the next run read a kind in full (after its export stalled)."""
EXPORT_ROLE = "admin"
"""The role Zendesk requires of the caller for both incremental exports."""
STALLED = "(incremental export)"
"""The record id of a stalled-export problem: the export, not any one record, is at fault."""


class Batch:
    """Records and problems collected from the pages of one read of one kind."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.records: list[Record] = []
        """The records of the page being read (``take`` hands them on)."""
        self.problems: list[RecordProblem] = []
        self.taken = 0
        """How many records ``take`` has handed on."""

    def add(self, raw: Any) -> None:
        """Map one wire object; a misfit becomes a problem naming record and field."""
        try:
            record = to_record(self.kind, raw)
        except WireError as exc:
            rid = raw.get("id") if isinstance(raw, dict) else None
            self.problems.append(
                RecordProblem(System.ZENDESK, self.kind, str(rid), exc.field, exc.problem)
            )
            return
        # Exports may send one record several times: the reader keeps the newest
        # (``talkcore.records.supersedes``).
        self.records.append(record)

    def take(self) -> list[Record]:
        """The records collected since the last ``take``."""
        page, self.records = self.records, []
        self.taken += len(page)
        return page


Pages = Generator[list[Record], None, str]
"""A kind's read, page by page; it returns the cursor to read on from next time."""


def export(http: ZendeskHttp, path: str, params: Params) -> Any:
    """GET one export page; a 403 names the admin role the exports need."""
    try:
        return http.get(path, params).body
    except ZendeskForbidden as exc:
        raise ZendeskAccessDenied(
            f"Zendesk at {http.host} refused {path} ({exc.message}): the incremental exports are "
            f"for the {EXPORT_ROLE!r} role only; use an admin's API token or OAuth token",
            role=EXPORT_ROLE,
        ) from exc


def stalled(batch: Batch, cursor: str, field: str, detail: str) -> str:
    """Report that ``batch.kind``'s export stopped advancing at ``cursor`` (``field`` did not
    move on); return the cursor to keep.

    A read problem (in every report) and a warning in the log; the returned cursor makes the
    next run read the kind in full, which moves the export's starting point past the stall.
    """
    message = (
        f"the incremental export stopped advancing at {cursor} ({detail}, end_of_stream false); "
        "the next run reads every record of this kind instead"
    )
    log.warning("zendesk.read.export_stalled", kind=str(batch.kind), cursor=cursor[:60])
    batch.problems.append(RecordProblem(System.ZENDESK, batch.kind, STALLED, field, message))
    return FULL_READ


def start_cursor(moment: datetime) -> str:
    """The cursor that exports everything changed from ``moment`` on."""
    return f"start:{int(moment.timestamp())}"


def read_all(http: ZendeskHttp, kind: Kind, batch: Batch, cursor: str) -> Pages:
    """Every record of ``kind`` through cursor pagination; returns ``cursor`` (taken before
    the read began, so the next run exports what changed during it)."""
    url: str | None = _PATHS[kind]
    params: dict[str, str | int] | None = {"page[size]": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        if url is None:
            return cursor
        body = http.get(url, params).body
        for raw in items(body, _KEYS[kind]):
            batch.add(raw)
        yield batch.take()
        meta = structure(member(body, "meta") or {}, CursorMeta)
        links = structure(member(body, "links") or {}, CursorLinks)
        if not meta.has_more:
            return cursor
        if links.next:
            url, params = links.next, None
        elif meta.after_cursor:
            params = {"page[size]": PAGE_SIZE, "page[after]": meta.after_cursor}
        else:
            return cursor
    return cursor


def read_users_since(
    http: ZendeskHttp, cursor: str, batch: Batch, now: Callable[[], datetime]
) -> Pages:
    """Users changed since ``cursor`` (cursor-based export); returns the next cursor."""
    params: dict[str, str | int]
    if cursor.startswith("cursor:"):
        params = {"cursor": cursor.removeprefix("cursor:")}
    else:
        params = {"start_time": _start_time(cursor, now)}
    next_cursor = cursor
    for _ in range(MAX_PAGES):
        body = export(http, "/api/v2/incremental/users/cursor.json", params)
        for raw in items(body, "users"):
            batch.add(raw)
        yield batch.take()
        page = structure(body, IncrementalUsersPage)
        if page.end_of_stream:
            return f"cursor:{page.after_cursor}" if page.after_cursor else next_cursor
        if not page.after_cursor or page.after_cursor == params.get("cursor"):
            # More to come, but no way on: following would ask for the same page for ever.
            return stalled(batch, next_cursor, "after_cursor", "after_cursor did not move")
        next_cursor = f"cursor:{page.after_cursor}"
        params = {"cursor": page.after_cursor}
    return next_cursor


def read_organizations_since(
    http: ZendeskHttp, cursor: str, batch: Batch, now: Callable[[], datetime]
) -> Pages:
    """Organizations changed since ``cursor`` (time-based export); returns the next cursor."""
    start = _start_time(cursor, now)
    next_cursor = f"start:{start}"
    for _ in range(MAX_PAGES):
        body = export(http, "/api/v2/incremental/organizations.json", {"start_time": start})
        for raw in items(body, "organizations"):
            batch.add(raw)
        yield batch.take()
        page = structure(body, IncrementalTimePage)
        if page.end_of_stream:
            return next_cursor if page.end_time is None else f"start:{page.end_time}"
        if page.end_time is None or page.end_time <= start:
            # More to come, but the next page would start where this one did: the export is
            # stuck, and a silent stop here would stop at the same place every run.
            return stalled(
                batch, next_cursor, "end_time", f"end_time {page.end_time} not past {start}"
            )
        start = page.end_time
        next_cursor = f"start:{start}"
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
