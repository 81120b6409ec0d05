"""Serve both sandboxes on loopback sockets, in background threads (HTTP/1.1 keep-alive)."""

from __future__ import annotations

import contextlib
import socketserver
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, Self
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import attrs

from adapters.sandbox.accounts import PowerOfficeGateway, ZendeskAccounts
from adapters.sandbox.faults import Controller, FaultConfig
from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.wsgi import WSGIApp
from adapters.sandbox.zendesk import ZendeskSandbox


class _Handler(ServerHandler):
    # wsgiref speaks HTTP/1.0 by default; every sandbox response carries a Content-Length,
    # so answering as 1.1 and keeping the connection open is safe.
    http_version = "1.1"


class _RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # drop idle keep-alive connections eventually

    def handle(self) -> None:
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if not self.raw_requestline or len(self.raw_requestline) > 65536:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        handler = _Handler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]
            self.get_stderr(),
            environ,
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]
        if environ.get("sandbox.close_connection"):
            self.close_connection = True
        try:
            self.wfile.flush()
        except (ConnectionError, ValueError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and demos do not want a line per request on stderr."""


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False


def _start(app: WSGIApp, host: str, port: int) -> tuple[_ThreadingServer, threading.Thread]:
    server = _ThreadingServer((host, port), _RequestHandler)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    return server, thread


class _Serving:
    """What is being served stops when its ``with`` block ends (``stop``)."""

    _servers: list[tuple[_ThreadingServer, threading.Thread]]

    def _shutdown(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()

    def stop(self) -> None:
        """Stop serving."""
        self._shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@attrs.define
class RunningSandboxes(_Serving):
    """Both sandboxes being served; use as a context manager (stops on exit)."""

    poweroffice: PowerOfficeSandbox
    zendesk: ZendeskSandbox
    poweroffice_url: str
    zendesk_url: str
    controller: Controller
    _servers: list[tuple[_ThreadingServer, threading.Thread]] = attrs.field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that point talksync at these sandboxes."""
        po = self.poweroffice.credentials
        zd = self.zendesk.credentials
        return {
            "TALKSYNC_POWEROFFICE_BASE_URL": f"{self.poweroffice_url}/v2",
            "TALKSYNC_POWEROFFICE_TOKEN_URL": f"{self.poweroffice_url}/OAuth/Token",
            "TALKSYNC_POWEROFFICE_APPLICATION_KEY": po.application_key,
            "TALKSYNC_POWEROFFICE_CLIENT_KEY": po.client_key,
            "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY": po.subscription_key,
            "TALKSYNC_ZENDESK_BASE_URL": f"{self.zendesk_url}/api/v2",
            "TALKSYNC_ZENDESK_EMAIL": zd.email,
            "TALKSYNC_ZENDESK_API_TOKEN": zd.api_token,
        }

    def stop(self) -> None:
        """Stop serving (releasing any withheld response first, so threads can finish)."""
        self.controller.release()
        self._shutdown()


def serve_sandboxes(
    po: PowerOfficeSandbox,
    zd: ZendeskSandbox,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    faults: FaultConfig | None = None,
) -> RunningSandboxes:
    """Serve both apps on free loopback ports (`port` is PowerOffice's; Zendesk takes the next
    free one) and share one fault/hold controller between them."""
    controller = po.controller
    if faults is not None:
        controller.configure(faults)
    zd.controller = controller
    po_server = _start(po.app, host, port)
    zd_server = _start(zd.app, host, port + 1 if port else 0)
    po_url = f"http://{host}:{po_server[0].server_address[1]}"
    zd_url = f"http://{host}:{zd_server[0].server_address[1]}"
    zd.base_url = zd_url
    return RunningSandboxes(po, zd, po_url, zd_url, controller, [po_server, zd_server])


@attrs.define
class RunningAccounts(_Serving):
    """A PowerOffice gateway (many clients, one subscription key) and many Zendesk accounts
    being served; use as a context manager (stops on exit)."""

    gateway: PowerOfficeGateway
    zendesk: ZendeskAccounts
    poweroffice_url: str
    zendesk_url: str
    _servers: list[tuple[_ThreadingServer, threading.Thread]] = attrs.field(repr=False)

    def poweroffice_env(self) -> dict[str, str]:
        """What every tenant shares: the PowerOffice URLs and the integration's two keys (the
        client key is per tenant)."""
        return {
            "TALKSYNC_POWEROFFICE_BASE_URL": f"{self.poweroffice_url}/v2",
            "TALKSYNC_POWEROFFICE_TOKEN_URL": f"{self.poweroffice_url}/OAuth/Token",
            "TALKSYNC_POWEROFFICE_APPLICATION_KEY": self.gateway.application_key,
            "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY": self.gateway.subscription_key,
        }

    def zendesk_account_url(self, account: str) -> str:
        """One account's URL (``<server>/<account>``; its API is under ``/api/v2`` below it)."""
        return f"{self.zendesk_url}/{account}"


def serve_accounts(
    gateway: PowerOfficeGateway, zendesk: ZendeskAccounts, host: str = "127.0.0.1"
) -> RunningAccounts:
    """Serve the gateway and the Zendesk accounts on free loopback ports."""
    po_server = _start(gateway.app, host, 0)
    zd_server = _start(zendesk.app, host, 0)
    po_url = f"http://{host}:{po_server[0].server_address[1]}"
    zd_url = f"http://{host}:{zd_server[0].server_address[1]}"
    zendesk.point_at(zd_url)
    return RunningAccounts(gateway, zendesk, po_url, zd_url, [po_server, zd_server])


def serve_forever(
    size: int,
    seed: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    zendesk_rate_limit: int | None = None,
    poweroffice_rate_limit: int | None = None,
    faults: FaultConfig | None = None,
    out: IO[str] | None = None,
    wait: Callable[[], None] | None = None,
) -> None:
    """Seed both sandboxes, print `export NAME=value` lines for them, serve until interrupted."""
    from adapters.sandbox.seed import seed_sandboxes

    po = PowerOfficeSandbox(rate_limit=poweroffice_rate_limit)
    zd = ZendeskSandbox(rate_limit=zendesk_rate_limit)
    seed_sandboxes(po, zd, size=size, seed=seed)
    stream = out or sys.stdout
    with serve_sandboxes(po, zd, host, port, faults=faults) as running:
        for name, value in running.env().items():
            print(f"export {name}={value}", file=stream)
        print(f"# control: {running.poweroffice_url}/_sandbox/control", file=stream)
        stream.flush()
        with contextlib.suppress(KeyboardInterrupt):
            (wait or threading.Event().wait)()
