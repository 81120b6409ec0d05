"""Query parameters of the PowerOffice sandbox's list endpoints, as the OpenAPI document has them.

Each list honours exactly the filters the document declares for it (:data:`LIST_FILTERS`) and
ignores any other parameter, as ASP.NET model binding does with names it does not bind. A filter
given as null or whitespace is not used ("If null or whitespace, the filter is not used").

Time filters accept the document's own example format, ``2021-09-25 08:03:00.1234567 -00:00``
(a space for ``T``, seven fraction digits, a space before the offset), besides RFC 3339, and a
``+`` that a client left unencoded (which arrives as a space).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from adapters.sandbox.wsgi import Request

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Invalid(Exception):
    """A validation failure naming the offending property or parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class Entry:
    """One stored row as a filter sees it: wire fields and change stamps (epoch microseconds)."""

    row: Mapping[str, Any]
    changed: int
    created: int


Predicate = Callable[[Entry], bool]
Filter = Callable[[str, Request], Predicate | None]
"""Builds the predicate for parameter ``name`` of a request; None when the filter is not used."""


# -- time -----------------------------------------------------------------------------------

_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
    r"\s*(?:(?P<zone>Z|[+-]\d{2}:?\d{2})|(?<=\s)(?P<lost_plus>\d{2}:?\d{2}))?$",
    re.IGNORECASE,
)


def parse_time(name: str, raw: str) -> datetime:
    """A timestamp in any of the forms the module docstring lists; no offset means UTC."""
    found = _TIME.match(raw.strip())
    if found is None:
        raise Invalid(name, f"The value '{raw}' is not a valid date and time.")
    fraction = (found["fraction"] or "")[:6].ljust(6, "0")  # .NET ticks are 100 ns
    zone = found["zone"] or (f"+{found['lost_plus']}" if found["lost_plus"] else "+00:00")
    if zone.upper() == "Z":
        zone = "+00:00"
    try:
        return datetime.fromisoformat(f"{found['date']}T{found['time']}.{fraction}{zone}")
    except ValueError as exc:  # 2021-02-30 and the like
        raise Invalid(name, f"The value '{raw}' is not a valid date and time.") from exc


def epoch_us(moment: datetime) -> int:
    """``moment`` in epoch microseconds, the unit of the sandbox's change stamps."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _after(stamp: str) -> Filter:
    """Rows whose ``stamp`` (``changed`` or ``created``) is after the time given (exclusive)."""

    def build(name: str, request: Request) -> Predicate | None:
        raw = request.param(name, ignore_case=True)
        if raw is None or not raw.strip():
            return None
        moment = epoch_us(parse_time(name, raw))
        return lambda entry: getattr(entry, stamp) > moment

    return build


# -- values ---------------------------------------------------------------------------------


def _number_ranges(name: str, values: Sequence[str]) -> list[tuple[int, int | None]]:
    """``"10000-11000, 12000, 13000-"`` as inclusive ranges (an open end is None)."""
    ranges: list[tuple[int, int | None]] = []
    for part in values:
        low, dash, high = part.partition("-")
        if not low.strip().isdigit() or (high.strip() and not high.strip().isdigit()):
            raise Invalid(name, f"'{part}' is not a number or a range of numbers.")
        start = int(low)
        ranges.append((start, int(high) if high.strip() else (None if dash else start)))
    return ranges


def _numbers(field: str) -> Filter:
    """Comma-separated numbers and ranges (``customerNos``, ``externalNos``, ``supplierNos``)."""

    def build(name: str, request: Request) -> Predicate | None:
        values = request.params(name, ignore_case=True)
        if not values:
            return None
        ranges = _number_ranges(name, values)

        def keep(entry: Entry) -> bool:
            value = entry.row.get(field)
            return isinstance(value, int) and any(
                low <= value and (high is None or value <= high) for low, high in ranges
            )

        return keep

    return build


def _ids(field: str) -> Filter:
    """Comma-separated single positive numbers (``contactIds``, ``contactGroupIds``)."""

    def build(name: str, request: Request) -> Predicate | None:
        values = request.params(name, ignore_case=True)
        if not values:
            return None
        if not all(value.isdigit() for value in values):
            raise Invalid(
                name,
                f"{name} contains negative numbers and/or range of numbers. '-' is not allowed, "
                "only comma ',' separated single positive numbers are allowed.",
            )
        wanted = {int(value) for value in values}
        return lambda entry: bool(wanted & _as_set(entry.row.get(field)))

    return build


def _codes(field: str) -> Filter:
    """Comma-separated texts, compared case-insensitively (``externalCodes``, ``codes``)."""

    def build(name: str, request: Request) -> Predicate | None:
        wanted = {value.casefold() for value in request.params(name, ignore_case=True)}
        if not wanted:
            return None
        return lambda entry: str(entry.row.get(field) or "").casefold() in wanted

    return build


def _text(field: str) -> Filter:
    """One whole text, compared case-insensitively (``externalImportReference``, ``name``)."""

    def build(name: str, request: Request) -> Predicate | None:
        raw = request.param(name, ignore_case=True)
        if raw is None or not raw.strip():
            return None
        wanted = raw.strip().casefold()
        return lambda entry: str(entry.row.get(field) or "").strip().casefold() == wanted

    return build


def _flag(field: str) -> Filter:
    """``true`` or ``false`` (``isActive``)."""

    def build(name: str, request: Request) -> Predicate | None:
        raw = request.param(name, ignore_case=True)
        if raw is None or not raw.strip():
            return None
        if raw.strip().lower() not in ("true", "false"):
            raise Invalid(name, f"The value '{raw}' is not valid for {name}.")
        wanted = raw.strip().lower() == "true"
        return lambda entry: bool(entry.row.get(field)) == wanted

    return build


def _integer(field: str) -> Filter:
    """One integer (``managerEmployeeNo``)."""

    def build(name: str, request: Request) -> Predicate | None:
        raw = request.param(name, ignore_case=True)
        if raw is None or not raw.strip():
            return None
        if not raw.strip().lstrip("-").isdigit():
            raise Invalid(name, f"The value '{raw}' is not valid for {name}.")
        wanted = int(raw)
        return lambda entry: entry.row.get(field) == wanted

    return build


def _as_set(value: Any) -> set[int]:
    if isinstance(value, list | tuple | set | frozenset):
        return {v for v in value if isinstance(v, int)}
    return {value} if isinstance(value, int) else set()


_CHANGED = _after("changed")
_CREATED = _after("created")

LIST_FILTERS: Mapping[str, Mapping[str, Filter]] = {
    "Customers": {
        "contactGroupIds": _ids("ContactGroupIds"),
        "customerCreatedDateTimeOffsetGreaterThan": _CREATED,
        "customerNos": _numbers("Number"),
        "externalImportReference": _text("ExternalImportReference"),
        "externalNos": _numbers("ExternalNumber"),
        "lastChangedDateTimeOffsetGreaterThan": _CHANGED,
    },
    "ContactPersons": {
        "contactIds": _ids("ContactId"),
        "createdDateTimeOffsetGreaterThan": _CREATED,
        "externalCodes": _codes("ExternalCode"),
        "lastChangedDateTimeOffsetGreaterThan": _CHANGED,
    },
    "Departments": {
        "codes": _codes("Code"),
        "createdDateTimeOffsetGreaterThan": _CREATED,
        "createdFromImportJournalId": _text("CreatedFromImportJournalId"),
        "isActive": _flag("IsActive"),
        "lastChangedDateTimeOffsetGreaterThan": _CHANGED,
        "managerEmployeeNo": _integer("ManagerEmployeeNo"),
        "name": _text("Name"),
    },
    "Suppliers": {
        "contactGroupIds": _ids("ContactGroupIds"),
        "externalImportReference": _text("ExternalImportReference"),
        "externalNos": _numbers("ExternalNumber"),
        "lastChangedDateTimeOffsetGreaterThan": _CHANGED,
        "supplierCreatedDateTimeOffsetGreaterThan": _CREATED,
        "supplierNos": _numbers("Number"),
    },
}
"""Per list resource, the filters the OpenAPI document declares for it (and only those)."""


def list_predicates(resource: str, request: Request) -> list[Predicate]:
    """The predicates of the declared filters ``request`` uses; raises :class:`Invalid`."""
    built = (build(name, request) for name, build in LIST_FILTERS[resource].items())
    return [predicate for predicate in built if predicate is not None]
