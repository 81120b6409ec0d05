"""A tiny WSGI toolkit for the sandboxes: request parsing, responses and a path router.

Hand-written on purpose: the sandboxes must run on the standard library (plus attrs), and they
need only a sliver of what a web framework offers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import attrs

JSONValue = Any
StartResponse = Callable[..., Any]
WSGIEnviron = dict[str, Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of an HTTP status (``Unknown`` for one the standard lacks)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class BadJSON(ValueError):
    """The request body is not valid JSON."""


@attrs.frozen
class Request:
    """One parsed HTTP request; the body is read completely up front (keep-alive needs that)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str
    query_string: str = ""
    """The query as it came over the wire, still percent-encoded."""

    @classmethod
    def from_environ(cls, environ: WSGIEnviron) -> Request:
        """Parse a WSGI environ, consuming the whole request body."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        host = headers.get("host") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        raw_path = str(environ.get("PATH_INFO", "/"))
        # PEP 3333 hands PATH_INFO over as latin-1 decoded bytes; undo that for UTF-8 paths.
        path = raw_path.encode("latin-1").decode("utf-8", errors="replace")
        return cls(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path=path,
            query=parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=f"{scheme}://{host}",
            query_string=str(environ.get("QUERY_STRING", "")),
        )

    def param(self, name: str, *, ignore_case: bool = False) -> str | None:
        """The first value of a query parameter, or None."""
        if not ignore_case:
            values = self.query.get(name)
            return values[0] if values else None
        wanted = name.lower()
        for key, values in self.query.items():
            if key.lower() == wanted and values:
                return values[0]
        return None

    def params(self, name: str, *, ignore_case: bool = False) -> list[str]:
        """All values of a query parameter (repeated or comma-separated), without blanks."""
        wanted = name.lower() if ignore_case else name
        out: list[str] = []
        for key, values in self.query.items():
            if (key.lower() if ignore_case else key) == wanted:
                for value in values:
                    out.extend(part.strip() for part in value.split(",") if part.strip())
        return out

    def json(self) -> JSONValue:
        """The body decoded as JSON (None for an empty body); raises BadJSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadJSON(str(exc)) from exc

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@attrs.frozen
class Response:
    """An HTTP response the sandbox sends back; `cut_off` asks for a truncated body."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    cut_off: bool = False

    @classmethod
    def json(
        cls, status: int, payload: JSONValue, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """A JSON response."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(
            status=status,
            body=body,
            headers=(("Content-Type", "application/json; charset=utf-8"), *headers),
        )

    @classmethod
    def empty(cls, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A response without a body."""
        return cls(status=status, headers=tuple(headers))

    def with_headers(self, extra: Iterable[tuple[str, str]]) -> Response:
        """The same response with more headers."""
        return attrs.evolve(self, headers=(*self.headers, *extra))

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def send(self, start_response: StartResponse) -> Iterable[bytes]:
        """Hand the response to a WSGI server."""
        reason = reason_phrase(self.status)
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        if not self.cut_off:
            headers.append(("Content-Length", str(len(self.body))))
            start_response(f"{self.status} {reason}", headers)
            return [self.body]
        # Promise more bytes than we send, then break the connection: the client sees a
        # body cut off in the middle, like a proxy dying mid-transfer.
        headers.append(("Content-Length", str(len(self.body) + 512)))
        start_response(f"{self.status} {reason}", headers)
        return _truncated(self.body)


def _truncated(body: bytes) -> Iterator[bytes]:
    half = body[: max(1, len(body) // 2)]
    yield half
    raise ConnectionAbortedError("sandbox fault: response cut off mid-body")


Handler = Callable[..., Response]


@attrs.frozen
class Route:
    """One route: a method, a compiled path pattern and its handler."""

    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


@attrs.frozen
class Match:
    """A matched route with its path parameters."""

    route: Route
    params: dict[str, str]


_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_KINDS = {"int": r"-?\d+", "str": r"[^/]+?"}


@attrs.define
class Router:
    """Maps (method, path) to handlers; `{name}` or `{name:int}` capture path segments."""

    suffix: str = ""
    ignore_case: bool = False
    routes: list[Route] = attrs.Factory(list)

    def add(self, method: str, template: str, handler: Handler) -> None:
        """Register a handler for a method and a path template."""
        regex = ""
        last = 0
        for found in _PARAM.finditer(template):
            regex += re.escape(template[last : found.start()])
            regex += f"(?P<{found.group(1)}>{_KINDS[found.group(2) or 'str']})"
            last = found.end()
        regex += re.escape(template[last:])
        if self.suffix:
            regex += f"(?:{re.escape(self.suffix)})?"
        flags = re.IGNORECASE if self.ignore_case else 0
        self.routes.append(Route(method, template, re.compile(f"^{regex}$", flags), handler))

    def match(self, method: str, path: str) -> Match | str | None:
        """The matching route; the string "method" when only the method is wrong; else None."""
        path_matched = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return Match(route, found.groupdict())
            path_matched = True
        return "method" if path_matched else None
