"""Wire DTOs of PowerOffice Go v2 and the private cattrs converter that reads them.

Live JSON casing is unconfirmed (the spec says PascalCase), so every object's keys are folded
to lower case before structuring, and each DTO attribute is renamed to its folded wire name.
Unknown fields are ignored. Types are checked strictly: a string where a number belongs is a
problem to report, not something to coerce silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

T = TypeVar("T")


def wire_name(attribute: str) -> str:
    """The PascalCase wire name of a snake_case attribute (``email_address`` → ``EmailAddress``)."""
    return "".join(part.capitalize() for part in attribute.split("_"))


@attrs.frozen
class CustomerDto:
    """``CustomerDto``: the fields the sync uses."""

    id: int
    name: str | None = None
    email_address: str | None = None
    is_person: bool | None = None
    first_name: str | None = None
    last_name: str | None = None
    number: int | None = None
    is_active: bool | None = None
    is_archived: bool | None = None
    external_import_reference: str | None = None
    last_changed_date_time_offset: datetime | None = None


@attrs.frozen
class ContactPersonDto:
    """``ContactPersonDto``: ``contact_id`` is the customer or supplier it belongs to."""

    id: int
    contact_id: int
    email_address: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_active: bool | None = None
    external_code: str | None = None
    last_changed_date_time_offset: datetime | None = None


@attrs.frozen
class DepartmentDto:
    """``DepartmentDto``."""

    id: int
    name: str | None = None
    code: str | None = None
    is_active: bool | None = None
    last_changed_date_time_offset: datetime | None = None


@attrs.frozen
class SupplierDto:
    """``SupplierDto``: read only so a contact person's ``ContactId`` can be told a supplier."""

    id: int
    name: str | None = None
    is_active: bool | None = None
    is_archived: bool | None = None
    last_changed_date_time_offset: datetime | None = None


@attrs.frozen
class ProblemDetailsDto:
    """RFC 7807 ``ProblemDetails``, plus ASP.NET's ``errors`` map when a validation failed."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    errors: dict[str, list[str]] | None = None


@attrs.frozen
class TokenDto:
    """The OAuth2 token response (RFC 6749 names, snake_case on the wire)."""

    access_token: str = attrs.field(repr=False)
    expires_in: int
    token_type: str | None = None


def _strict(kind: type[T], name: str) -> Callable[[Any, Any], T]:
    def structure(value: Any, _: Any) -> T:
        # bool is an int in Python; the wire distinguishes them.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected a date-time string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    # The API documents offsets; a naive stamp is read as UTC rather than local time.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _folded(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return {str(key).casefold(): item for key, item in value.items()}


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook(datetime, _datetime)
    for cls in (
        CustomerDto,
        ContactPersonDto,
        DepartmentDto,
        SupplierDto,
        ProblemDetailsDto,
        TokenDto,
    ):
        renames = {
            a.name: override(rename=wire_name(a.name).casefold())
            for a in attrs.fields(cls)
            if cls is not TokenDto
        }
        inner = make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]

        def hook(value: Any, cls_: Any, inner: Any = inner) -> Any:
            return inner(_folded(value), cls_)

        converter.register_structure_hook(cls, hook)
    return converter


_CONVERTER = _make_converter()


@attrs.frozen
class FieldProblem:
    """One field of one wire object that could not be read."""

    field: str
    message: str


def structure(value: Any, cls: type[T]) -> T:
    """``value`` (parsed JSON) as ``cls``; raises ``cattrs`` errors when it does not fit."""
    return _CONVERTER.structure(value, cls)


def structure_or_problems(value: Any, cls: type[T]) -> T | list[FieldProblem]:
    """``value`` as ``cls``, or every field that stopped it, named by wire (PascalCase) name."""
    try:
        return _CONVERTER.structure(value, cls)
    except cattrs.ClassValidationError as exc:
        problems = []
        for inner, note in exc.group_exceptions()[0]:
            field = wire_name(note.name)
            if isinstance(inner, KeyError):
                problems.append(FieldProblem(field, "required field is missing"))
            else:
                problems.append(FieldProblem(field, str(inner)))
        for inner in exc.group_exceptions()[1]:
            problems.append(FieldProblem("", str(inner)))
        return problems
    except (TypeError, ValueError) as exc:
        return [FieldProblem("", str(exc))]


def raw_id(value: Any) -> str | None:
    """The ``Id`` of a wire object if it has a usable one (for naming a broken record)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).casefold() == "id" and isinstance(item, int | str) and item != "":
                return str(item)
    return None
