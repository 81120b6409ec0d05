"""Typed errors of the Zendesk adapter.

Everything that stops a run is a ``SystemUnavailable`` (so the engine needs to know nothing of
Zendesk); everything else is mapped to a per-write ``WriteError`` by the port. Messages carry
Zendesk's error code and description, never credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.http import InDoubt
from talkcore.ports import SystemUnavailable


class ZendeskError(Exception):
    """An error answer (or no usable answer) from Zendesk."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details


class ZendeskUnavailable(ZendeskError, SystemUnavailable):
    """Zendesk cannot be used right now: unreachable, failing, or refusing our credentials."""


class ZendeskUnauthorized(ZendeskUnavailable):
    """401: the credentials were refused (wrong, expired or revoked)."""


class ZendeskForbidden(ZendeskUnavailable):
    """403: authenticated, but not allowed (or the feature is not enabled on the account)."""


class ZendeskAccessDenied(ZendeskForbidden):
    """The signed-in user's role may not do what a sync needs; ``role`` names the role needed."""

    def __init__(self, message: str, *, role: str, status: int | None = 403) -> None:
        super().__init__(message, status=status, code="role_required")
        self.role = role


class ZendeskRateLimited(ZendeskUnavailable):
    """429 kept coming after the bounded number of waits."""


class ZendeskInDoubt(ZendeskError, InDoubt):
    """A call that changes data failed in transit: it may or may not have been applied."""


class ZendeskBadResponse(ZendeskError):
    """A 2xx answer whose body was not the JSON expected (cut off, or an HTML page)."""


class ZendeskNotFound(ZendeskError):
    """404 RecordNotFound."""


class ZendeskConflict(ZendeskError):
    """409: the record was being changed by another request."""


class ZendeskInvalid(ZendeskError):
    """422 RecordInvalid / DuplicateValue: ``details`` names the fields."""


class ZendeskTooManyValues(ZendeskError):
    """400 TooManyValues: more than a bulk endpoint takes in one call."""


class ZendeskTooManyJobs(ZendeskError):
    """Too many background jobs queued on the account (at most 30)."""


def per_item(exc: ZendeskError) -> bool:
    """Whether an error concerns the records of one call (else the whole system is down)."""
    return isinstance(exc, ZendeskForbidden) or not isinstance(exc, ZendeskUnavailable)


def describe(body: Mapping[str, Any] | None, status: int) -> tuple[str, str]:
    """Zendesk's error code and a readable description from an error body."""
    if not body:
        return f"http_{status}", f"HTTP {status}"
    error = body.get("error")
    description = body.get("description")
    if isinstance(error, Mapping):
        # Some endpoints (403s) answer {"error": {"title": ..., "message": ...}}.
        code = str(error.get("title") or f"http_{status}")
        description = description or error.get("message")
    else:
        code = str(error) if error else f"http_{status}"
    return code, str(description or code)


_BY_CODE: dict[str, type[ZendeskError]] = {
    "TooManyJobs": ZendeskTooManyJobs,
    "TooManyValues": ZendeskTooManyValues,
}
"""Error codes whose meaning does not follow from the status (both come as 400 or 429)."""
_BY_STATUS: dict[int, type[ZendeskError]] = {
    401: ZendeskUnauthorized,
    403: ZendeskForbidden,
    404: ZendeskNotFound,
    409: ZendeskConflict,
    422: ZendeskInvalid,
    429: ZendeskRateLimited,
}


def error_for(status: int, body: Mapping[str, Any] | None) -> ZendeskError:
    """The typed exception for an error answer."""
    code, description = describe(body, status)
    details = body.get("details") if body else None
    message = f"Zendesk answered {status} {code}: {description}"
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if kind is None:
        kind = ZendeskUnavailable if status >= 500 else ZendeskError
    return kind(message, status=status, code=code, details=details)
