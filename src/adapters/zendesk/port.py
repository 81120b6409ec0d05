"""``ZendeskPort``: Zendesk Support behind talkcore's ``SystemPort``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import httpx
import structlog

from adapters import http
from adapters.zendesk.auth import ZendeskAuth
from adapters.zendesk.errors import (
    ZendeskAccessDenied,
    ZendeskUnauthorized,
    ZendeskUnavailable,
)
from adapters.zendesk.limiter import EXPORT_RATE_LIMIT, RateLimiter
from adapters.zendesk.reading import (
    EXPORT_ROLE,
    FULL_READ,
    Batch,
    Pages,
    export,
    read_all,
    read_organizations_since,
    read_users_since,
    start_cursor,
)
from adapters.zendesk.transport import RetryPolicy, ZendeskHttp
from adapters.zendesk.wire import UserDTO, WireError, member, structure
from adapters.zendesk.writing import ZendeskWriter
from talkcore.ports import NO_HOOKS, ApplyHooks, WriteRequest, WriteResult
from talkcore.records import Kind, ReadPages, ReadResult, Record, System, collect_read

log = structlog.get_logger()

KINDS = frozenset({Kind.USER, Kind.ORGANIZATION})


def cursor_name(kind: Kind) -> str:
    """The key of ``kind``'s cursor in ``ReadResult.cursors``."""
    return f"{System.ZENDESK}:{kind}"


class ZendeskPort:
    """Reads and writes Zendesk users and organizations through an injected ``httpx.Client``.

    ``base_url`` is ``https://{subdomain}.zendesk.com`` (or a stand-in); ``sleep`` and ``now``
    are injectable so that rate limits, retries and job polling can be tested without waiting.
    ``rate_limit_per_minute`` is the account's budget (corrected by Zendesk's headers);
    ``export_rate_limit_per_minute`` the incremental exports' own, within it.
    ``remove_old_emails`` deletes the address an e-mail change replaced (by default it stays on
    the user as a secondary address, so mail from it still reaches the same person).
    """

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        auth: ZendeskAuth,
        *,
        rate_limit_per_minute: int = 200,
        export_rate_limit_per_minute: int = EXPORT_RATE_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = http.utc_now,
        retry: RetryPolicy | None = None,
        remove_old_emails: bool = False,
    ) -> None:
        self._now = now
        limiter = RateLimiter(rate_limit_per_minute, sleep=sleep, now=now)
        exports = RateLimiter(export_rate_limit_per_minute, sleep=sleep, now=now, budget="export")
        self.http = ZendeskHttp(
            client,
            base_url,
            auth,
            limiter=limiter,
            sleep=sleep,
            retry=retry,
            export_limiter=exports,
        )
        self._writer = ZendeskWriter(self.http, sleep=sleep, remove_old_emails=remove_old_emails)

    def __repr__(self) -> str:
        return f"ZendeskPort({self.http.base_url!r})"

    @property
    def system(self) -> System:
        """Always ``System.ZENDESK``."""
        return System.ZENDESK

    @property
    def bulk_users_enabled(self) -> bool:
        """False once the account refused a bulk user call in this run."""
        return self._writer.bulk_users

    def check(self) -> str:
        """Who we are connected as, and that this user may read the incremental exports.

        One cheap call for an admin. The exports are documented as admin-only, so another role
        fails with ``ZendeskAccessDenied`` naming the admin role, unless one probe of the
        organization export shows the account lets this role export after all (the role is
        what the docs say; the probe is what the account does).
        Raises ``ZendeskUnauthorized``/``ZendeskForbidden``/``ZendeskUnavailable``.
        """
        body = self.http.get("/api/v2/users/me.json").body
        raw = member(body, "user")
        if not isinstance(raw, Mapping) or raw.get("id") is None:
            # Zendesk answers /users/me for unauthenticated callers with an anonymous user.
            raise ZendeskUnauthorized(
                f"Zendesk at {self.http.host} did not accept the credentials (anonymous user)",
                status=200,
                code="anonymous",
            )
        try:
            user = structure(raw, UserDTO)
        except WireError as exc:
            raise ZendeskUnavailable(f"Zendesk at {self.http.host}: {exc}") from exc
        who = f"Zendesk Support at {self.http.host}: signed in as user {user.id} ({user.role})"
        if user.role == EXPORT_ROLE:
            return who
        try:
            self._probe_export()
        except ZendeskAccessDenied as exc:
            raise ZendeskAccessDenied(
                f"{who}, but the incremental exports (how every run after the first reads "
                f"changes) need the {EXPORT_ROLE!r} role and Zendesk refused them to role "
                f"{user.role!r}: use an admin's API token or OAuth token",
                role=EXPORT_ROLE,
            ) from exc
        return f"{who}; the incremental exports answer this role too"

    def _probe_export(self) -> None:
        # A start a few minutes back keeps the page small; one request of the export budget.
        start = int((self._now() - timedelta(minutes=5)).timestamp())
        export(self.http, "/api/v2/incremental/organizations.json", {"start_time": start})

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        """Users and organizations: all of them, or what changed since ``cursors``.

        A kind without a cursor in ``cursors`` (or whose cursor is ``full``, left by an export
        that stalled) is read in full; the result is marked full only when no kind was read
        incrementally.
        """
        return collect_read(self.read_pages(kinds, cursors))

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        """``read``, one API page of records at a time."""
        wanted = frozenset(kinds) & KINDS
        problems = []
        new_cursors: dict[str, str] = {}
        full = True
        for kind in sorted(wanted):
            name = cursor_name(kind)
            batch = Batch(kind)
            since = None if cursors is None else cursors.get(name)
            if since == FULL_READ:
                since = None  # an export stalled last time: read in full, then go on from here
            pages: Pages
            if since is None:
                pages = read_all(self.http, kind, batch, start_cursor(self._now()))
            elif kind is Kind.USER:
                full = False
                pages = read_users_since(self.http, since, batch, self._now)
            else:
                full = False
                pages = read_organizations_since(self.http, since, batch, self._now)
            new_cursors[name] = yield from pages
            log.info(
                "zendesk.read", kind=str(kind), incremental=since is not None, records=batch.taken
            )
            problems.extend(batch.problems)
        # A full read that could not parse a record is not complete: that record's absence
        # must not be taken for a delete.
        full = full and not problems
        return ReadResult(System.ZENDESK, wanted, (), full, new_cursors, tuple(problems))

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """Apply ``writes`` in the order given; one result per write sent, in order.

        Progress is told per bulk call (or single call); a stop asked through ``hooks`` is
        honoured between calls and while waiting on bulk jobs (see ``ZendeskWriter``).
        """
        return self._writer.apply(writes, hooks)

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        """The records of ``kind`` whose ``external_id`` is one of ``origin_keys``."""
        if kind not in KINDS:
            return {}
        return self._writer.find_by_origin(kind, origin_keys)
