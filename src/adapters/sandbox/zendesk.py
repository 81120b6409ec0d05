"""A local stand-in for the Zendesk Support API (users, identities, organizations, bulk jobs,
incremental exports), written from Zendesk's documentation and recorded traffic, independently
of the real adapter.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

import attrs

from adapters.sandbox.base import SandboxApp
from adapters.sandbox.faults import Controller
from adapters.sandbox.wsgi import Match, Request, Response, Router

_EMAIL = re.compile(r"^[^@\s;,<>]+@[^@\s;,<>]+\.[^@\s;,<>.]+$")
_ROLES = ("end-user", "agent", "admin")
MAX_PAGE_SIZE = 100
MAX_BULK = 100
MAX_QUEUED_JOBS = 30
EXPORT_PAGE_SIZE = 1000
EXPORT_RATE_LIMIT = 10
"""Incremental export requests a minute per account, as documented for both exports."""
_EXPORTS = "/api/v2/incremental/"
# Zendesk's answer to a caller whose role may not use an endpoint (as for a bulk import that
# the account has not enabled).
_NO_ACCESS = {
    "error": "Forbidden",
    "description": "You do not have access to this page. Please contact the account owner of "
    "this help desk for further help.",
}

# Writable user properties and their defaults (the rest of a user is read-only here).
_USER_DEFAULTS: dict[str, Any] = {
    "name": None,
    "email": None,
    "time_zone": "Europe/Oslo",
    "iana_time_zone": "Europe/Oslo",
    "phone": None,
    "shared_phone_number": None,
    "photo": None,
    "locale_id": 1,
    "locale": "en-US",
    "organization_id": None,
    "role": "end-user",
    "verified": False,
    "external_id": None,
    "tags": [],
    "alias": None,
    "active": True,
    "shared": False,
    "shared_agent": False,
    "last_login_at": None,
    "two_factor_auth_enabled": False,
    "signature": None,
    "details": None,
    "notes": None,
    "role_type": None,
    "custom_role_id": None,
    "moderator": False,
    "ticket_restriction": "requested",
    "only_private_comments": False,
    "restricted_agent": True,
    "suspended": False,
    "default_group_id": None,
    "report_csv": False,
    "user_fields": {},
}
USER_WRITABLE = frozenset(
    {
        "name",
        "email",
        "phone",
        "organization_id",
        "role",
        "verified",
        "external_id",
        "tags",
        "alias",
        "signature",
        "details",
        "notes",
        "time_zone",
        "locale",
        "suspended",
        "user_fields",
        "moderator",
        "ticket_restriction",
        "only_private_comments",
        "default_group_id",
        "custom_role_id",
    }
)
_ORG_DEFAULTS: dict[str, Any] = {
    "name": None,
    "shared_tickets": False,
    "shared_comments": False,
    "external_id": None,
    "domain_names": [],
    "details": None,
    "notes": None,
    "group_id": None,
    "tags": [],
    "organization_fields": {},
}
ORGANIZATION_WRITABLE = frozenset(_ORG_DEFAULTS)


# Zendesk's key order for an organization: created/updated sit between external_id and
# domain_names.
_ORG_LAYOUT = (
    "url", "id", "name", "shared_tickets", "shared_comments", "external_id", "created_at",
    "updated_at", "domain_names", "details", "notes", "group_id", "tags", "organization_fields",
)  # fmt: skip


@attrs.frozen
class ZendeskCredentials:
    """An agent's e-mail with an API token, and an OAuth access token (secrets hidden in reprs)."""

    email: str
    api_token: str = attrs.field(repr=False)
    oauth_token: str = attrs.field(repr=False)

    @classmethod
    def generate(cls, email: str = "admin@sandbox.example") -> ZendeskCredentials:
        """Fresh random tokens for the given agent e-mail."""
        return cls(email, secrets.token_hex(20), secrets.token_hex(32))


class _Invalid(Exception):
    """A 422 RecordInvalid with per-field details."""

    def __init__(self, field: str, error: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.error = error
        self.description = description

    def body(self) -> dict[str, Any]:
        return {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {self.field: [{"description": self.description, "error": self.error}]},
        }


@attrs.define
class _Job:
    id: str
    kind: str  # "users" or "organizations"
    action: str  # "create", "update", "create_or_update", "delete"
    items: list[dict[str, Any]]
    submitted: float
    polls: int = 0
    results: list[dict[str, Any]] | None = None
    completed_at: float | None = None


@attrs.frozen
class _Unique:
    """A field no two live records of a resource may share: how values compare, and the
    description of the 422 a taken value gets (``{value}`` is the value asked for)."""

    field: str
    key: Callable[[Any], str]
    taken: str


@attrs.define
class _Table:
    """The records of one Zendesk resource (users or organizations) and the bookkeeping both
    share: ids, key order, updated_at stamps, unique-field indexes and rendering (as
    ``_Table`` in the PowerOffice sandbox serves its resources). What only one resource does
    (users' identities, memberships, e-mail and role rules) stays in the sandbox's own code.

    A record is live while stored, unless it carries ``active: false`` (a soft-deleted user):
    only live records hold their unique values.
    """

    singular: str
    plural: str
    defaults: dict[str, Any]
    writable: frozenset[str]
    layout: tuple[str, ...]  # the keys of a stored record, in Zendesk's order
    unique: tuple[_Unique, ...]
    blank_name: tuple[str, str]  # error and description of the 422 for a blank name
    next_id: int
    # The resource's own rules: create from a payload (raising _Invalid), update a record
    # from one (whether anything changed), delete (a user is kept, inactive; an org goes).
    create: Callable[[dict[str, Any]], dict[str, Any]]
    update: Callable[[dict[str, Any], dict[str, Any]], bool]
    remove: Callable[[dict[str, Any]], None]
    lists: tuple[str, ...] = ("tags",)  # list fields, copied in and out: no two records share one
    rows: dict[int, dict[str, Any]] = attrs.Factory(dict)
    updated: dict[int, int] = attrs.Factory(dict)  # updated_at in epoch seconds (for exports)
    index: dict[str, dict[str, int]] = attrs.Factory(dict)  # field -> value key -> live id

    def __attrs_post_init__(self) -> None:
        assert set(self.layout) == {"id", "url", "created_at", "updated_at", *self.defaults}
        self.index = {u.field: {} for u in self.unique}

    def live(self, record_id: int) -> dict[str, Any] | None:
        """The stored record with this id, unless there is none or it is soft-deleted."""
        record = self.rows.get(record_id)
        return record if record is not None and record.get("active", True) else None

    def ordered(self) -> list[dict[str, Any]]:
        """Every stored record, by id."""
        return [record for _, record in sorted(self.rows.items())]

    def writable_fields(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload's writable fields (the rest of a record is read-only)."""
        return {k: v for k, v in payload.items() if k in self.writable}

    def claim(self, fields: dict[str, Any], own_id: int | None) -> None:
        """Raise ``_Invalid`` for a unique value another live record holds (external ids are
        compared, and stored, as strings)."""
        if fields.get("external_id") is not None:
            fields["external_id"] = str(fields["external_id"])
        for unique in self.unique:
            value = fields.get(unique.field)
            holder = None if value is None else self.index[unique.field].get(unique.key(value))
            if holder is not None and holder != own_id:
                description = unique.taken.format(value=value)
                raise _Invalid(unique.field, "DuplicateValue", description)

    def check_name(self, fields: dict[str, Any], *, creating: bool) -> None:
        """A record must have a name, as text: on create, and on any update that sends one."""
        name = fields.get("name")
        if name is not None and not isinstance(name, str):
            raise _Invalid("name", "InvalidValue", f"Name: {name!r} is not text")
        if (creating or "name" in fields) and not (name or "").strip():
            raise _Invalid("name", *self.blank_name)

    def add(self, fields: dict[str, Any], now: float) -> dict[str, Any]:
        """Store a new record of cleaned ``fields`` over the defaults, created ``now``."""
        record_id = self.next_id
        self.next_id += 1
        values = {
            "id": record_id,
            "url": "",
            **self.defaults,
            "created_at": _stamp(now),
            "updated_at": _stamp(now),
            **fields,
        }
        record = {key: values[key] for key in self.layout}
        for name in self.lists:
            record[name] = list(record[name])
        self.rows[record_id] = record
        self.updated[record_id] = int(now)
        self.reindex(record, {})
        return record

    def change(self, record: dict[str, Any], fields: dict[str, Any]) -> bool:
        """Write cleaned ``fields`` into a record; whether any value changed."""
        old = {unique.field: record[unique.field] for unique in self.unique}
        changed = False
        for key, value in fields.items():
            if record.get(key) != value:
                record[key] = value
                changed = True
        if changed:
            self.reindex(record, old)
        return changed

    def reindex(self, record: dict[str, Any], old: dict[str, Any]) -> None:
        """Free the ``old`` unique values this record held; index its own while it is live
        (``reindex(record, record)`` after a delete frees them all)."""
        record_id = int(record["id"])
        live = self.live(record_id) is record
        for unique in self.unique:
            held = self.index[unique.field]
            previous = old.get(unique.field)
            if previous is not None and held.get(unique.key(previous)) == record_id:
                del held[unique.key(previous)]
            if live and record[unique.field] is not None:
                held[unique.key(record[unique.field])] = record_id

    def touch(self, record: dict[str, Any], now: float) -> None:
        """Move updated_at: never backwards, and at least a second on from the previous value."""
        record_id = int(record["id"])
        moment = max(int(now), self.updated.get(record_id, 0) + 1)
        self.updated[record_id] = moment
        record["updated_at"] = _stamp(moment)

    def render(self, record: dict[str, Any], base_url: str) -> dict[str, Any]:
        """The record as the API shows it."""
        out = dict(record)
        out["url"] = f"{base_url}/api/v2/{self.plural}/{record['id']}.json"
        for name in self.lists:
            out[name] = list(record[name])
        return out


def _new_user_table(sandbox: ZendeskSandbox) -> _Table:
    """Users: unique by external_id (their unique e-mail addresses are identities)."""
    return _Table(
        "user",
        "users",
        _USER_DEFAULTS,
        USER_WRITABLE,
        ("id", "url", *_USER_DEFAULTS, "created_at", "updated_at"),
        (_Unique("external_id", _lower, "External: {value} has already been taken"),),
        ("ValueTooShort", "Name:  is too short (minimum one character)"),
        next_id=7_000_000_001,
        create=sandbox._create_user,
        update=sandbox._update_user,
        remove=sandbox._soft_delete,
    )


def _new_org_table(sandbox: ZendeskSandbox) -> _Table:
    """Organizations: unique by name (compared trimmed, case-folded) and by external_id."""
    return _Table(
        "organization",
        "organizations",
        _ORG_DEFAULTS,
        ORGANIZATION_WRITABLE,
        _ORG_LAYOUT,
        (
            _Unique("name", _name_key, "Name: has already been taken"),
            _Unique("external_id", _lower, "External ID: has already been taken"),
        ),
        ("BlankValue", "Name: cannot be blank"),
        next_id=8_000_000_001,
        lists=("tags", "domain_names"),
        create=sandbox._create_org,
        update=sandbox._update_org,
        remove=sandbox._remove_org,
    )


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


def _decode_cursor(cursor: str) -> list[str] | None:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class ZendeskSandbox(SandboxApp):
    """In-memory Zendesk Support: `/api/v2/...` for users, identities, organizations and jobs.

    `app` is the WSGI application. Seed with `add_user`/`add_organization`; read back with
    `dump()`. A user's `organization_id` is their default organization membership; with
    `multiple_organizations=False` a user belongs to one organization at most.
    `rate_limit` (requests per minute) is off when None; `export_rate_limit` is the
    incremental exports' own budget per minute (Zendesk's is `EXPORT_RATE_LIMIT`; off when
    None); `bulk_users_enabled=False` makes the bulk user create endpoints answer 403;
    `writes_forbidden` names the kinds (``users``, ``organizations``) the token's user may not
    change (every write answers 403); jobs complete on the `job_polls`-th poll of their status,
    or once `job_seconds` have passed on `clock`.

    `caller_role` is the role of the user the credentials sign in as: `"admin"`, or `"agent"`,
    whom the incremental exports refuse with 403 as Zendesk does (they are for admins only).
    Setting `stall_organization_export` makes the organization export stop advancing (a fault:
    `end_time` equal to `start_time`, `end_of_stream` false, page after page).
    """

    name = "zendesk"

    def __init__(
        self,
        *,
        credentials: ZendeskCredentials | None = None,
        clock: Callable[[], float] = time.time,
        rate_limit: int | None = None,
        export_rate_limit: int | None = None,
        caller_role: str = "admin",
        bulk_users_enabled: bool = True,
        writes_forbidden: Iterable[str] = (),
        multiple_organizations: bool = True,
        job_polls: int = 2,
        job_seconds: float | None = None,
        controller: Controller | None = None,
        base_url: str = "https://sandbox.zendesk.example",
    ) -> None:
        super().__init__(controller)
        self.credentials = credentials or ZendeskCredentials.generate()
        self.clock = clock
        self.rate_limit = rate_limit
        self.export_rate_limit = export_rate_limit
        if caller_role not in ("agent", "admin"):
            raise ValueError(f"an API token belongs to an agent or an admin, not {caller_role!r}")
        self.stall_organization_export = False
        self.bulk_users_enabled = bulk_users_enabled
        self.writes_forbidden = frozenset(writes_forbidden)
        self.multiple_organizations = multiple_organizations
        self.job_polls = job_polls
        self.job_seconds = job_seconds
        self.base_url = base_url
        self._user_table = _new_user_table(self)
        self._org_table = _new_org_table(self)
        self._tables = {t.singular: t for t in (self._user_table, self._org_table)}
        self.users = self._user_table.rows
        self.organizations = self._org_table.rows
        self.deleted_organizations: dict[int, dict[str, Any]] = {}
        self.identities: dict[int, dict[str, Any]] = {}
        self.memberships: dict[int, dict[str, Any]] = {}
        # (user id, address) of every identity whose creation would have mailed a verification link.
        self.verification_mails: list[tuple[int, str]] = []
        self.jobs: dict[str, _Job] = {}
        # Lookup indexes (kept in step with the records) so large data sets stay fast.
        self._emails: dict[str, int] = {}  # e-mail -> active user id
        self._by_user: dict[int, list[int]] = {}  # user id -> identity ids
        self._member_of: dict[int, list[int]] = {}  # user id -> membership ids
        self._next_identity = 9_000_000_001
        self._next_membership = 6_000_000_001
        self._job_seq = 0
        self._window = (-1, 0)  # (minute, requests counted in it)
        self._export_window = (-1, 0)  # the same for the incremental exports' own budget
        self.router = Router(suffix=".json")
        self._routes()
        # The user the credentials sign in as (an admin unless configured otherwise).
        owner = self._create_user(
            {"name": f"Sandbox {caller_role.title()}", "email": self.credentials.email},
            seeded=True,
        )
        owner["role"] = caller_role
        owner["verified"] = True
        self.admin_id = int(owner["id"])

    # -- seeding and inspection (Python side) -----------------------------------------------------

    def add_user(
        self,
        *,
        name: str,
        email: str | None = None,
        organization_id: int | None = None,
        external_id: str | None = None,
        active: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a user (validated like a create); inactive users are stored soft-deleted."""
        with self._lock:
            user = self._create_user(
                {
                    "name": name,
                    "email": email,
                    "organization_id": organization_id,
                    "external_id": external_id,
                    **fields,
                },
                seeded=True,
            )
            if not active:
                self._soft_delete(user)
            return self._render_user(user, self.base_url)

    def add_organization(
        self, *, name: str, external_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Store an organization (validated like a create)."""
        with self._lock:
            org = self._create_org({"name": name, "external_id": external_id, **fields})
            return self._render_org(org, self.base_url)

    def add_identity(self, user_id: int, email: str) -> dict[str, Any]:
        """Add a (secondary unless it is the first) e-mail identity to a user."""
        with self._lock:
            identity = self._add_identity(self.users[user_id], email, mail=False)
            return self._render_identity(identity)

    def add_membership(self, user_id: int, organization_id: int) -> dict[str, Any]:
        """Add a (non-default, unless it is the first) organization membership to a user."""
        with self._lock:
            user = self.users[user_id]
            return self._render_membership(self._join(user, organization_id, default=False))

    def settle_jobs(self) -> None:
        """Complete every pending job now."""
        with self._lock:
            for job in self.jobs.values():
                if job.results is None:
                    self._complete(job)

    def dump(self) -> dict[str, Any]:
        """Every record, by kind (deleted organizations listed apart)."""
        with self._lock:
            return {
                "users": [self._render_user(u, self.base_url) for u in self._user_table.ordered()],
                "organizations": [
                    self._render_org(o, self.base_url) for o in self._org_table.ordered()
                ],
                "deleted_organizations": [
                    self._render_org(o, self.base_url)
                    for _, o in sorted(self.deleted_organizations.items())
                ],
                "identities": [
                    self._render_identity(i) for _, i in sorted(self.identities.items())
                ],
                "organization_memberships": [
                    self._render_membership(m) for _, m in sorted(self.memberships.items())
                ],
                "jobs": [self._render_job(j, self.base_url) for j in self.jobs.values()],
            }

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.router.add
        p = "/api/v2"
        for table in (self._user_table, self._org_table):
            r, plural = f"{p}/{table.plural}", table.plural
            add("POST", r, partial(self._post, table))
            add("GET", f"{r}/show_many", partial(self._show_many, table))
            add("POST", f"{r}/create_many", self._bulk(plural, "create"))
            add("PUT", f"{r}/update_many", self._bulk(plural, "update"))
            add("DELETE", f"{r}/destroy_many", self._destroy_many(plural))
            add("GET", f"{r}/{{id:int}}", partial(self._get, table))
            add("PUT", f"{r}/{{id:int}}", partial(self._put, table))
            add("DELETE", f"{r}/{{id:int}}", partial(self._delete, table))
            export = partial(
                self._time_export, kind=table.singular, records=table.rows, path=plural
            )
            add("GET", f"{_EXPORTS}{plural}", export)
        add("GET", f"{p}/users", self._list_users)
        add("GET", f"{p}/users/me", self._me)
        add("GET", f"{p}/users/search", self._search_users)
        add("POST", f"{p}/users/create_or_update", self._create_or_update_user)
        add("POST", f"{p}/users/create_or_update_many", self._bulk("users", "create_or_update"))
        add("GET", f"{p}/users/{{id:int}}/identities", self._list_identities)
        add("POST", f"{p}/users/{{id:int}}/identities", self._post_identity)
        add("GET", f"{p}/users/{{id:int}}/identities/{{identity_id:int}}", self._get_identity)
        add("DELETE", f"{p}/users/{{id:int}}/identities/{{identity_id:int}}", self._delete_identity)
        add(
            "PUT",
            f"{p}/users/{{id:int}}/identities/{{identity_id:int}}/make_primary",
            self._make_primary,
        )
        add("GET", f"{p}/users/{{id:int}}/organization_memberships", self._list_user_memberships)
        add("POST", f"{p}/users/{{id:int}}/organization_memberships", self._create_membership)
        add(
            "DELETE",
            f"{p}/users/{{id:int}}/organization_memberships/{{membership_id:int}}",
            self._delete_user_membership,
        )
        add(
            "PUT",
            f"{p}/users/{{id:int}}/organization_memberships/{{membership_id:int}}/make_default",
            self._make_default_membership,
        )
        add("POST", f"{p}/organization_memberships", self._create_membership)
        add("GET", f"{p}/organization_memberships/{{id:int}}", self._get_membership)
        add("DELETE", f"{p}/organization_memberships/{{id:int}}", self._delete_membership)
        add("GET", f"{p}/organizations", self._list_orgs)
        add("GET", f"{p}/organizations/search", self._search_orgs)
        add("GET", f"{p}/job_statuses/show_many", self._show_many_jobs)
        add("GET", f"{p}/job_statuses/{{id:str}}", self._get_job)
        add("GET", f"{p}/incremental/users/cursor", self._export_users_cursor)

    # -- auth, limits, errors ----------------------------------------------------------------------

    def authorise(self, request: Request, match: Match) -> Response | None:
        """API token (basic `{email}/token:{token}`) or OAuth bearer token, then the rate limit."""
        if not self._authenticated(request.headers.get("authorization", "")):
            return Response.json(401, {"error": "Couldn't authenticate you"})
        resource = request.path.removeprefix("/api/v2/").split("/")[0].removesuffix(".json")
        if request.method != "GET" and resource in self.writes_forbidden:
            return _forbidden()
        if self.rate_limit is not None:
            minute, used = self._window_now()
            if used >= self.rate_limit:
                return self._throttled(minute, "API requests")
        if match.route.template.startswith(_EXPORTS):
            return self._authorise_export()
        return None

    def _authorise_export(self) -> Response | None:
        """The exports are for admins only, and have their own per-minute budget."""
        if self.users[self.admin_id]["role"] != "admin":  # the caller's role as it is now
            return _forbidden()
        if self.export_rate_limit is None:
            return None
        minute = int(self.clock() // 60)
        used = self._export_window[1] if self._export_window[0] == minute else 0
        if used >= self.export_rate_limit:
            return self._throttled(minute, "incremental export API requests")
        self._export_window = (minute, used + 1)
        return None

    def _throttled(self, minute: int, what: str) -> Response:
        retry = max(1, math.ceil((minute + 1) * 60 - self.clock()))
        return Response.json(
            429,
            {
                "error": "APIRateLimitExceeded",
                "description": f"Number of allowed {what} per minute exceeded",
            },
            [("Retry-After", str(retry))],
        )

    def _authenticated(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return secrets.compare_digest(value, self.credentials.oauth_token)
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, token = decoded.partition(":")
        expected_user = f"{self.credentials.email}/token"
        return secrets.compare_digest(user.lower(), expected_user.lower()) and (
            secrets.compare_digest(token, self.credentials.api_token)
        )

    def _window_now(self) -> tuple[int, int]:
        minute = int(self.clock() // 60)
        if self._window[0] != minute:
            self._window = (minute, 0)
        return self._window

    def decorate(self, response: Response, request: Request) -> Response:
        """Count the request against the minute's budget and report it in headers."""
        minute, used = self._window_now()
        if response.status not in (401, 429):
            used += 1
            self._window = (minute, used)
        limit = self.rate_limit if self.rate_limit is not None else 700
        remaining = max(0, limit - used)
        reset = max(1, math.ceil((minute + 1) * 60 - self.clock()))
        # The documented names (ratelimit-*), and the two older sets real answers carry.
        return response.with_headers(
            [
                ("ratelimit-limit", str(limit)),
                ("ratelimit-remaining", str(remaining)),
                ("ratelimit-reset", str(reset)),
                ("X-Rate-Limit", str(limit)),
                ("X-Rate-Limit-Remaining", str(remaining)),
                ("rate-limit", str(limit)),
                ("rate-limit-remaining", str(remaining)),
                ("rate-limit-reset", str(reset)),
            ]
        )

    def error(self, status: int, detail: str, request: Request) -> Response:
        """A Zendesk-style error body."""
        names = {
            400: "InvalidValue",
            403: "Forbidden",
            404: "InvalidEndpoint",
            405: "InvalidEndpoint",
            409: "Conflict",
            422: "RecordInvalid",
            429: "APIRateLimitExceeded",
            500: "InternalError",
        }
        return Response.json(status, {"error": names.get(status, "Error"), "description": detail})

    def before_request(self, request: Request) -> None:
        """Complete jobs whose time has come."""
        if self.job_seconds is None:
            return
        for job in self.jobs.values():
            if job.results is None and self.clock() >= job.submitted + self.job_seconds:
                self._complete(job)

    # -- both resources: the generic handlers ----------------------------------------------------

    def _render(self, table: _Table, record: dict[str, Any], base_url: str) -> dict[str, Any]:
        # Through the per-resource methods, which tests may wrap to rewrite what is served.
        if table is self._user_table:
            return self._render_user(record, base_url)
        return self._render_org(record, base_url)

    def _get(self, table: _Table, request: Request, id: str) -> Response:
        record = table.rows.get(int(id))
        if record is None:
            return _not_found()
        return Response.json(200, {table.singular: self._render(table, record, request.base_url)})

    def _show_many(self, table: _Table, request: Request) -> Response:
        ids = request.params("ids")
        externals = request.params("external_ids")
        if len(ids) > MAX_BULK or len(externals) > MAX_BULK:
            return _too_many(table.plural, "shown")
        wanted_ids = {int(i) for i in ids if i.isdigit()}
        wanted_ext = {e.lower() for e in externals}
        found = [
            r
            for r in table.ordered()
            if r["id"] in wanted_ids or (r["external_id"] or "").lower() in wanted_ext
        ]
        items = [self._render(table, r, request.base_url) for r in found]
        return _listing(table.plural, items)

    def _post(self, table: _Table, request: Request) -> Response:
        payload = _object(request.json(), table.singular)
        if payload is None:
            return self.error(400, f'The body must be {{"{table.singular}": {{...}}}}', request)
        try:
            record = table.create(payload)
        except _Invalid as exc:
            return Response.json(422, exc.body())
        self.wrote()
        rendered = self._render(table, record, request.base_url)
        return Response.json(201, {table.singular: rendered}, [("Location", str(rendered["url"]))])

    def _put(self, table: _Table, request: Request, id: str) -> Response:
        record = table.live(int(id))
        if record is None:
            return _not_found()
        payload = _object(request.json(), table.singular)
        if payload is None:
            return self.error(400, f'The body must be {{"{table.singular}": {{...}}}}', request)
        try:
            changed = table.update(record, payload)
        except _Invalid as exc:
            return Response.json(422, exc.body())
        if changed:
            self.wrote()
        return Response.json(200, {table.singular: self._render(table, record, request.base_url)})

    def _delete(self, table: _Table, request: Request, id: str) -> Response:
        record = table.live(int(id))
        if record is None:
            return _not_found()
        table.remove(record)
        self.wrote()
        # Zendesk shows a (soft-)deleted user in its answer; a deleted organization gets none.
        if table is self._org_table:
            return Response.empty(204)
        return Response.json(200, {table.singular: self._render(table, record, request.base_url)})

    def _touch(self, kind: str, record: dict[str, Any]) -> None:
        """Move a ``kind`` ("user", "organization") record's updated_at on (see ``_Table``)."""
        self._tables[kind].touch(record, self.clock())

    # -- users: reads ------------------------------------------------------------------------------

    def _list_users(self, request: Request) -> Response:
        roles = set(request.params("role")) | set(request.params("role[]"))
        users = [
            u
            for u in self._user_table.ordered()
            if u["active"] and (not roles or u["role"] in roles)
        ]
        return self._paged(request, "users", users, self._render_user)

    def _me(self, request: Request) -> Response:
        return Response.json(
            200, {"user": self._render_user(self.users[self.admin_id], request.base_url)}
        )

    def _search_users(self, request: Request) -> Response:
        query = (request.param("query") or "").strip()
        external = request.param("external_id")
        matches: list[dict[str, Any]] = []
        for user in self._user_table.ordered():
            if not user["active"]:
                continue
            if external is not None:
                if (user["external_id"] or "").lower() == external.lower():
                    matches.append(user)
            elif self._user_matches(user, query):
                matches.append(user)
        return _listing("users", [self._render_user(u, request.base_url) for u in matches])

    def _user_matches(self, user: dict[str, Any], query: str) -> bool:
        field, sep, value = query.partition(":")
        if not sep:
            field, value = "", query
        value = value.strip().strip('"').lower()
        if not value:
            return False
        emails = {i["value"] for i in self._identities_of(int(user["id"]))}
        if field in ("email", ""):
            if value in emails:
                return True
            if field == "email":
                return False
        if field in ("external_id", ""):
            if (user["external_id"] or "").lower() == value:
                return True
            if field == "external_id":
                return False
        if field in ("name", ""):
            return value in (user["name"] or "").lower()
        return False

    # -- users: writes -----------------------------------------------------------------------------

    def _create_or_update_user(self, request: Request) -> Response:
        payload = _object(request.json(), "user")
        if payload is None:
            return self.error(400, 'The body must be {"user": {...}}', request)
        try:
            existing = self._match_user(payload)
            user = self._create_user(payload) if existing is None else existing
            changed = existing is None or self._update_user(user, payload)
        except _Invalid as exc:
            return Response.json(422, exc.body())
        if changed:
            self.wrote()
        status = 201 if existing is None else 200
        return Response.json(status, {"user": self._render_user(user, request.base_url)})

    def _match_user(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        external = payload.get("external_id")
        email = payload.get("email")
        if external not in (None, ""):
            by_external = self._user_table.index["external_id"].get(_lower(external))
            if by_external is not None:
                return self.users[by_external]
        if isinstance(email, str) and email.strip():
            owner = self._email_owner(email.strip().lower())
            if owner is not None:
                return self.users[owner]
        return None

    def _create_user(self, payload: dict[str, Any], *, seeded: bool = False) -> dict[str, Any]:
        """Create a user; one created over the API with an e-mail mails it a verification link
        unless the request says ``skip_verify_email`` (Users: Create User)."""
        fields = self._clean_user_fields(payload, None)
        self._user_table.check_name(fields, creating=True)
        email = fields.pop("email", None)
        organization_id = fields.pop("organization_id", None)
        user = self._user_table.add(fields, self.clock())
        if organization_id is not None:
            self._join(user, organization_id, default=True)
        if email:
            mail = not seeded and payload.get("skip_verify_email") is not True
            self._add_identity(user, email, touch=False, mail=mail)
        return user

    def _update_user(self, user: dict[str, Any], payload: dict[str, Any]) -> bool:
        fields = self._clean_user_fields(payload, int(user["id"]))
        self._user_table.check_name(fields, creating=False)
        email = fields.pop("email", None)
        changed = False
        if "organization_id" in fields:
            changed = self._set_organization(user, fields.pop("organization_id"))
        changed = self._user_table.change(user, fields) or changed
        if email and email not in {i["value"] for i in self._identities_of(int(user["id"]))}:
            # A plain PUT of `email` adds a secondary identity; the primary stays (as Zendesk does).
            # Update User documents no way to skip verifying it, so it counts as mailed.
            self._add_identity(user, email, mail=True)
            changed = True
        if changed:
            self._touch("user", user)
        return changed

    def _clean_user_fields(self, payload: dict[str, Any], own_id: int | None) -> dict[str, Any]:
        fields = self._user_table.writable_fields(payload)
        if "name" in fields and isinstance(fields["name"], str):
            fields["name"] = fields["name"].strip()
        if "email" in fields:
            fields["email"] = self._clean_email(fields["email"], own_id, "email")
        self._user_table.claim(fields, own_id)
        if fields.get("organization_id") is not None:
            org_id = fields["organization_id"]
            if not isinstance(org_id, int) or org_id not in self.organizations:
                raise _Invalid(
                    "organization_id", "InvalidValue", f"Organization: {org_id} is invalid"
                )
        if "role" in fields and fields["role"] not in _ROLES:
            raise _Invalid("role", "InvalidValue", f"Role: {fields['role']} is not valid")
        if "tags" in fields and not isinstance(fields["tags"], list):
            raise _Invalid("tags", "InvalidValue", "Tags: must be a list")
        return fields

    def _clean_email(self, raw: Any, own_id: int | None, field: str) -> str | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str) or not _EMAIL.match(raw.strip()):
            raise _Invalid(field, "InvalidFormat", f"Email: {raw} is not properly formatted")
        email = raw.strip().lower()
        owner = self._email_owner(email)
        if owner is not None and owner != own_id:
            label = "Email" if field == "email" else "Value"
            raise _Invalid(
                field, "DuplicateValue", f"{label}: {email} is already being used by another user"
            )
        return email

    def _email_owner(self, email: str) -> int | None:
        return self._emails.get(email)

    def _soft_delete(self, user: dict[str, Any]) -> None:
        # A deleted user's addresses and external_id are free for others to take.
        user["active"] = False
        for identity in self._identities_of(int(user["id"])):
            if self._emails.get(identity["value"]) == user["id"]:
                del self._emails[identity["value"]]
        self._user_table.reindex(user, user)
        self._touch("user", user)

    # -- identities ---------------------------------------------------------------------------

    def _identities_of(self, user_id: int) -> list[dict[str, Any]]:
        return [self.identities[i] for i in self._by_user.get(user_id, [])]

    def _add_identity(
        self,
        user: dict[str, Any],
        raw_email: Any,
        *,
        mail: bool,
        touch: bool = True,
        field: str = "email",
    ) -> dict[str, Any]:
        """Add an e-mail identity; ``mail``: Zendesk would mail the address a verification
        link (recorded in ``verification_mails``); ``field``: how errors name the address."""
        email = self._clean_email(raw_email, int(user["id"]), field)
        if email is None:
            raise _Invalid("value", "BlankValue", "Value: cannot be blank")
        existing = self._identities_of(int(user["id"]))
        if any(i["value"] == email for i in existing):
            # Identity values are unique in an account, the user's own included.
            raise _Invalid("value", "DuplicateValue", f"Value: {email} has already been taken")
        now = _stamp(self.clock())
        identity = {
            "url": "",
            "id": self._next_identity,
            "user_id": user["id"],
            "type": "email",
            "value": email,
            "verified": False,
            "primary": not existing,
            "deliverable_state": "deliverable",
            "undeliverable_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        self._next_identity += 1
        self.identities[int(identity["id"])] = identity
        self._by_user.setdefault(int(user["id"]), []).append(int(identity["id"]))
        if user["active"]:
            self._emails[email] = int(user["id"])
        if identity["primary"]:
            user["email"] = email
        if touch:
            self._touch("user", user)
        if mail:
            self.verification_mails.append((int(user["id"]), email))
        return identity

    def _list_identities(self, request: Request, id: str) -> Response:
        user = self.users.get(int(id))
        if user is None:
            return _not_found()
        items = [self._render_identity(i, request.base_url) for i in self._identities_of(int(id))]
        return _listing("identities", items)

    def _get_identity(self, request: Request, id: str, identity_id: str) -> Response:
        identity = self.identities.get(int(identity_id))
        if identity is None or identity["user_id"] != int(id):
            return _not_found()
        return Response.json(200, {"identity": self._render_identity(identity, request.base_url)})

    def _post_identity(self, request: Request, id: str) -> Response:
        user = self.users.get(int(id))
        if user is None or not user["active"]:
            return _not_found()
        payload = _object(request.json(), "identity")
        if payload is None or payload.get("type", "email") != "email":
            return self.error(400, "Only e-mail identities are supported here", request)
        try:
            # Zendesk mails the address a verification link unless the request says
            # skip_verify_email (User Identities: Create Identity); a sync must never do that.
            mail = payload.get("skip_verify_email") is not True
            identity = self._add_identity(user, payload.get("value"), mail=mail, field="value")
        except _Invalid as exc:
            exc.field = "value"
            return Response.json(422, exc.body())
        self.wrote()
        return Response.json(201, {"identity": self._render_identity(identity, request.base_url)})

    def _delete_identity(self, request: Request, id: str, identity_id: str) -> Response:
        user = self.users.get(int(id))
        identity = self.identities.get(int(identity_id))
        if user is None or identity is None or identity["user_id"] != int(id):
            return _not_found()
        if identity["primary"]:
            return self.error(422, "The primary identity cannot be deleted", request)
        del self.identities[int(identity_id)]
        self._by_user[int(id)].remove(int(identity_id))
        if self._emails.get(identity["value"]) == int(id):
            del self._emails[identity["value"]]  # the address is free for another user
        self._touch("user", user)
        self.wrote()
        return Response.empty(204)

    def _make_primary(self, request: Request, id: str, identity_id: str) -> Response:
        user = self.users.get(int(id))
        identity = self.identities.get(int(identity_id))
        if user is None or identity is None or identity["user_id"] != int(id):
            return _not_found()
        if not identity["primary"]:
            for other in self._identities_of(int(id)):
                other["primary"] = other["id"] == identity["id"]
            user["email"] = identity["value"]
            self._touch("user", user)
            self.wrote()
        items = [self._render_identity(i, request.base_url) for i in self._identities_of(int(id))]
        return Response.json(200, {"identities": items})

    # -- organization memberships -------------------------------------------------------------

    def _memberships_of(self, user_id: int) -> list[dict[str, Any]]:
        return [self.memberships[m] for m in self._member_of.get(user_id, [])]

    def _join(self, user: dict[str, Any], organization_id: int, *, default: bool) -> dict[str, Any]:
        """The user's membership in an organization (added if missing); ``default`` makes it
        the default. A user's first membership is always the default."""
        user_id = int(user["id"])
        mine = self._memberships_of(user_id)
        membership = next((m for m in mine if m["organization_id"] == organization_id), None)
        if membership is None:
            now = _stamp(self.clock())
            membership = {
                "url": "",
                "id": self._next_membership,
                "user_id": user_id,
                "organization_id": organization_id,
                "default": False,
                "view_tickets": True,
                "created_at": now,
                "updated_at": now,
            }
            self._next_membership += 1
            self.memberships[int(membership["id"])] = membership
            self._member_of.setdefault(user_id, []).append(int(membership["id"]))
        if default or not any(m["default"] for m in mine if m is not membership):
            self._make_default(user, membership)
        return membership

    def _make_default(self, user: dict[str, Any], membership: dict[str, Any]) -> bool:
        """Make ``membership`` the user's default; whether ``organization_id`` changed."""
        for other in self._memberships_of(int(user["id"])):
            other["default"] = other["id"] == membership["id"]
        changed: bool = user["organization_id"] != membership["organization_id"]
        user["organization_id"] = membership["organization_id"]
        return changed

    def _leave(self, user: dict[str, Any], membership: dict[str, Any]) -> bool:
        """Remove a membership; the oldest one left becomes the default if it was. Whether the
        user's ``organization_id`` changed."""
        del self.memberships[int(membership["id"])]
        self._member_of[int(user["id"])].remove(int(membership["id"]))
        if not membership["default"]:
            return False
        rest = self._memberships_of(int(user["id"]))
        if rest:
            return self._make_default(user, rest[0])
        user["organization_id"] = None
        return True

    def _set_organization(self, user: dict[str, Any], organization_id: int | None) -> bool:
        """A write of the user's ``organization_id``: it joins that organization and makes it
        the default, keeping the other memberships where an account allows several (Users:
        organization_id is the default organization); it is the only membership otherwise.
        ``None`` leaves the default organization. Whether ``organization_id`` changed."""
        if organization_id == user["organization_id"]:
            return False
        mine = self._memberships_of(int(user["id"]))
        if organization_id is None:
            leaving = [m for m in mine if m["default"]]
        elif not self.multiple_organizations:
            leaving = [m for m in mine if m["organization_id"] != organization_id]
        else:
            leaving = []
        for membership in leaving:
            self._leave(user, membership)
        if organization_id is not None:
            self._join(user, organization_id, default=True)
        return True

    def _list_user_memberships(self, request: Request, id: str) -> Response:
        if int(id) not in self.users:
            return _not_found()
        items = [
            self._render_membership(m, request.base_url) for m in self._memberships_of(int(id))
        ]
        return _listing("organization_memberships", items)

    def _get_membership(self, request: Request, id: str) -> Response:
        membership = self.memberships.get(int(id))
        if membership is None:
            return _not_found()
        rendered = self._render_membership(membership, request.base_url)
        return Response.json(200, {"organization_membership": rendered})

    def _create_membership(self, request: Request, id: str | None = None) -> Response:
        payload = _object(request.json(), "organization_membership")
        if payload is None:
            return self.error(400, 'The body must be {"organization_membership": {...}}', request)
        try:
            user, org_id = self._membership_parts(payload, None if id is None else int(id))
        except _Invalid as exc:
            return Response.json(422, exc.body())
        had = user["organization_id"]
        membership = self._join(user, org_id, default=False)
        if had != user["organization_id"]:
            self._touch("user", user)
        self.wrote()
        rendered = self._render_membership(membership, request.base_url)
        return Response.json(201, {"organization_membership": rendered})

    def _membership_parts(
        self, payload: dict[str, Any], user_id: int | None
    ) -> tuple[dict[str, Any], int]:
        """The user and organization a new membership joins; ``_Invalid`` names what is wrong."""
        user = self.users.get(_int(payload.get("user_id", user_id)))
        if user is None or not user["active"]:
            raise _Invalid("user_id", "InvalidValue", f"User: {payload.get('user_id')} is invalid")
        org_id = _int(payload.get("organization_id"))
        if org_id not in self.organizations:
            raise _Invalid("organization_id", "InvalidValue", f"Organization: {org_id} is invalid")
        mine = self._memberships_of(int(user["id"]))
        if any(m["organization_id"] == org_id for m in mine):
            raise _Invalid("user_id", "DuplicateValue", "User has already been taken")
        if mine and not self.multiple_organizations:
            raise _Invalid(
                "organization_id",
                "InvalidValue",
                "Organization: multiple organizations are not enabled for this account",
            )
        return user, org_id

    def _delete_user_membership(self, request: Request, id: str, membership_id: str) -> Response:
        membership = self.memberships.get(int(membership_id))
        if membership is None or membership["user_id"] != int(id):
            return _not_found()
        return self._delete_membership(request, membership_id)

    def _delete_membership(self, request: Request, id: str) -> Response:
        membership = self.memberships.get(int(id))
        if membership is None:
            return _not_found()
        user = self.users[int(membership["user_id"])]
        if self._leave(user, membership):
            self._touch("user", user)
        self.wrote()
        return Response.empty(204)

    def _make_default_membership(self, request: Request, id: str, membership_id: str) -> Response:
        membership = self.memberships.get(int(membership_id))
        user = self.users.get(int(id))
        if user is None or membership is None or membership["user_id"] != int(id):
            return _not_found()
        if self._make_default(user, membership):
            self._touch("user", user)
            self.wrote()
        items = [
            self._render_membership(m, request.base_url) for m in self._memberships_of(int(id))
        ]
        return Response.json(200, {"organization_memberships": items})

    # -- organizations ------------------------------------------------------------------------

    def _list_orgs(self, request: Request) -> Response:
        return self._paged(request, "organizations", self._org_table.ordered(), self._render_org)

    def _search_orgs(self, request: Request) -> Response:
        external = request.param("external_id")
        name = request.param("name")
        if external is None and name is None:
            return self.error(400, "Give external_id or name", request)
        found = []
        for org in self._org_table.ordered():
            by_external = external is not None and _same(org["external_id"], external)
            if by_external or (name is not None and _name_key(org["name"]) == _name_key(name)):
                found.append(org)
        return _listing("organizations", [self._render_org(o, request.base_url) for o in found])

    def _remove_org(self, org: dict[str, Any]) -> None:
        org_id = int(org["id"])
        del self.organizations[org_id]
        self.deleted_organizations[org_id] = org
        self._org_table.reindex(org, org)
        for membership in [m for m in self.memberships.values() if m["organization_id"] == org_id]:
            user = self.users[int(membership["user_id"])]
            if self._leave(user, membership):
                self._touch("user", user)

    def _create_org(self, payload: dict[str, Any]) -> dict[str, Any]:
        fields = self._clean_org_fields(payload, None)
        self._org_table.check_name(fields, creating=True)
        return self._org_table.add(fields, self.clock())

    def _update_org(self, org: dict[str, Any], payload: dict[str, Any]) -> bool:
        fields = self._clean_org_fields(payload, int(org["id"]))
        self._org_table.check_name(fields, creating=False)
        changed = self._org_table.change(org, fields)
        if changed:
            self._touch("organization", org)
        return changed

    def _clean_org_fields(self, payload: dict[str, Any], own_id: int | None) -> dict[str, Any]:
        fields = self._org_table.writable_fields(payload)
        if "name" in fields:
            fields["name"] = fields["name"].strip() if isinstance(fields["name"], str) else None
        self._org_table.claim(fields, own_id)
        return fields

    # -- bulk jobs ----------------------------------------------------------------------------

    def _bulk(self, kind: str, action: str) -> Callable[[Request], Response]:
        singular = kind[:-1]

        def handler(request: Request) -> Response:
            # The account's bulk import switch concerns creating users in bulk (Create Many
            # Users, Create Or Update Many Users); update_many is not behind it.
            if kind == "users" and not self.bulk_users_enabled and action != "update":
                return _forbidden()
            body = request.json()
            items = self._bulk_items(request, body, kind, singular)
            if items is None:
                return self.error(400, f"The body must hold a list of {kind}", request)
            if len(items) > MAX_BULK:
                verb = {"create": "created", "update": "updated"}.get(action, "created or updated")
                return _too_many(kind, verb)
            return self._queue(request, kind, action, items)

        return handler

    def _destroy_many(self, kind: str) -> Callable[[Request], Response]:
        """``DELETE /{kind}/destroy_many?ids=1,2,3``: up to 100 ids, answered with a job."""

        def handler(request: Request) -> Response:
            ids = request.params("ids")
            if not ids or not all(i.isdigit() for i in ids):
                return self.error(400, "ids must be a comma-separated list of ids", request)
            if len(ids) > MAX_BULK:
                return _too_many(kind, "deleted")
            return self._queue(request, kind, "delete", [{"id": int(i)} for i in ids])

        return handler

    def _queue(
        self, request: Request, kind: str, action: str, items: list[dict[str, Any]]
    ) -> Response:
        """Queue a bulk job (at most ``MAX_QUEUED_JOBS`` pending) and answer its status."""
        pending = sum(1 for j in self.jobs.values() if j.results is None)
        if pending >= MAX_QUEUED_JOBS:
            return Response.json(
                429,
                {
                    "error": "TooManyJobs",
                    "description": f"Maximum of {MAX_QUEUED_JOBS} jobs may be queued",
                },
            )
        self._job_seq += 1
        job_id = f"V3-{self._job_seq:08x}{secrets.token_hex(12)}"
        job = _Job(job_id, kind, action, items, self.clock())
        self.jobs[job_id] = job
        if self.job_polls <= 0 and self.job_seconds is None:
            self._complete(job)
        return Response.json(200, {"job_status": self._render_job(job, request.base_url)})

    def _bulk_items(
        self, request: Request, body: Any, kind: str, singular: str
    ) -> list[dict[str, Any]] | None:
        if not isinstance(body, dict):
            return None
        ids = request.params("ids")
        if ids and isinstance(body.get(singular), dict):
            # update_many?ids=1,2 with one change set for all of them.
            return [{**body[singular], "id": int(i)} for i in ids if i.isdigit()]
        items = body.get(kind)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return None
        return list(items)

    def _get_job(self, request: Request, id: str) -> Response:
        job = self.jobs.get(id)
        if job is None:
            return _not_found()
        self._polled(job)
        return Response.json(200, {"job_status": self._render_job(job, request.base_url)})

    def _show_many_jobs(self, request: Request) -> Response:
        """``GET /job_statuses/show_many?ids=a,b``: up to 100 jobs in one answer, each polled as
        ``/job_statuses/{id}`` would be; unknown ids are left out (as Zendesk does after a day)."""
        ids = request.params("ids")
        if not ids:
            return self.error(400, "ids must be a comma-separated list of job ids", request)
        if len(ids) > MAX_BULK:
            return _too_many("job_statuses", "shown")
        found = [self.jobs[i] for i in dict.fromkeys(ids) if i in self.jobs]
        for job in found:
            self._polled(job)
        statuses = [self._render_job(job, request.base_url) for job in found]
        return Response.json(200, {"job_statuses": statuses})

    def _polled(self, job: _Job) -> None:
        """Count a poll of ``job``; it completes on the ``job_polls``-th or once due."""
        if job.results is None:
            job.polls += 1
            timed_out = self.job_seconds is not None and (
                self.clock() >= job.submitted + self.job_seconds
            )
            if job.polls >= self.job_polls or timed_out:
                self._complete(job)

    def _complete(self, job: _Job) -> None:
        results: list[dict[str, Any]] = []
        wrote = False
        for index, item in enumerate(job.items):
            try:
                result, changed = self._apply_item(job, item)
            except _Invalid as exc:
                results.append(
                    {
                        "index": index,
                        "status": "Failed",
                        "error": exc.error,
                        "details": exc.description,
                    }
                )
                continue
            except LookupError:
                # Items sent by id are placed by id; the others by their index in the call.
                where = {"id": item["id"]} if job.action == "delete" else {"index": index}
                results.append(
                    {
                        **where,
                        "status": "Failed",
                        "error": "RecordNotFound",
                        "details": f"{job.kind[:-1].title()} {item.get('id')} not found",
                    }
                )
                continue
            wrote = wrote or changed
            results.append(result)
        job.results = results
        job.completed_at = self.clock()
        if wrote:
            self.wrote()

    def _apply_item(self, job: _Job, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        table = self._tables[job.kind[:-1]]
        if job.action == "delete":
            return self._destroy_item(table, _int(item.get("id")))
        if job.action == "create_or_update":
            target = self._match_user(item)
        elif job.action == "update":
            target = table.live(_int(item.get("id")))
            if target is None:
                raise LookupError(item.get("id"))
        else:
            target = None
        if target is None:
            record = table.create(item)
            return {"id": record["id"], "status": "Created"}, True
        changed = table.update(target, item)
        return {"id": target["id"], "status": "Updated"}, changed

    def _destroy_item(self, table: _Table, record_id: int) -> tuple[dict[str, Any], bool]:
        """One id of a ``destroy_many`` job: as a single DELETE would, or RecordNotFound."""
        record = table.live(record_id)
        if record is None:
            raise LookupError(record_id)
        table.remove(record)
        return {"id": record_id, "action": "delete", "status": "Deleted", "success": True}, True

    # -- incremental exports ------------------------------------------------------------------

    def _start_time(self, request: Request) -> int | Response:
        raw = request.param("start_time")
        if raw is None or not raw.lstrip("-").isdigit():
            return Response.json(
                400, {"error": "InvalidValue", "description": "start_time is required"}
            )
        start = int(raw)
        if start > self.clock() - 60:
            return Response.json(
                400,
                {
                    "error": "InvalidValue",
                    "description": "Too recent start_time. Use a start_time older than 1 minute",
                },
            )
        return start

    def _per_page(self, request: Request) -> int:
        raw = request.param("per_page")
        if raw and raw.isdigit():
            return max(1, min(EXPORT_PAGE_SIZE, int(raw)))
        return EXPORT_PAGE_SIZE

    def _export_order(self, kind: str, records: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
        updated = self._tables[kind].updated
        return sorted((updated[int(r["id"])], int(r["id"])) for r in records)

    def _export_users_cursor(self, request: Request) -> Response:
        per_page = self._per_page(request)
        cursor = request.param("cursor")
        if cursor is not None:
            parts = _decode_cursor(cursor)
            if parts is None or len(parts) != 2 or not all(p.isdigit() for p in parts):
                return self.error(400, "Invalid cursor", request)
            position = (int(parts[0]), int(parts[1]))
        else:
            start = self._start_time(request)
            if isinstance(start, Response):
                return start
            position = (start, -1)
        order = [key for key in self._export_order("user", self.users.values()) if key > position]
        page = order[:per_page]
        end = len(order) <= per_page
        last = page[-1] if page else position
        after = _encode_cursor(last[0], max(last[1], 0))
        query = {"cursor": after}
        if request.param("per_page"):
            query["per_page"] = str(per_page)
        base = f"{request.base_url}/api/v2/incremental/users/cursor.json"
        return Response.json(
            200,
            {
                "users": [self._render_user(self.users[i], request.base_url) for _, i in page],
                "after_url": f"{base}?{urlencode(query)}",
                "before_url": None,
                "after_cursor": after,
                "before_cursor": None,
                "end_of_stream": end,
            },
        )

    def _time_export(
        self, request: Request, kind: str, records: dict[int, dict[str, Any]], path: str
    ) -> Response:
        start = self._start_time(request)
        if isinstance(start, Response):
            return start
        per_page = self._per_page(request)
        order = [key for key in self._export_order(kind, records.values()) if key[0] >= start]
        page = self._whole_seconds(order, per_page)
        if page and page[-1][0] == start and len(page) < len(order):
            # Nothing but the start second, which the page before served whole (it ended
            # there): go on into the next seconds, so end_time moves past start_time whenever
            # end_of_stream is false. Bulk jobs finished by one batched status poll stamp
            # hundreds of records with one second; a page of them alone would hand the client
            # the same start_time back for ever (issue 13).
            page = page + self._whole_seconds(order[len(page) :], per_page)
        end = len(page) == len(order)
        end_time = page[-1][0] if page else start
        if kind == "organization" and self.stall_organization_export:
            # The fault: the export stops advancing, and says there is more.
            page = [key for key in page if key[0] == start]
            end, end_time = False, start
        query = {"start_time": str(end_time)}
        if request.param("per_page"):
            query["per_page"] = str(per_page)
        render = self._render_user if kind == "user" else self._render_org
        base = f"{request.base_url}/api/v2/incremental/{path}.json"
        return Response.json(
            200,
            {
                path: [render(records[i], request.base_url) for _, i in page],
                "next_page": f"{base}?{urlencode(query)}",
                "count": len(page),
                "end_of_stream": end,
                "end_time": end_time,
            },
        )

    @staticmethod
    def _whole_seconds(order: list[tuple[int, int]], per_page: int) -> list[tuple[int, int]]:
        """The first ``per_page`` of ``order``, and every record sharing the last one's second:
        a time-based page ends on a whole second (more than ``per_page`` records when their
        timestamps are equal), or a client following ``end_time`` could loop for ever."""
        page = order[:per_page]
        while len(page) < len(order) and page and order[len(page)][0] == page[-1][0]:
            page.append(order[len(page)])
        return page

    # -- paging and rendering -----------------------------------------------------------------

    def _paged(
        self,
        request: Request,
        key: str,
        items: list[dict[str, Any]],
        render: Callable[[dict[str, Any], str], dict[str, Any]],
    ) -> Response:
        size_raw = request.param("page[size]")
        path = f"{request.base_url}{request.path}"
        if size_raw is None and (request.param("page[after]") or request.param("page[before]")):
            size_raw = str(MAX_PAGE_SIZE)
        if size_raw is None:
            return _offset_page(request, key, items, path, render)
        if not size_raw.isdigit() or not 1 <= int(size_raw) <= MAX_PAGE_SIZE:
            return Response.json(
                400,
                {
                    "error": "InvalidPaginationParameter",
                    "description": f"page[size] must be between 1 and {MAX_PAGE_SIZE}",
                },
            )
        size = int(size_raw)
        after = request.param("page[after]")
        before = request.param("page[before]")
        ids = [int(item["id"]) for item in items]
        if after:
            mark = _cursor_id(after)
            if mark is None:
                return _bad_cursor()
            window = [i for i in ids if i > mark]
            page_ids = window[:size]
            has_more = len(window) > size
        elif before:
            mark = _cursor_id(before)
            if mark is None:
                return _bad_cursor()
            window = [i for i in ids if i < mark]
            page_ids = window[-size:]
            has_more = len(window) > size
        else:
            page_ids = ids[:size]
            has_more = len(ids) > size
        by_id = {int(item["id"]): item for item in items}
        after_cursor = _encode_cursor("id", page_ids[-1]) if page_ids else None
        before_cursor = _encode_cursor("id", page_ids[0]) if page_ids else None

        def link(name: str, cursor: str | None) -> str | None:
            if cursor is None:
                return None
            return f"{path}?{urlencode({f'page[{name}]': cursor, 'page[size]': size})}"

        return Response.json(
            200,
            {
                key: [render(by_id[i], request.base_url) for i in page_ids],
                "meta": {
                    "has_more": has_more,
                    "after_cursor": after_cursor,
                    "before_cursor": before_cursor,
                },
                "links": {
                    "prev": link("before", before_cursor),
                    "next": link("after", after_cursor),
                },
            },
        )

    def _render_user(self, user: dict[str, Any], base_url: str) -> dict[str, Any]:
        return self._user_table.render(user, base_url)

    def _render_org(self, org: dict[str, Any], base_url: str) -> dict[str, Any]:
        return self._org_table.render(org, base_url)

    def _render_identity(
        self, identity: dict[str, Any], base_url: str | None = None
    ) -> dict[str, Any]:
        out = dict(identity)
        out["url"] = (
            f"{base_url or self.base_url}/api/v2/users/{identity['user_id']}/identities/"
            f"{identity['id']}.json"
        )
        return out

    def _render_membership(
        self, membership: dict[str, Any], base_url: str | None = None
    ) -> dict[str, Any]:
        out = dict(membership)
        out["url"] = (
            f"{base_url or self.base_url}/api/v2/organization_memberships/{membership['id']}.json"
        )
        org = self.organizations.get(int(membership["organization_id"]))
        out["organization_name"] = org["name"] if org else None
        return out

    def _render_job(self, job: _Job, base_url: str) -> dict[str, Any]:
        total = len(job.items)
        if job.results is not None:
            progress: int | None = total
            status = "completed"
            finished = datetime.fromtimestamp(job.completed_at or 0, UTC)
            message: str | None = f"Completed at {finished:%Y-%m-%d %H:%M:%S} +0000"
        elif job.polls == 0:
            progress, status, message = None, "queued", None
        else:
            progress = min(total, total * job.polls // max(1, self.job_polls))
            status = "working"
            noun = "User" if job.kind == "users" else "organization"
            message = f"Creating {noun} #{progress}"
        return {
            "id": job.id,
            "url": f"{base_url}/api/v2/job_statuses/{job.id}.json",
            "total": total,
            "progress": progress,
            "status": status,
            "message": message,
            "results": None if job.results is None else [dict(r) for r in job.results],
        }


# -- module helpers --------------------------------------------------------------------------


def _same(left: Any, right: Any) -> bool:
    return str(left or "").lower() == str(right or "").lower()


def _lower(value: Any) -> str:
    return str(value).lower()


def _name_key(name: Any) -> str:
    return str(name or "").strip().casefold()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _object(body: Any, key: str) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        return None
    return dict(body[key])


def _not_found() -> Response:
    return Response.json(404, {"error": "RecordNotFound", "description": "Not found"})


def _forbidden() -> Response:
    return Response.json(403, _NO_ACCESS)


def _too_many(kind: str, verb: str) -> Response:
    return Response.json(
        400,
        {
            "error": "TooManyValues",
            "description": f"Maximum {MAX_BULK} {kind} may be {verb} per call",
        },
    )


def _bad_cursor() -> Response:
    return Response.json(
        400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}
    )


def _cursor_id(cursor: str) -> int | None:
    parts = _decode_cursor(cursor)
    if parts is None or len(parts) != 2 or parts[0] != "id" or not parts[1].isdigit():
        return None
    return int(parts[1])


def _listing(key: str, items: list[dict[str, Any]]) -> Response:
    return Response.json(
        200, {key: items, "next_page": None, "previous_page": None, "count": len(items)}
    )


def _offset_page(
    request: Request,
    key: str,
    items: list[dict[str, Any]],
    path: str,
    render: Callable[[dict[str, Any], str], dict[str, Any]],
) -> Response:
    page_raw = request.param("page") or "1"
    per_raw = request.param("per_page") or str(MAX_PAGE_SIZE)
    page = int(page_raw) if page_raw.isdigit() and int(page_raw) > 0 else 1
    per_page = min(MAX_PAGE_SIZE, int(per_raw)) if per_raw.isdigit() and int(per_raw) > 0 else 100
    start = (page - 1) * per_page
    chunk = [render(item, request.base_url) for item in items[start : start + per_page]]
    extra = {"per_page": str(per_page)} if request.param("per_page") else {}
    next_page = (
        f"{path}?{urlencode({'page': page + 1, **extra})}"
        if start + per_page < len(items)
        else None
    )
    previous = f"{path}?{urlencode({'page': page - 1, **extra})}" if page > 1 else None
    return Response.json(
        200, {key: chunk, "next_page": next_page, "previous_page": previous, "count": len(items)}
    )
