"""Wire DTOs for the parts of Zendesk's JSON we use, and the private converter that reads them.

Only the fields we need are declared; cattrs ignores the rest, so new Zendesk fields never break
a read. Every response is structured here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs

T = TypeVar("T")


@attrs.frozen
class UserDTO:
    """A Zendesk user (``/users``, ``/incremental/users``, ``show_many``)."""

    id: int
    name: str | None = None
    email: str | None = None
    organization_id: int | None = None
    external_id: str | None = None
    role: str | None = None
    active: bool = True
    updated_at: datetime | None = None


@attrs.frozen
class OrganizationDTO:
    """A Zendesk organization; the incremental export also sends deleted ones."""

    id: int
    name: str | None = None
    external_id: str | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


@attrs.frozen
class IdentityDTO:
    """A user identity (an e-mail address, phone number, ...)."""

    id: int
    type: str | None = None
    value: str | None = None
    primary: bool = False


@attrs.frozen
class MembershipDTO:
    """A user's membership of an organization; ``default`` is the user's ``organization_id``."""

    id: int
    organization_id: int | None = None
    default: bool = False


@attrs.frozen
class JobResultDTO:
    """One item of a finished bulk job."""

    status: str | None = None
    id: int | None = None
    index: int | None = None
    external_id: str | None = None
    error: str | None = None
    details: Any = None
    success: bool | None = None


@attrs.frozen
class JobStatusDTO:
    """A background job (``/job_statuses/{id}``)."""

    id: str
    status: str = "queued"
    total: int | None = None
    message: str | None = None
    results: list[JobResultDTO] | None = None


@attrs.frozen
class CursorMeta:
    """``meta`` of a cursor-paginated list."""

    has_more: bool = False
    after_cursor: str | None = None


@attrs.frozen
class CursorLinks:
    """``links`` of a cursor-paginated list."""

    next: str | None = None


@attrs.frozen
class IncrementalUsersPage:
    """A page of the cursor-based incremental user export."""

    after_cursor: str | None = None
    end_of_stream: bool = False


@attrs.frozen
class IncrementalTimePage:
    """A page of a time-based incremental export."""

    end_time: int | None = None
    next_page: str | None = None
    end_of_stream: bool = False


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, int | float):
        from datetime import UTC

        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value))


def _structure_str(value: Any, _: type) -> str:
    # external_id and friends are strings, but numbers sent by older integrations are kept.
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return int(value)


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


_converter = cattrs.Converter()
_converter.register_structure_hook(datetime, _structure_datetime)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(bool, _structure_bool)


def structure(data: Any, cls: type[T]) -> T:
    """One DTO from JSON; raises ``WireError`` naming the field that did not fit."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs raises class-validation groups; flatten them
        raise WireError(cls.__name__, _first_problem(exc)) from exc


class WireError(ValueError):
    """A JSON object did not fit its DTO."""

    def __init__(self, what: str, problem: tuple[str, str]) -> None:
        super().__init__(f"{what}: field {problem[0]!r}: {problem[1]}")
        self.field = problem[0]
        self.problem = problem[1]


def _first_problem(exc: BaseException) -> tuple[str, str]:
    messages = cattrs.transform_error(exc) if isinstance(exc, cattrs.BaseValidationError) else []
    for message in messages:
        # "invalid value for type, expected int @ $.id"
        text, _, where = message.partition(" @ ")
        field = where.removeprefix("$.").split(".")[0] or "?"
        return field, text
    return "?", str(exc)


def items(body: Any, key: str) -> list[Any]:
    """The list under ``key`` of a response (empty when absent or null)."""
    if isinstance(body, Mapping):
        value = body.get(key)
        if isinstance(value, list):
            return value
    return []


def member(body: Any, key: str) -> Any:
    """The object under ``key`` of a response (``None`` when absent)."""
    return body.get(key) if isinstance(body, Mapping) else None
