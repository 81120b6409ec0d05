"""RFC 7807 ProblemDetails answers turned into WriteErrors that name the record and field."""

from __future__ import annotations

import re
from collections.abc import Iterable

from adapters.http import Reply
from adapters.poweroffice.mapping import WIRE_NAMES, logical_name
from adapters.poweroffice.wire import ProblemDetailsDto, structure_or_problems
from talkcore.ports import WriteError
from talkcore.records import Kind

_CODES = {400: "invalid", 404: "not_found", 409: "conflict", 422: "invalid"}


def parse_problem(reply: Reply) -> ProblemDetailsDto:
    """The ProblemDetails in an error reply (a bare one when the body is something else)."""
    parsed = structure_or_problems(reply.body, ProblemDetailsDto)
    if isinstance(parsed, ProblemDetailsDto):
        return parsed
    if isinstance(reply.body, dict):
        # The errors map did not fit; keep the plain RFC 7807 members.
        body = {k: v for k, v in reply.body.items() if str(k).casefold() != "errors"}
        again = structure_or_problems(body, ProblemDetailsDto)
        if isinstance(again, ProblemDetailsDto):
            return again
    detail = reply.body if isinstance(reply.body, str) else None
    return ProblemDetailsDto(status=reply.status, detail=detail)


def describe(problem: ProblemDetailsDto, status: int) -> str:
    """A one-line message from a ProblemDetails: status, title and detail."""
    parts = [p for p in (problem.title, problem.detail) if p]
    if problem.errors:
        parts += [f"{name}: {'; '.join(msgs)}" for name, msgs in problem.errors.items()]
    return f"PowerOffice answered {status}: " + (" — ".join(parts) or "no details given")


def problem_field(kind: Kind, problem: ProblemDetailsDto, sent: Iterable[str]) -> str | None:
    """The logical field a problem is about: its ``errors`` keys, else a wire name in its text."""
    for name in problem.errors or {}:
        logical = logical_name(kind, name.lstrip("$.").lstrip("/"))
        if logical:
            return logical
    text = " ".join(p for p in (problem.title, problem.detail) if p)
    candidates = [*sent, *WIRE_NAMES[kind].values()]
    for wire in candidates:
        if re.search(rf"\b{re.escape(wire)}\b", text, re.IGNORECASE):
            return logical_name(kind, wire)
    return None


def write_error(
    kind: Kind, reply: Reply, record: str, sent: Iterable[str] = (), *, code: str | None = None
) -> WriteError:
    """The WriteError for a write PowerOffice refused with ``reply``."""
    problem = parse_problem(reply)
    return WriteError(
        code or _CODES.get(reply.status, f"http_{reply.status}"),
        describe(problem, reply.status),
        record,
        problem_field(kind, problem, sent),
    )
