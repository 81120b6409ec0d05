"""Many accounts behind one sandbox server: the shape of a hosted, many-tenant deployment.

:class:`PowerOfficeGateway` stands for PowerOffice's API gateway: many PowerOffice clients (one
:class:`PowerOfficeSandbox` per client key, each with its own data) under one subscription key,
whose rate limit is enforced across all of them, as the real gateway does. It records how many
requests arrived in every one-second window (``per_second``), so a test can show the sum of
all workers' requests never went over the limit.

:class:`ZendeskAccounts` serves many Zendesk accounts, one :class:`ZendeskSandbox` each, by
path prefix: ``/<account>/api/v2/...``. The prefix becomes part of the base URL the account's
links are built from, so its pagination links lead back to it.

Both can wait ``latency`` seconds before answering, so a benchmark behaves like the internet
rather than loopback. Only the serving layer is here: the sandboxes themselves are unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping

from adapters.sandbox.poweroffice import PowerOfficeCredentials, PowerOfficeSandbox
from adapters.sandbox.wsgi import Request, Response, StartResponse, WSGIEnviron
from adapters.sandbox.zendesk import ZendeskSandbox

OAUTH_ENDPOINT = "/oauth/token"


class PowerOfficeGateway:
    """Many PowerOffice clients under one subscription key, one rate limit over them all.

    ``rate_limit`` requests per second (sliding one-second window, as the sandbox's own) are
    let through; more get the gateway's 429. ``per_second`` counts every request that arrived
    with the subscription key, by whole second of ``clock`` time (accepted or not).
    """

    def __init__(
        self,
        client_keys: Iterable[str],
        *,
        subscription_key: str | None = None,
        application_key: str | None = None,
        rate_limit: int | None = 10,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        sandbox: Callable[[PowerOfficeCredentials], PowerOfficeSandbox] | None = None,
    ) -> None:
        self.subscription_key = subscription_key or secrets.token_hex(16)
        self.application_key = application_key or secrets.token_hex(16)
        self.rate_limit = rate_limit
        self.latency = latency
        self.clock = clock
        self.sleep = sleep
        make = sandbox or (lambda creds: PowerOfficeSandbox(credentials=creds))
        #: One sandbox per client key; their own rate limits stay off (the gateway's applies).
        self.clients: dict[str, PowerOfficeSandbox] = {
            key: make(self.credentials(key)) for key in client_keys
        }
        if not self.clients:
            raise ValueError("a PowerOffice gateway needs at least one client key")
        #: Requests that arrived with the subscription key, by whole second of clock time.
        self.per_second: Counter[int] = Counter()
        self._window: deque[float] = deque()
        self._owners: dict[str, PowerOfficeSandbox] = {}
        self._lock = threading.Lock()

    def credentials(self, client_key: str) -> PowerOfficeCredentials:
        """The three keys a client of this gateway uses."""
        return PowerOfficeCredentials(self.application_key, client_key, self.subscription_key)

    def max_per_second(self) -> int:
        """The most requests that arrived in any one-second window (0 before any)."""
        with self._lock:
            return max(self.per_second.values(), default=0)

    def app(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: count, throttle, route to the client's sandbox, answer."""
        if self.latency > 0:
            self.sleep(self.latency)
        request = Request.from_environ(environ)
        client = self._client_of(request)
        throttled = self._throttle(request, client)
        response = throttled or client.respond(request)
        if request.path.lower() == OAUTH_ENDPOINT and response.status == 200:
            self._remember_token(response, client)
        if response.cut_off:
            environ["sandbox.close_connection"] = True
        return response.send(start_response)

    def _client_of(self, request: Request) -> PowerOfficeSandbox:
        # A token request names its client key (Basic application:client); an API call names
        # its token, which the gateway saw issued. Anything else goes to the first client,
        # whose own checks answer it (401, 404) like the real API would.
        first = next(iter(self.clients.values()))
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return first
            return self.clients.get(decoded.partition(":")[2], first)
        with self._lock:
            return self._owners.get(credential.strip(), first)

    def _throttle(self, request: Request, client: PowerOfficeSandbox) -> Response | None:
        key = request.headers.get("ocp-apim-subscription-key")
        if key is None or not secrets.compare_digest(key, self.subscription_key):
            return None  # the client's sandbox refuses it as the gateway would
        now = self.clock()
        with self._lock:
            self.per_second[int(now)] += 1
            if self.rate_limit is None:
                return None
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= self.rate_limit:
                return client.error(
                    429, "Rate limit is exceeded. Try again in 1 seconds.", request
                ).with_headers([("Retry-After", "1")])
            self._window.append(now)
            return None

    def _remember_token(self, response: Response, client: PowerOfficeSandbox) -> None:
        try:
            token = json.loads(response.body)["access_token"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self._owners[str(token)] = client


class ZendeskAccounts:
    """Many Zendesk accounts on one server, by path prefix (see the module docstring)."""

    def __init__(
        self,
        accounts: Mapping[str, ZendeskSandbox],
        *,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name in accounts:
            if not name or "/" in name:
                raise ValueError(f"a Zendesk account name must be one path segment: {name!r}")
        self.accounts = dict(accounts)
        self.latency = latency
        self.sleep = sleep

    def point_at(self, server_url: str) -> None:
        """Tell every account the URL it is served at (its ``base_url`` for rendered links)."""
        for name, account in self.accounts.items():
            account.base_url = f"{server_url}/{name}"

    def app(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: strip ``/<account>``, answer from that account's sandbox."""
        if self.latency > 0:
            self.sleep(self.latency)
        path = str(environ.get("PATH_INFO", "/"))
        name, _, rest = path.lstrip("/").partition("/")
        account = self.accounts.get(name)
        if account is None:
            body = {"error": "InvalidEndpoint", "description": f"No Zendesk account {name!r}"}
            return Response.json(404, body).send(start_response)
        inner = dict(environ)
        inner["PATH_INFO"] = f"/{rest}"
        inner["SCRIPT_NAME"] = f"{environ.get('SCRIPT_NAME', '')}/{name}"
        # The sandbox builds its links from the Host header; the prefix rides along in it, so
        # ``next_page`` and ``url`` fields lead back to this account.
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        inner["HTTP_HOST"] = f"{host}/{name}"
        return account.app(inner, start_response)
