"""What both sandbox apps share: the request pipeline, control endpoints and a settable clock."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

import attrs

from adapters.sandbox.faults import REFUSING_FAULTS, Controller
from adapters.sandbox.wsgi import (
    BadJSON,
    Match,
    Request,
    Response,
    Router,
    StartResponse,
    WSGIEnviron,
)

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service temporarily unavailable</title></head>"
    b"<body><h1>We'll be right back</h1><p>The service is undergoing maintenance.</p>"
    b"</body></html>"
)


@attrs.define
class FakeClock:
    """A settable clock (seconds since the epoch) for tests: `clock()` reads, `advance()` moves."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class SandboxApp:
    """Base of both sandboxes: parse, count, inject faults, dispatch under a lock, hold writes.

    Subclasses fill `self.router` and implement `authorise`, `error` and `dump`; handlers
    call `self.wrote()` when they changed data.
    """

    name = "sandbox"

    def __init__(self, controller: Controller | None) -> None:
        self.controller = controller if controller is not None else Controller()
        self.router = Router()
        self._lock = threading.RLock()
        self._wrote = False

    # -- to be provided by subclasses ----------------------------------------------------------

    def authorise(self, request: Request, match: Match) -> Response | None:
        """An error response when the request may not proceed (auth, rate limit), else None."""
        raise NotImplementedError

    def error(self, status: int, detail: str, request: Request) -> Response:
        """An error response in the API's own format."""
        raise NotImplementedError

    def dump(self) -> dict[str, Any]:
        """The full state as JSON-ready data."""
        raise NotImplementedError

    def decorate(self, response: Response, request: Request) -> Response:
        """Add headers every response carries (rate-limit counters and the like)."""
        return response

    def before_request(self, request: Request) -> None:
        """Hook run under the lock before each API request (e.g. to settle due jobs)."""

    # -- the pipeline ------------------------------------------------------------------------

    def app(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application."""
        request = Request.from_environ(environ)
        response = self.respond(request)
        if response.cut_off:
            # Tell a keep-alive server to drop the connection after this response.
            environ["sandbox.close_connection"] = True
        return response.send(start_response)

    def wrote(self) -> None:
        """Mark the current request as one that changed data (a write for the hold hook)."""
        self._wrote = True

    def respond(self, request: Request) -> Response:
        """Answer one request (control endpoints, faults, then the API itself)."""
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        found = self.router.match(request.method, request.path)
        template = found.route.template if isinstance(found, Match) else "(unrouted)"
        template = re.sub(r":\w+\}", "}", template)
        endpoint = f"{self.name} {request.method} {template}"
        self.controller.count_request(endpoint)
        fault = self.controller.pick_fault()
        if fault in REFUSING_FAULTS:
            return self._fault_response(str(fault), request)
        if fault == "delay":
            self.controller.sleep(self.controller.faults.delay_seconds)
        with self._lock:
            self._wrote = False
            response = self._dispatch(request, found)
            wrote, self._wrote = self._wrote, False
            response = self.decorate(response, request)
        if wrote:
            self.controller.note_write(f"{request.method} {request.path}")
        if fault == "cut_off" and response.body:
            response = attrs.evolve(response, cut_off=True)
        return response

    def _dispatch(self, request: Request, found: Match | str | None) -> Response:
        if found is None:
            return self.error(404, f"No route for {request.path}", request)
        if isinstance(found, str):
            return self.error(405, f"{request.method} is not allowed here", request)
        refused = self.authorise(request, found)
        if refused is not None:
            return refused
        self.before_request(request)
        try:
            return found.route.handler(request, **found.params)
        except BadJSON as exc:
            return self.error(400, f"The request body is not valid JSON: {exc}", request)

    def _fault_response(self, fault: str, request: Request) -> Response:
        faults = self.controller.faults
        if fault == "429":
            return self.error(429, "Too many requests (injected)", request).with_headers(
                [("Retry-After", str(faults.retry_after_seconds))]
            )
        if fault == "429_no_retry_after":
            return self.error(429, "Too many requests (injected)", request)
        if fault == "500":
            return self.error(500, "Internal server error (injected)", request)
        if fault == "html":
            return Response(
                faults.html_status, _HTML_PAGE, (("Content-Type", "text/html; charset=utf-8"),)
            )
        # 502 and 503 come from the proxy in front of the API: plain text, not the API's format.
        text = f"{fault} {'Bad Gateway' if fault == '502' else 'Service Unavailable'}\n"
        return Response(int(fault), text.encode(), (("Content-Type", "text/plain"),))

    def _control(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/_sandbox/dump" and request.method == "GET":
            with self._lock:
                return Response.json(200, self.dump())
        if path == "/_sandbox/control" and request.method == "GET":
            return Response.json(200, self.controller.state())
        if path == "/_sandbox/control" and request.method == "POST":
            try:
                command = json.loads(request.body or b"{}")
                if not isinstance(command, dict):
                    raise TypeError("the control command must be a JSON object")
                return Response.json(200, self.controller.apply(command))
            except (ValueError, TypeError) as exc:
                return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": f"no control endpoint {request.method} {path}"})
