"""Validate PowerOffice Go v2 traffic against the published OpenAPI document.

Shared by the adapter's contract tests and the sandbox's tests: both must speak the API the
spec describes, so each request a client sends and each response a server (or fixture) gives
is checked for path, verb, parameters, content type and body schema.

The document is read from ``../shared/fixtures/poweroffice-openapi/openapi.yaml`` beside the
repository, never copied in. ``load_spec()`` returns ``None`` when it is absent, so callers
can skip with :data:`SPEC_MISSING_REASON`.

How the spec is read (the OpenAPI 3.0 dialect turned into JSON Schema 2020-12):

- ``nullable: true`` becomes a ``null`` alternative.
- ``readOnly`` properties are rejected in request bodies (the server would ignore or refuse them).
- An untyped ``object`` with no properties (Swashbuckle's rendering of .NET ``object``, used for
  a JSON Patch operation's ``value``) accepts any JSON value: a patch replacing ``/Name`` sends
  a string, which the generated ``type: object`` would otherwise reject.
- The ``resourceParameter`` query parameter is an object sent exploded (``PageNumber=2&PageSize=…``
  as separate keys), the OpenAPI default for query objects.
- Only the statuses an operation lists are accepted. Its ``default`` response ("When request
  is not processed correctly a ProblemDetail object is returned") is read as the contract of
  the error *body*, not as a licence for any other status: a 204 where the operation lists
  only 200, or a 500, is off the document (replayed 5xx answers are marked ``off_spec``: they
  come from the gateway or a proxy, which the document does not describe).
- Error statuses the spec lists without a body (401, 403, 429) are checked against that
  ``default`` contract. Empty bodies are accepted there.
- Known gaps of the document are filled in :data:`KNOWN_GAPS`, each with its reason.
- The OAuth token endpoint is not part of the document; :func:`check_token_request` and
  :func:`check_token_response` check it against RFC 6749 section 4.4 instead.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
import jsonschema
import yaml

SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "fixtures"
    / "poweroffice-openapi"
    / "openapi.yaml"
)
SPEC_MISSING_REASON = (
    f"PowerOffice OpenAPI document not found at {SPEC_PATH.name} under ../shared/fixtures/"
    "poweroffice-openapi/ (it lives beside the repository, not in it)"
)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


KNOWN_GAPS: Mapping[tuple[str, str, str], str] = {
    # "200: Given when resource returned successfully" with no content declared, unlike every
    # other single-resource GET; the resource returned is plainly the department.
    ("get", "/Departments/{id}", "200"): "DepartmentDto",
}
"""(verb, path template, status) → the component schema the undeclared body has."""


class SpecViolationError(AssertionError):
    """Traffic that does not match the OpenAPI document; the message lists every problem."""


@functools.cache
def load_spec() -> OpenApiSpec | None:
    """The parsed document (once per process), or ``None`` when the file is absent."""
    if not SPEC_PATH.is_file():
        return None
    with SPEC_PATH.open("rb") as handle:
        raw = yaml.load(handle, Loader=_Loader)
    return OpenApiSpec(raw)


def _jsonable(value: Any) -> Any:
    """YAML turns example dates into ``date`` objects; JSON Schema wants plain JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _to_json_schema(schema: Any, *, request: bool) -> Any:
    """One OpenAPI 3.0 schema object as JSON Schema 2020-12 (see the module docstring)."""
    if isinstance(schema, list):
        return [_to_json_schema(s, request=request) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        # OpenAPI 3.0 ignores siblings of $ref.
        return {"$ref": schema["$ref"]}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("example", "examples", "description", "xml", "externalDocs", "nullable"):
            continue
        if key == "properties":
            props = {name: _to_json_schema(sub, request=request) for name, sub in value.items()}
            if request:
                for name, sub in value.items():
                    if isinstance(sub, dict) and sub.get("readOnly"):
                        props[name] = {"not": {}, "description": "readOnly: not sent"}
            out[key] = props
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _to_json_schema(value, request=request)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_to_json_schema(sub, request=request) for sub in value]
        else:
            out[key] = _jsonable(value)
    if schema.get("type") == "object" and not any(
        k in schema for k in ("properties", "additionalProperties", "allOf", "anyOf", "oneOf")
    ):
        out.pop("type")  # .NET ``object``: any JSON value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("nullable") and "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


@attrs.frozen
class _Route:
    template: str
    pattern: re.Pattern[str]
    operations: Mapping[str, Any]


class OpenApiSpec:
    """The document, indexed for checking traffic. Paths are relative to the base URL."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        schemas = raw["components"]["schemas"]
        self._components = {
            True: {"schemas": {n: _to_json_schema(s, request=True) for n, s in schemas.items()}},
            False: {"schemas": {n: _to_json_schema(s, request=False) for n, s in schemas.items()}},
        }
        routes = []
        for template, operations in raw["paths"].items():
            regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
            routes.append(_Route(template, re.compile(f"^{regex}$", re.IGNORECASE), operations))
        # Literal paths before templated ones, so /Customers/Foo wins over /Customers/{id}.
        self._routes = sorted(routes, key=lambda r: r.template.count("{"))

    # -- lookup -------------------------------------------------------------------------

    def operation(self, method: str, path: str) -> tuple[str, Mapping[str, Any], dict[str, str]]:
        """The path template, operation object and path parameters for ``method path``."""
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            op = route.operations.get(method.lower())
            if op is None:
                raise SpecViolationError(f"{method} is not an operation of {route.template}")
            names = re.findall(r"\{([^}]+)\}", route.template)
            return route.template, op, dict(zip(names, match.groups(), strict=True))
        raise SpecViolationError(f"no path in the spec matches {path}")

    def schema_validator(self, schema: Mapping[str, Any], *, request: bool) -> Any:
        """A jsonschema validator for an OpenAPI schema, with component ``$ref``s resolvable."""
        root = dict(_to_json_schema(schema, request=request))
        root["components"] = self._components[request]
        return jsonschema.Draft202012Validator(
            root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def _body_problems(self, schema: Mapping[str, Any], body: Any, *, request: bool) -> list[str]:
        validator = self.schema_validator(schema, request=request)
        return [
            f"body{''.join(f'[{p!r}]' for p in err.absolute_path)}: {err.message}"
            for err in validator.iter_errors(body)
        ]

    # -- requests -----------------------------------------------------------------------

    def check_request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        content_type: str | None,
        body: Any,
    ) -> None:
        """Raise :class:`SpecViolationError` unless this request is one the spec describes."""
        template, op, path_params = self.operation(method, path)
        problems: list[str] = []
        where = f"{method} {template}"
        declared: dict[str, Mapping[str, Any]] = {}
        in_path: dict[str, Mapping[str, Any]] = {}
        for param in op.get("parameters", []):
            schema = param.get("schema", {})
            if param["in"] == "query" and "$ref" in schema:
                target = self._resolve(schema["$ref"])
                for name, sub in target.get("properties", {}).items():
                    if not sub.get("readOnly"):
                        declared[name] = {"name": name, "schema": sub}
            elif param["in"] == "query":
                declared[param["name"]] = param
            elif param["in"] == "path":
                in_path[param["name"]] = param
        for name, value in path_params.items():
            if name in in_path:
                problems += self._param_problems(in_path[name], value)
        seen = set()
        for name, value in query:
            if name not in declared:
                problems.append(f"query parameter {name!r} is not declared")
                continue
            seen.add(name)
            problems += self._param_problems(declared[name], value)
        for name, param in declared.items():
            if param.get("required") and name not in seen:
                problems.append(f"required query parameter {name!r} is missing")
        body_spec = op.get("requestBody")
        if body_spec is None:
            if body not in (None, b"", ""):
                problems.append("a body was sent but the operation takes none")
        else:
            media = (content_type or "").split(";")[0].strip().lower()
            content = {k.lower(): v for k, v in body_spec["content"].items()}
            if media not in content:
                problems.append(f"content type {media!r} not among {sorted(content)}")
            else:
                problems += self._body_problems(content[media]["schema"], body, request=True)
        if problems:
            raise SpecViolationError(f"{where}: " + "; ".join(problems))

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        node: Any = self.raw
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]

    def _param_problems(self, param: Mapping[str, Any], raw: str) -> list[str]:
        schema = param.get("schema", {})
        kind = schema.get("type")
        name = param["name"]
        value: Any = raw
        try:
            if kind == "integer":
                value = int(raw)
            elif kind == "number":
                value = float(raw)
            elif kind == "boolean":
                if raw.lower() not in ("true", "false"):
                    return [f"parameter {name!r}={raw!r} is not a boolean"]
                value = raw.lower() == "true"
        except ValueError:
            return [f"parameter {name!r}={raw!r} is not {kind}"]
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                return [f"parameter {name!r}={raw!r} is not a date-time"]
        errors = list(self.schema_validator(schema, request=True).iter_errors(value))
        return [f"parameter {name!r}: {e.message}" for e in errors]

    # -- responses ----------------------------------------------------------------------

    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str | None,
        body: Any,
        *,
        empty: bool = False,
    ) -> None:
        """Raise :class:`SpecViolationError` unless the spec allows this response to this request.

        ``body`` is the parsed JSON (ignored when ``empty``).
        """
        template, op, _ = self.operation(method, path)
        where = f"{method} {template} -> {status}"
        responses = op.get("responses", {})
        spec = responses.get(str(status))
        if spec is None:
            # ``default`` describes the error body ("a ProblemDetail object is returned"); it is
            # no licence for a status the operation does not list (see the module docstring).
            listed = sorted(code for code in responses if code != "default")
            raise SpecViolationError(f"{where}: status not documented (the spec lists {listed})")
        content = spec.get("content")
        gap = KNOWN_GAPS.get((method.lower(), template, str(status)))
        if gap is not None:
            content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{gap}"}}}
        if not content:
            if 200 <= status < 300:
                if not empty:
                    raise SpecViolationError(f"{where}: the spec documents no body, one was sent")
                return
            if empty:
                return
            # Error statuses without a declared body: "a ProblemDetail object is returned".
            content = {
                "application/json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
            }
        if empty:
            raise SpecViolationError(f"{where}: the spec documents a body, none was sent")
        media = (content_type or "").split(";")[0].strip().lower()
        allowed = {k.lower(): v for k, v in content.items()}
        if status >= 400 and media == "application/problem+json":
            media = "application/json"  # RFC 7807's own media type for the same document
        if media not in allowed:
            raise SpecViolationError(f"{where}: content type {media!r} not among {sorted(allowed)}")
        problems = self._body_problems(allowed[media]["schema"], body, request=False)
        if problems:
            raise SpecViolationError(f"{where}: " + "; ".join(problems))

    # -- httpx helpers ------------------------------------------------------------------

    def check_httpx_request(self, request: httpx.Request, base_path: str) -> None:
        """Check a request an httpx client sent; ``base_path`` is e.g. ``/v2`` or ``/Demo/v2``."""
        path = _relative(request.url.path, base_path)
        content_type = request.headers.get("content-type")
        raw = request.content
        body: Any = json.loads(raw) if raw else None
        query = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
        self.check_request(request.method, path, query, content_type, body)

    def check_httpx_response(self, response: httpx.Response, base_path: str) -> None:
        """Check a response to a request under ``base_path``."""
        request = response.request
        path = _relative(request.url.path, base_path)
        raw = response.content
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            raise SpecViolationError(f"{request.method} {path}: body is not JSON") from None
        self.check_response(
            request.method,
            path,
            response.status_code,
            response.headers.get("content-type"),
            body,
            empty=not raw,
        )


def _relative(path: str, base_path: str) -> str:
    if not path.lower().startswith(base_path.lower()):
        raise SpecViolationError(f"{path} is not under the API base path {base_path}")
    return path[len(base_path) :] or "/"


# -- OAuth (not in the document) ---------------------------------------------------------


def check_token_request(request: httpx.Request) -> tuple[str, str]:
    """Check an RFC 6749 client-credentials token request; return (application, client) keys."""
    problems = []
    if request.method != "POST":
        problems.append(f"token call must be POST, was {request.method}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != "application/x-www-form-urlencoded":
        problems.append(f"token body must be form-encoded, was {ctype!r}")
    form = dict(parse_qsl(request.content.decode("ascii")))
    if form.get("grant_type") != "client_credentials":
        problems.append("grant_type must be client_credentials")
    if not request.headers.get("ocp-apim-subscription-key"):
        problems.append("the subscription-key header is missing")
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Basic "):
        problems.append("client authentication must be HTTP Basic")
        raise SpecViolationError("token request: " + "; ".join(problems))
    user, _, password = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
    if problems:
        raise SpecViolationError("token request: " + "; ".join(problems))
    return user, password


def check_token_response(response: httpx.Response) -> None:
    """Check a token response: 200 with access_token, token_type and expires_in, else 400/401."""
    body = response.json() if response.content else None
    if response.status_code == 200:
        if not isinstance(body, dict):
            raise SpecViolationError("token response must be a JSON object")
        missing = [k for k in ("access_token", "token_type", "expires_in") if k not in body]
        if missing or not isinstance(body.get("expires_in"), int):
            raise SpecViolationError(f"token response lacks {missing or ['integer expires_in']}")
    elif response.status_code in (400, 401):
        if body is not None and not (isinstance(body, dict) and "error" in body):
            raise SpecViolationError("token error must be {error, error_description}")
    else:
        raise SpecViolationError(f"token endpoint status {response.status_code} not expected")
