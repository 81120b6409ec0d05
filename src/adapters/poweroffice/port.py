"""``PowerOfficePort``: talkcore's ``SystemPort`` for PowerOffice Go v2.

Reads page through ``PageNumber``/``PageSize`` and, given a cursor, ask only for records changed
since it (``lastChangedDateTimeOffsetGreaterThan``) minus an overlap window: the filter is
exclusive and reads come from a replica about a second behind writes, so a small re-read is the
price of never missing a change. Duplicates are folded by id.

Writes PATCH only the properties that change (RFC 6902), POST creates carrying the origin key
(customers ``ExternalImportReference``, contact persons ``ExternalCode``), and DELETE deletes.
Each result holds the record as PowerOffice stored it: from the response, or re-read where
the response is empty (departments).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx
import structlog

from adapters import http
from adapters.poweroffice.auth import PowerOfficeCredentials
from adapters.poweroffice.errors import (
    PowerOfficeAccessDenied,
    PowerOfficeInDoubt,
    PowerOfficeRequestRejected,
    PowerOfficeUnavailable,
)
from adapters.poweroffice.limiter import Limiter, shared_limiter
from adapters.poweroffice.mapping import (
    DTO_OF,
    ORIGIN_FIELD,
    ORIGIN_MAX_LENGTH,
    UnwritableField,
    json_patch,
    origin_key_of,
    to_record,
    wire_fields,
)
from adapters.poweroffice.problems import describe, parse_problem, write_error
from adapters.poweroffice.transport import PowerOfficeClient
from adapters.poweroffice.wire import raw_id, structure_or_problems
from talkcore.ports import NO_HOOKS, ApplyHooks, WriteError, WriteOp, WriteRequest, WriteResult
from talkcore.records import (
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordProblem,
    System,
    collect_read,
)

log = structlog.get_logger()

PRODUCTION_BASE_URL = "https://goapi.poweroffice.net/v2"
PRODUCTION_TOKEN_URL = "https://goapi.poweroffice.net/OAuth/Token"  # noqa: S105 - a URL
DEMO_BASE_URL = "https://goapi.poweroffice.net/Demo/v2"
DEMO_TOKEN_URL = "https://goapi.poweroffice.net/Demo/OAuth/Token"  # noqa: S105 - a URL

DEFAULT_PAGE_SIZE = 20000
"""The largest page the API serves: ``ResourceParameters.MaxPageSize`` in the OpenAPI document
("The maximum amount of objects that can be return in a Page (20 000 by default)"); PageSize
"Not allowed to be larger than MaxPageSize". Its own default (5000) would cost four calls where
one does (issue 13: the request floor). A page of 20000 customers is a few tens of megabytes
of JSON held at once, which a sync holding the records in its mirror pays anyway."""

COLLECTION: Mapping[Kind, str] = {
    Kind.CUSTOMER: "/Customers",
    Kind.CONTACT_PERSON: "/ContactPersons",
    Kind.DEPARTMENT: "/Departments",
    Kind.SUPPLIER: "/Suppliers",
}
WRITABLE = frozenset({Kind.CUSTOMER, Kind.CONTACT_PERSON, Kind.DEPARTMENT})
_MAX_PAGES = 10_000

ORIGIN_FILTER: Mapping[Kind, str] = {
    Kind.CUSTOMER: "externalImportReference",
    Kind.CONTACT_PERSON: "externalCodes",
}
"""The list filter that finds records by origin key; only ``externalCodes`` takes a list."""

MAX_URL_LENGTH = 1900
"""The longest look-up URL sent, counted on the whole encoded URL.

Public clients report that PowerOffice answers URLs over about 2,000 characters with a 404;
100 characters of margin cover the "about". A look-up of many keys is split to stay under it
(see ``docs/poweroffice.md``)."""


class _ListNotFound(PowerOfficeRequestRejected):
    """A list answered 404: for a look-up, a URL too long or no record matching the filter."""


def cursor_name(kind: Kind) -> str:
    """The key of ``kind``'s cursor in ``ReadResult.cursors``."""
    return f"{System.POWEROFFICE}:{kind}"


def make_client(timeout: httpx.Timeout | None = None) -> httpx.Client:
    """An ``httpx.Client`` fit for PowerOffice (for the CLI's wiring): see ``adapters.http``."""
    from adapters.poweroffice.transport import DEFAULT_TIMEOUT

    return http.make_client(timeout or DEFAULT_TIMEOUT)


class PowerOfficePort:
    """PowerOffice Go v2 behind talkcore's ``SystemPort`` (see the module docstring).

    ``client`` is injected (tests pass a mock or WSGI transport; production uses
    :func:`make_client`). ``sleep`` and ``now`` are injectable so waiting and token expiry
    can be tested without waiting. The rate limit is shared by every port of the process with
    the same subscription key, unless a ``limiter`` is given (tests, with a fake clock).
    """

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        token_url: str,
        creds: PowerOfficeCredentials,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = http.utc_now,
        requests_per_second: float = 10.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        overlap: timedelta = timedelta(seconds=5),
        replica_lag: float = 1.5,
        limiter: Limiter | None = None,
        max_url_length: int = MAX_URL_LENGTH,
    ) -> None:
        self.base_url = base_url
        self._api = PowerOfficeClient(
            http=client,
            base_url=base_url,
            token_url=token_url,
            credentials=creds,
            limiter=limiter or shared_limiter(creds.limiter_id(), requests_per_second),
            sleep=sleep,
            now=now,
        )
        self._sleep = sleep
        self._now = now
        self._page_size = page_size
        self._overlap = overlap
        self._replica_lag = replica_lag
        self._max_url_length = max_url_length

    def __repr__(self) -> str:
        return f"PowerOfficePort(base_url={self.base_url!r})"

    @property
    def system(self) -> System:
        """Always ``System.POWEROFFICE``."""
        return System.POWEROFFICE

    # -- check --------------------------------------------------------------------------

    def check(self) -> str:
        """Fetch a token and make one cheap call; a line saying what worked, or a typed error."""
        self._api.invalidate_token()
        self._api.token()
        reply = self._api.call("GET", "/Customers", params={"PageSize": 1})
        if not reply.ok:
            raise PowerOfficeRequestRejected(describe(parse_problem(reply), reply.status))
        return f"PowerOffice Go at {self.base_url}: token issued, customers readable"

    # -- read ---------------------------------------------------------------------------

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        """Read ``kinds``: everything when ``cursors`` is ``None``, else changes since them.

        A kind without a cursor (or with an unreadable one) is read whole. Records that cannot
        be read go to ``problems``; a full read with problems is not reported ``full``, since a
        record missing from it would otherwise look deleted.
        """
        return collect_read(self.read_pages(kinds, cursors))

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        """``read``, one API page of records at a time (``page_size`` a page)."""
        unknown = kinds - DTO_OF.keys()
        if unknown:
            raise ValueError(f"PowerOffice holds no {', '.join(sorted(unknown))}")
        problems: list[RecordProblem] = []
        new_cursors: dict[str, str] = {}
        for kind in sorted(kinds):
            name = cursor_name(kind)
            since, settled = _parse_cursor(cursors.get(name)) if cursors else (None, False)
            started = self._now()
            params: dict[str, str | int] = {}
            if since is not None:
                # The overlap covers writes still reaching the read replica; once the newest
                # change is long past, nothing more can arrive at or before it.
                start = since if settled else since - self._overlap
                params["lastChangedDateTimeOffsetGreaterThan"] = start.isoformat()
            latest = since
            count = 0
            for items in self._pages(COLLECTION[kind], params):
                parsed = (self._parse(kind, item, problems) for item in items)
                page = [record for record in parsed if record is not None]
                for record in page:
                    if record.modified is not None and (latest is None or record.modified > latest):
                        latest = record.modified
                count += len(page)
                yield page
            if latest is not None:
                done = latest < started - SETTLE_AFTER
                new_cursors[name] = latest.astimezone(UTC).isoformat() + (SETTLED if done else "")
            log.info("poweroffice.read", kind=str(kind), records=count, since=str(since))
        return ReadResult(
            System.POWEROFFICE,
            kinds,
            (),
            full=cursors is None and not problems,
            cursors=new_cursors,
            problems=tuple(problems),
        )

    def _parse(self, kind: Kind, item: Any, problems: list[RecordProblem]) -> Record | None:
        parsed = structure_or_problems(item, DTO_OF[kind])
        if isinstance(parsed, list):
            rid = raw_id(item) or "(no usable Id)"
            for problem in parsed:
                problems.append(
                    RecordProblem(System.POWEROFFICE, kind, rid, problem.field, problem.message)
                )
            return None
        return to_record(kind, parsed)

    def _pages(self, path: str, params: Mapping[str, str | int]) -> Iterator[list[Any]]:
        """Every page of a paged collection; stops on 204, a short page or no next link."""
        first_ids: set[str] = set()
        for page in range(1, _MAX_PAGES + 1):
            query = {**params, "PageNumber": page, "PageSize": self._page_size}
            reply = self._api.call("GET", path, params=query)
            if not reply.ok:
                error = _ListNotFound if reply.status == 404 else PowerOfficeRequestRejected
                raise error(f"GET {path}: {describe(parse_problem(reply), reply.status)}")
            if reply.status == 204 or reply.body is None:
                return
            if not isinstance(reply.body, list):
                raise PowerOfficeUnavailable(f"GET {path} answered something other than a list")
            first = raw_id(reply.body[0]) if reply.body else None
            if first is not None and first in first_ids:
                # A server that ignores PageNumber would otherwise page forever.
                log.warning("poweroffice.paging_stuck", path=path, page=page)
                return
            if first is not None:
                first_ids.add(first)
            yield reply.body
            if len(reply.body) < self._page_size or not _has_next_page(reply.headers):
                return
        raise PowerOfficeUnavailable(f"GET {path}: more than {_MAX_PAGES} pages")

    # -- find ---------------------------------------------------------------------------

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        """Records of ``kind`` carrying any of ``origin_keys`` in their origin field.

        Customers are looked up by ``externalImportReference`` (one key a call), contact persons
        by ``externalCodes`` (as many keys a call as keep the URL within ``max_url_length``).
        Departments have no origin field in the API, so none is found. A look-up answered 404
        is split and asked again; a single key answered 404 is not found (and logged), never
        the end of the run.
        """
        if kind not in ORIGIN_FIELD or not origin_keys:
            return {}
        wanted = {key.casefold(): key for key in origin_keys}
        found: dict[str, Record] = {}
        for batch in self._origin_batches(kind, list(wanted.values())):
            for item in self._look_up(kind, batch):
                parsed = structure_or_problems(item, DTO_OF[kind])
                if isinstance(parsed, list):
                    continue
                key = origin_key_of(kind, parsed)
                if key is not None and key.casefold() in wanted:
                    found[wanted[key.casefold()]] = to_record(kind, parsed)
        return found

    def _origin_batches(self, kind: Kind, keys: Sequence[str]) -> list[list[str]]:
        """``keys`` in look-ups whose URLs stay within ``max_url_length`` (greedy, in order).

        A key holding a comma goes alone: the API splits ``externalCodes`` on commas.
        """
        if kind is not Kind.CONTACT_PERSON:
            return [[key] for key in keys]
        batches: list[list[str]] = []
        current: list[str] = []
        for key in keys:
            if "," in key:
                batches.append([key])
                continue
            if current and self._look_up_url_length(kind, [*current, key]) > self._max_url_length:
                batches.append(current)
                current = []
            current.append(key)
        if current:
            batches.append(current)
        return batches

    def _look_up_url_length(self, kind: Kind, keys: Sequence[str]) -> int:
        """The length of the longest URL a look-up of ``keys`` can send (any page number)."""
        query: dict[str, str | int] = {
            ORIGIN_FILTER[kind]: ",".join(keys),
            "PageNumber": _MAX_PAGES,
            "PageSize": self._page_size,
        }
        return len(str(self._api.url(COLLECTION[kind], query)))

    def _look_up(self, kind: Kind, keys: Sequence[str]) -> list[Any]:
        """The items a look-up of ``keys`` lists; on a 404, the halves asked apart.

        A 404 there is either the URL-length limit, whose exact value is only reported, or a
        filter matching nothing: halving settles the first, a single key left means the second.
        """
        path = COLLECTION[kind]
        try:
            pages = self._pages(path, {ORIGIN_FILTER[kind]: ",".join(keys)})
            return [item for page in pages for item in page]
        except _ListNotFound as exc:
            if len(keys) > 1:
                half = len(keys) // 2
                log.warning(
                    "poweroffice.lookup_split", kind=str(kind), keys=len(keys), reason=str(exc)
                )
                return [*self._look_up(kind, keys[:half]), *self._look_up(kind, keys[half:])]
            log.warning(
                "poweroffice.lookup_not_found", kind=str(kind), key=keys[0], reason=str(exc)
            )
            return []

    # -- apply --------------------------------------------------------------------------

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """Apply each write in turn (the API has no bulk calls); one result per write.

        Progress is reported per write, and once ``hooks`` asks to stop no further write is
        sent (the one in flight has finished: calls are made one at a time). A missing access
        role fails the write with an explanation; an unreachable or failing PowerOffice raises
        ``SystemUnavailable``.
        """
        results = []
        for write in writes:
            if hooks.should_stop():
                break
            try:
                results.append(self._apply_one(write))
            except PowerOfficeAccessDenied as exc:
                results.append(_fail(write, "access_denied", str(exc)))
            hooks.settled(1)
        return results

    def _apply_one(self, write: WriteRequest) -> WriteResult:
        if write.kind not in WRITABLE:
            return _fail(write, "unsupported", f"PowerOffice {write.kind} records are not written")
        try:
            if write.op is WriteOp.CREATE:
                return self._create(write)
            if write.op is WriteOp.UPDATE:
                return self._update(write)
            return self._delete(write)
        except UnwritableField as exc:
            return _fail(write, "unwritable", exc.message, exc.field)

    def _item_path(self, write: WriteRequest) -> str | WriteResult:
        if write.id is None:
            return _fail(write, "missing_id", f"a {write.op} needs the record's id")
        if write.kind is Kind.CONTACT_PERSON:
            party = write.current.get("partyId")
            if not party:
                return _fail(
                    write,
                    "missing_parent",
                    "a contact person is addressed under its customer: needs current['partyId']",
                    "partyId",
                )
            return f"/ContactPersons/{party}/{write.id}"
        return f"{COLLECTION[write.kind]}/{write.id}"

    def _update(self, write: WriteRequest) -> WriteResult:
        path = self._item_path(write)
        if isinstance(path, WriteResult):
            return path
        wire = wire_fields(write.kind, write.fields)
        if not wire:
            return self._reread(write, path, {})
        reply = self._api.call(
            "PATCH", path, json_body=json_patch(wire), content_type="application/json-patch+json"
        )
        if not reply.ok:
            return WriteResult(
                write.item_id, error=write_error(write.kind, reply, _label(write), wire)
            )
        if reply.body is not None:
            return self._stored(write, reply.body)
        return self._reread(write, path, write.fields)

    def _create(self, write: WriteRequest) -> WriteResult:
        fields = dict(write.fields)
        path = COLLECTION[write.kind]
        if write.kind is Kind.CONTACT_PERSON:
            party = fields.pop("partyId", None) or write.current.get("partyId")
            if not party:
                return _fail(write, "missing_parent", "a contact person needs a partyId", "partyId")
            path = f"/ContactPersons/{party}"
        body = wire_fields(write.kind, fields)
        origin_field = ORIGIN_FIELD.get(write.kind)
        if write.origin_key and origin_field:
            if len(write.origin_key) > ORIGIN_MAX_LENGTH:
                return _fail(
                    write,
                    "origin_key_too_long",
                    f"origin key exceeds the {ORIGIN_MAX_LENGTH} characters {origin_field} holds",
                )
            body[origin_field] = write.origin_key
        if write.kind is Kind.CONTACT_PERSON:
            # Both are required members of ContactPersonPostDto (null allowed).
            body.setdefault("FirstName", None)
            body.setdefault("LastName", None)
        if write.kind is Kind.DEPARTMENT:
            body.setdefault("IsActive", True)  # the API defaults new departments to inactive
        try:
            reply = self._api.call("POST", path, json_body=body)
        except PowerOfficeInDoubt as exc:
            return self._reconcile(write, str(exc))
        if not reply.ok:
            return WriteResult(
                write.item_id, error=write_error(write.kind, reply, _label(write), body)
            )
        if reply.body is None:
            return self._reconcile(write, "POST answered without the created record")
        return self._stored(write, reply.body)

    def _reconcile(self, write: WriteRequest, why: str) -> WriteResult:
        """After a POST of unknown outcome: find the record by origin key instead of re-sending."""
        if write.origin_key and write.kind in ORIGIN_FIELD:
            self._sleep(self._replica_lag)  # reads lag writes; give the create time to show
            found = self.find_by_origin(write.kind, [write.origin_key]).get(write.origin_key)
            if found is not None:
                log.info("poweroffice.create_reconciled", kind=str(write.kind), id=found.id)
                return WriteResult(write.item_id, found)
            return _fail(
                write,
                "not_created",
                f"{why}; no record carries the origin key, so it was not created",
                retryable=True,
            )
        return _fail(write, "outcome_unknown", f"{why}; without an origin key it cannot be checked")

    def _delete(self, write: WriteRequest) -> WriteResult:
        path = self._item_path(write)
        if isinstance(path, WriteResult):
            return path
        reply = self._api.call("DELETE", path)
        if reply.ok or reply.status == 404:
            return WriteResult(write.item_id)  # 404: already gone, which is what was asked
        if reply.status == 409:
            error = write_error(write.kind, reply, _label(write), code="in_use")
            message = (
                f"PowerOffice will not delete this {write.kind}: it is in use (for example by "
                f"transactions or as an active supplier); archive or deactivate it instead. "
                f"{error.message}"
            )
            return WriteResult(write.item_id, error=attrs.evolve(error, message=message))
        return WriteResult(write.item_id, error=write_error(write.kind, reply, _label(write)))

    def _stored(self, write: WriteRequest, body: Any) -> WriteResult:
        problems: list[RecordProblem] = []
        record = self._parse(write.kind, body, problems)
        if record is None:
            detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
            return _fail(
                write, "unreadable_response", f"the stored record could not be read: {detail}"
            )
        return WriteResult(write.item_id, record)

    def _reread(
        self, write: WriteRequest, path: str, written: Mapping[str, str | None]
    ) -> WriteResult:
        """Read back a record whose write answered with no body (departments)."""
        record: Record | None = None
        for attempt in range(2):
            reply = self._api.call("GET", path)
            if not reply.ok or reply.body is None:
                break
            result = self._stored(write, reply.body)
            record = result.record
            if record is None or all(record.get(k) == v for k, v in written.items()):
                return result
            if attempt == 0:
                self._sleep(self._replica_lag)  # the replica may not have the write yet
        if record is None:
            return WriteResult(write.item_id)  # applied; the engine trusts what was written
        # Still stale after waiting: the write succeeded, so report what was written.
        return WriteResult(write.item_id, attrs.evolve(record, fields={**record.fields, **written}))


def _label(write: WriteRequest) -> str:
    return f"poweroffice {write.kind} {write.id or write.origin_key or ''}".strip()


def _fail(
    write: WriteRequest,
    code: str,
    message: str,
    field: str | None = None,
    *,
    retryable: bool = False,
) -> WriteResult:
    return WriteResult(
        write.item_id, error=WriteError(code, message, _label(write), field, retryable)
    )


SETTLED = "|settled"
"""Cursor suffix: every change up to the cursor's time is visible, so no overlap is needed."""
SETTLE_AFTER = timedelta(minutes=1)
"""How long past a change must be before no write can still appear at or before it."""


def _parse_cursor(value: str | None) -> tuple[datetime | None, bool]:
    """The cursor's time and whether it is settled."""
    if not value:
        return None, False
    settled = value.endswith(SETTLED)
    text = value.removesuffix(SETTLED)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        log.warning("poweroffice.bad_cursor", cursor=value)
        return None, False
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), settled


def _has_next_page(headers: Mapping[str, str]) -> bool:
    """False only when an ``X-Pagination`` header is present and names no next page."""
    raw = headers.get("X-Pagination")
    if raw is None:
        return True
    try:
        info = json.loads(raw)
    except ValueError:
        return True
    if not isinstance(info, dict):
        return True
    folded = {str(k).casefold(): v for k, v in info.items()}
    return "nextpagelink" not in folded or bool(folded["nextpagelink"])
