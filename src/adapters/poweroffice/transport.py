"""The HTTP side of the PowerOffice adapter: token, headers, rate limit, retries, error typing.

Every call goes through :meth:`PowerOfficeClient.call`, which

- waits for a slot from the rate limiter shared by the subscription key;
- sends ``Authorization: Bearer`` with a cached token (renewed shortly before ``expires_in``
  runs out, and once more on a 401) and ``Ocp-Apim-Subscription-Key``;
- on 429 waits ``Retry-After`` (at least 1 s) and tries again, for any verb: the call was not
  processed;
- on 5xx, timeouts, connection errors and cut-off or non-JSON bodies backs off (bounded,
  jittered) and retries idempotent calls only; a POST then raises ``PowerOfficeInDoubt``
  so the caller reconciles by origin key instead of creating twice;
- turns 401 (after one renewal) and 403 into typed errors that name no secret.

Other 4xx answers are returned to the caller, who knows which record they concern.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
import httpx
import structlog

from adapters.http import Reply
from adapters.poweroffice.auth import PowerOfficeCredentials
from adapters.poweroffice.errors import (
    PowerOfficeAccessDenied,
    PowerOfficeAuthError,
    PowerOfficeInDoubt,
    PowerOfficeUnavailable,
)
from adapters.poweroffice.limiter import Limiter
from adapters.poweroffice.wire import TokenDto, structure

log = structlog.get_logger()

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""Full pages of 20000 customers can take a while to render server side; connecting should not."""
LATE_SLOT_TOLERANCE = 0.02
"""Seconds a request may leave after its slot; later, it books a new one (see _wait_for_slot).
Well under the 50 ms margin the shared budget keeps below 10 requests a second."""
MAX_REBOOKINGS = 3
"""Slots a request books at most before going anyway (a machine that busy is not waiting)."""

_ROLE_RULES: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    # (path prefix, is a write, roles any of which allows it) — from the spec's "Auth roles".
    ("/customers", False, ("Customer", "Customer_Full")),
    ("/customers", True, ("Customer_Full",)),
    (
        "/contactpersons",
        False,
        (
            "ContactPerson",
            "ContactPerson_Full",
            "Customer",
            "Customer_Full",
            "Supplier",
            "Supplier_Full",
        ),
    ),
    ("/contactpersons", True, ("ContactPerson_Full", "Customer_Full", "Supplier_Full")),
    ("/departments", False, ("Department", "Department_Full")),
    ("/departments", True, ("Department_Full",)),
    ("/suppliers", False, ("Supplier", "Supplier_Full")),
    ("/suppliers", True, ("Supplier_Full",)),
)


def roles_for(method: str, path: str) -> tuple[str, ...]:
    """The access roles PowerOffice documents for ``method path`` (any one suffices)."""
    write = method.upper() != "GET"
    lowered = path.lower()
    for prefix, is_write, roles in _ROLE_RULES:
        if lowered.startswith(prefix) and is_write == write:
            return roles
    return ()


@attrs.define
class _Token:
    value: str = attrs.field(repr=False)
    expires_at: datetime


class _Retry(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.define
class PowerOfficeClient:
    """Authenticated, rate-limited, retrying calls to one PowerOffice Go API (see module doc)."""

    http: httpx.Client
    base_url: str
    token_url: str
    credentials: PowerOfficeCredentials = attrs.field(repr=False)
    limiter: Limiter
    sleep: Callable[[float], None]
    now: Callable[[], datetime]
    timeout: httpx.Timeout = DEFAULT_TIMEOUT
    max_attempts: int = 4
    """Tries for one idempotent call facing 5xx, timeouts or broken bodies."""
    max_throttled: int = 8
    """How many 429s in a row one call sits out before giving up."""
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    jitter: random.Random = attrs.field(factory=random.Random, repr=False)
    _token: _Token | None = attrs.field(default=None, init=False, repr=False)

    # -- token --------------------------------------------------------------------------

    def invalidate_token(self) -> None:
        """Forget the cached token so the next call fetches a new one."""
        self._token = None

    def token(self) -> str:
        """A valid access token; fetched when none is cached or the cached one nears expiry."""
        token = self._token
        if token is not None and self.now() < token.expires_at:
            return token.value
        self._token = token = self._fetch_token()
        return token.value

    def _fetch_token(self) -> _Token:
        pair = f"{self.credentials.application_key}:{self.credentials.client_key}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii"),
            "Ocp-Apim-Subscription-Key": self.credentials.subscription_key,
            "Accept": "application/json",
        }
        for attempt in range(1, self.max_attempts + 1):
            self._wait_for_slot()
            try:
                response = self.http.post(
                    self.token_url,
                    data={"grant_type": "client_credentials"},
                    headers=headers,
                    timeout=self.timeout,
                )
                body = _json_body(response) if response.content else None
            except (httpx.TransportError, _Retry) as exc:
                self._back_off("token", attempt, _reason(exc))
                continue
            if response.status_code == 429:
                self._sit_out(response, "token")
                continue
            if response.status_code >= 500:
                self._back_off("token", attempt, f"HTTP {response.status_code}")
                continue
            if response.status_code != 200:
                raise PowerOfficeAuthError(self._token_refusal(response.status_code, body))
            try:
                dto = structure(body, TokenDto)
            except Exception:
                raise PowerOfficeUnavailable(
                    "PowerOffice token endpoint answered 200 without a usable token"
                ) from None
            # Renew a little early: a token that expires in flight costs a 401 round trip.
            margin = min(60.0, dto.expires_in / 10)
            log.debug("poweroffice.token", expires_in=dto.expires_in)
            return _Token(dto.access_token, self.now() + timedelta(seconds=dto.expires_in - margin))
        raise PowerOfficeUnavailable(
            f"PowerOffice token endpoint {self.token_url} unreachable "
            f"after {self.max_attempts} tries"
        )

    def _token_refusal(self, status: int, body: Any) -> str:
        error = description = ""
        if isinstance(body, Mapping):
            error = str(body.get("error") or "")
            description = str(body.get("error_description") or body.get("message") or "")
        what = {
            "invalid_client": "the application key or client key was not accepted",
            "unauthorized_client": "the client key has not activated this integration",
            "invalid_grant": "the client key has not activated this integration",
        }.get(error, "the credentials were not accepted")
        if status == 401 and not error:
            what = "the subscription key was not accepted"
        detail = (
            f" ({': '.join(part for part in (error, description) if part)})"
            if (error or description)
            else ""
        )
        return self.credentials.redact(
            f"PowerOffice refused the token request (HTTP {status}): {what}{detail}"
        )

    # -- calls --------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, str | int] | None = None) -> httpx.URL:
        """The URL :meth:`call` sends for ``path`` and ``params``, encoded as it goes out."""
        url = httpx.URL(self.base_url.rstrip("/") + path)
        return url.copy_merge_params(dict(params)) if params else url

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        content_type: str = "application/json",
    ) -> Reply:
        """Send ``method path`` (relative to the base URL) and return the final answer.

        Raises ``PowerOfficeAuthError`` (401 after renewing), ``PowerOfficeAccessDenied`` (403),
        ``PowerOfficeUnavailable`` (gave up retrying) or ``PowerOfficeInDoubt`` (a POST
        that may have been applied). Any other status comes back as a :class:`Reply`.
        """
        idempotent = method.upper() != "POST"
        url = self.url(path, params)
        content = None if json_body is None else json.dumps(json_body).encode("utf-8")
        renewed = False
        attempt = throttled = 0
        while True:
            attempt += 1
            # The token first: fetching it takes a slot of its own, and a slot booked before
            # it would be used after it, two requests in one slot (over the rate).
            token = self.token()
            self._wait_for_slot()
            headers = {
                "Authorization": f"Bearer {token}",
                "Ocp-Apim-Subscription-Key": self.credentials.subscription_key,
                "Accept": "application/json",
            }
            if content is not None:
                headers["Content-Type"] = content_type
            sent = False
            try:
                response = self.http.request(
                    method,
                    url,
                    content=content,
                    headers=headers,
                    timeout=self.timeout,
                )
                sent = True
                body = _json_body(response) if response.content else None
            except (httpx.TransportError, _Retry) as exc:
                reason = _reason(exc)
                # Nothing reached the server when connecting failed, so even a POST may go again.
                if not idempotent and (sent or not isinstance(exc, httpx.ConnectError)):
                    raise PowerOfficeInDoubt(
                        f"{method} {path}: {reason}; it may or may not have been applied"
                    ) from None
                if attempt >= self.max_attempts:
                    raise self._gave_up(method, path, reason) from None
                self._back_off(f"{method} {path}", attempt, reason)
                continue
            status = response.status_code
            log.debug("poweroffice.call", method=method, path=path, status=status, attempt=attempt)
            if status == 401 and not renewed:
                # Tokens can be revoked or expire early; renew once before calling it refused.
                renewed = True
                attempt -= 1
                self.invalidate_token()
                continue
            if status == 401:
                raise PowerOfficeAuthError(
                    f"PowerOffice answered 401 to {method} {path} even with a new token: "
                    "the credentials are not (or no longer) accepted"
                )
            if status == 403:
                roles = roles_for(method, path)
                raise PowerOfficeAccessDenied(
                    f"PowerOffice refused {method} {path} (403): the integration lacks the "
                    f"access role it needs ({' or '.join(roles) or 'see the API documentation'}); "
                    "grant it to the integration in PowerOffice Go",
                    roles,
                )
            if status == 429:
                throttled += 1
                attempt -= 1
                if throttled > self.max_throttled:
                    raise PowerOfficeUnavailable(
                        f"PowerOffice kept throttling {method} {path} (429 {throttled} times)"
                    )
                self._sit_out(response, f"{method} {path}")
                continue
            if status >= 500:
                reason = f"HTTP {status}"
                if not idempotent:
                    raise PowerOfficeInDoubt(
                        f"{method} {path}: {reason}; it may or may not have been applied"
                    )
                if attempt >= self.max_attempts:
                    raise self._gave_up(method, path, reason)
                self._back_off(f"{method} {path}", attempt, reason)
                continue
            return Reply(status, body, response.headers)

    # -- pacing -------------------------------------------------------------------------

    def _wait_for_slot(self) -> None:
        # A slot used late crowds the slots booked after it (by this process or, with the
        # shared budget, by others): more than the rate could then land in one second. So a
        # wait that overslept (a busy machine) gives its slot up and books a later one.
        for _ in range(MAX_REBOOKINGS):
            wait = self.limiter.reserve()
            if wait <= 0:
                return
            started = time.monotonic()
            self.sleep(wait)
            if time.monotonic() - started - wait <= LATE_SLOT_TOLERANCE:
                return
            log.debug("poweroffice.slot_missed", late=time.monotonic() - started - wait)

    def _sit_out(self, response: httpx.Response, what: str) -> None:
        wait = max(1.0, _retry_after(response.headers.get("Retry-After")))
        log.warning("poweroffice.throttled", call=what, wait=wait)
        self.limiter.hold_off(wait)
        self.sleep(wait)

    def _back_off(self, what: str, attempt: int, reason: str) -> None:
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        wait = self.jitter.uniform(ceiling / 2, ceiling)
        log.warning(
            "http.retry", system="poweroffice", call=what, attempt=attempt, reason=reason, wait=wait
        )
        self.sleep(wait)

    def _gave_up(self, method: str, path: str, reason: str) -> PowerOfficeUnavailable:
        return PowerOfficeUnavailable(
            f"PowerOffice at {self.base_url} failed {method} {path} {self.max_attempts} times "
            f"(last: {reason})"
        )


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0  # an HTTP date: fall back to the 1 s floor rather than parse clocks


_HTML = re.compile(rb"^\s*<", re.ASCII)


def _json_body(response: httpx.Response) -> Any:
    """The parsed body; a cut-off or HTML body (a proxy's error page) is retried like a 5xx.

    An error status with a body that is not JSON keeps the start of its text for the message.
    """
    raw = response.content
    if not response.is_success and response.status_code < 500:
        try:
            return json.loads(raw)
        except ValueError:
            return raw[:300].decode("utf-8", "replace")
    if _HTML.match(raw):
        raise _Retry(f"HTTP {response.status_code} with an HTML body")
    try:
        return json.loads(raw)
    except ValueError:
        raise _Retry(
            f"HTTP {response.status_code} with a body that is not JSON (cut off?)"
        ) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Retry):
        return exc.reason
    return type(exc).__name__
