"""The HTTP layer: authentication, rate limiting, retries and error typing for every call.

Retries are bounded and only blind for calls that are safe to repeat (GET, PUT, DELETE, job
polls). A POST that fails in transit raises ``ZendeskInDoubt`` so the caller can reconcile by
origin key instead of creating twice. A 429 is always retried after ``Retry-After``: Zendesk
refused the request, so nothing was applied.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import structlog

from adapters import http
from adapters.http import Reply
from adapters.zendesk.auth import ZendeskAuth
from adapters.zendesk.errors import (
    ZendeskBadResponse,
    ZendeskError,
    ZendeskInDoubt,
    ZendeskRateLimited,
    ZendeskTooManyJobs,
    ZendeskUnavailable,
    error_for,
)
from adapters.zendesk.limiter import RateLimiter

log = structlog.get_logger()

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Default timeouts of ``make_client``: bulk calls can be slow, but a hung connection must not
hang a run."""

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
Params = Mapping[str, str | int]


def make_client(timeout: httpx.Timeout | None = None) -> httpx.Client:
    """An ``httpx.Client`` fit for Zendesk (for the CLI's wiring): see ``adapters.http``."""
    return http.make_client(timeout or TIMEOUT)


@attrs.define
class RetryPolicy:
    """How often and how long to retry; ``rng`` makes the jitter reproducible in tests."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    retry_after_default: float = 60.0
    rng: random.Random = attrs.field(factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Jittered exponential back-off for retry number ``attempt`` (0-based)."""
        delay = min(self.max_delay, self.base_delay * (2**attempt))
        return float(delay * (0.5 + self.rng.random()))


class ZendeskHttp:
    """Sends requests to one Zendesk account and types what comes back."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        auth: ZendeskAuth,
        *,
        limiter: RateLimiter,
        sleep: Callable[[float], None],
        retry: RetryPolicy | None = None,
        export_limiter: RateLimiter | None = None,
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._limiter = limiter
        self._export_limiter = export_limiter
        self._sleep = sleep
        self.retry = retry or RetryPolicy()

    @property
    def host(self) -> str:
        """The host we talk to (for messages)."""
        return urlsplit(self.base_url).netloc or self.base_url

    def url(self, path_or_url: str) -> str:
        """An absolute URL on *our* base for a path or a link Zendesk handed us.

        Links (``links.next``, ``after_url``) are re-rooted on the configured base: the
        credentials are only ever sent to the host we were configured with.
        """
        if "://" in path_or_url:
            parts = urlsplit(path_or_url)
            path_or_url = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base_url + path_or_url

    def get(self, path: str, params: Params | None = None) -> Reply:
        """GET, retried on transient failures."""
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        expect_body: bool = True,
    ) -> Reply:
        """Send one call with rate limiting and bounded retries; raise typed errors."""
        idempotent = method in _IDEMPOTENT
        url = self.url(path)
        # The exports have their own, much smaller budget on top of the account's: pace them by
        # it rather than learn it from 429s (each of which costs a minute's wait).
        export_limiter = self._export_limiter if is_export(url) else None
        attempt = 0
        limited = 0
        while True:
            if export_limiter is not None:
                export_limiter.acquire()
            self._limiter.acquire()
            try:
                response = self._client.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers={"Authorization": self._auth.header(), "Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                failure: ZendeskError = self._transport_failure(method, path, exc)
            else:
                self._limiter.observe(response.headers)
                if response.status_code == 429 or _is_too_many_jobs(response):
                    limited += 1
                    if limited > self.retry.attempts:
                        raise _rate_limited(method, path, response)
                    wait = _retry_after(response, self.retry.retry_after_default)
                    log.info("zendesk.http.throttled", method=method, path=path, wait=wait)
                    self._sleep(wait)
                    continue
                try:
                    return self._parse(method, path, response, expect_body)
                except ZendeskError as exc:
                    failure = exc
                if not _retryable(failure):
                    raise failure
            # A transient failure: repeat what is safe to repeat; report the rest as in doubt.
            if not idempotent:
                raise ZendeskInDoubt(
                    f"{method} {path} failed in transit ({failure.message}); "
                    "it may have been applied",
                    status=failure.status,
                    code="in_doubt",
                )
            if attempt + 1 >= self.retry.attempts:
                raise ZendeskUnavailable(
                    f"Zendesk at {self.host} did not answer {method} {path} "
                    f"after {attempt + 1} attempts: {failure.message}",
                    status=failure.status,
                    code=failure.code,
                )
            delay = self.retry.backoff(attempt)
            log.warning(
                "http.retry",
                system="zendesk",
                call=f"{method} {path}",
                attempt=attempt + 1,
                reason=failure.message,
                wait=round(delay, 2),
            )
            self._sleep(delay)
            attempt += 1

    def _transport_failure(self, method: str, path: str, exc: httpx.TransportError) -> ZendeskError:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not connect"
        return _Transient(f"{method} {path} {kind} ({type(exc).__name__})", code="transport")

    def _parse(self, method: str, path: str, response: httpx.Response, expect_body: bool) -> Reply:
        status = response.status_code
        body: Any = None
        parsed = True
        if response.content:
            try:
                body = json.loads(response.content)
            except ValueError:
                parsed = False
        if status >= 400:
            if status >= 500:
                # 5xx bodies are often HTML from a proxy: the status is what matters.
                raise _Transient(
                    f"Zendesk answered {status} to {method} {path}", status=status, code="server"
                )
            raise error_for(status, body if isinstance(body, Mapping) else None)
        if not parsed or (expect_body and status != 204 and not isinstance(body, Mapping)):
            kind = response.headers.get("content-type", "no content type")
            raise ZendeskBadResponse(
                f"Zendesk answered {method} {path} with a body that is not the JSON expected "
                f"({kind}, {len(response.content)} bytes)",
                status=status,
                code="bad_response",
            )
        return Reply(status, body, response.headers)


def is_export(url: str) -> bool:
    """Whether ``url`` (or a path) is one of the incremental export endpoints."""
    # "in", not "startswith": a base URL may carry a path of its own (a proxy's prefix).
    return EXPORT_PATH in urlsplit(url).path


EXPORT_PATH = "/api/v2/incremental/"


class _Transient(ZendeskError):
    """A failure worth retrying where that is safe (transport, 5xx)."""


def _retryable(error: ZendeskError) -> bool:
    return isinstance(error, _Transient | ZendeskBadResponse)


def _is_too_many_jobs(response: httpx.Response) -> bool:
    # TooManyJobs means the job was not queued; waiting and resending is safe even for a POST.
    return response.status_code >= 400 and b"TooManyJobs" in response.content[:500]


def _retry_after(response: httpx.Response, default: float) -> float:
    raw = response.headers.get("retry-after")
    if raw is None:
        return default
    try:
        seconds = float(raw.strip())
    except ValueError:
        return default
    # Zendesk sometimes says 0; resending at once just earns another 429.
    return max(1.0, seconds)


def _rate_limited(method: str, path: str, response: httpx.Response) -> ZendeskError:
    if _is_too_many_jobs(response):
        return ZendeskTooManyJobs(
            f"Zendesk kept refusing {method} {path}: too many jobs queued on the account",
            status=response.status_code,
            code="TooManyJobs",
        )
    return ZendeskRateLimited(
        f"Zendesk kept rate-limiting {method} {path}", status=429, code="rate_limited"
    )
