"""The one place PowerOffice wire objects become talkcore records, and logical fields wire values.

Logical names follow the shared record conventions: customers and departments keep the wire
names, contact persons use the dataflow's camelCase (``emailAddress``, ``partyId`` for
``ContactId``) and suppliers carry only ``Name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from adapters.poweroffice.wire import (
    ContactPersonDto,
    CustomerDto,
    DepartmentDto,
    SupplierDto,
)
from talkcore.records import FieldValue, Kind, Record, RecordKey
from talkcore.values import coerce

WireDto = CustomerDto | ContactPersonDto | DepartmentDto | SupplierDto

DTO_OF: Mapping[Kind, type[WireDto]] = {
    Kind.CUSTOMER: CustomerDto,
    Kind.CONTACT_PERSON: ContactPersonDto,
    Kind.DEPARTMENT: DepartmentDto,
    Kind.SUPPLIER: SupplierDto,
}


def _same(names: str) -> dict[str, str]:
    """Fields whose logical name is their wire name (customers, departments, suppliers)."""
    return {name: name for name in names.split()}


def _camel(names: str) -> dict[str, str]:
    """Fields whose logical name is their wire name in camelCase (contact persons)."""
    return {name[0].lower() + name[1:]: name for name in names.split()}


WIRE_NAMES: Mapping[Kind, Mapping[str, str]] = {
    Kind.CUSTOMER: _same("Name EmailAddress IsPerson FirstName LastName Number"),
    Kind.CONTACT_PERSON: {**_camel("EmailAddress FirstName LastName"), "partyId": "ContactId"},
    Kind.DEPARTMENT: _same("Name Code"),
    Kind.SUPPLIER: _same("Name"),
}
"""Logical field name → wire (PascalCase) name, per kind."""

ORIGIN_FIELD: Mapping[Kind, str] = {
    Kind.CUSTOMER: "ExternalImportReference",
    Kind.CONTACT_PERSON: "ExternalCode",
}
"""Where a created record carries its origin key. The spec gives departments no such field."""

ORIGIN_MAX_LENGTH = 50
"""Both origin fields are ``maxLength: 50`` in the spec."""

DOCUMENTED_READ_ONLY: Mapping[Kind, frozenset[str]] = {
    # The contact person's parent is part of its URL: changing it is a move, not a PATCH.
    Kind.CONTACT_PERSON: frozenset({"ContactId"}),
}
"""Wire fields of ``WIRE_NAMES`` the OpenAPI document marks ``readOnly`` (a contract test
proves this against the document). Suppliers are never written at all (``port.WRITABLE``)."""

READ_ONLY: Mapping[Kind, frozenset[str]] = {
    kind: frozenset(logical for logical, wire in names.items() if wire in read_only)
    for kind, names in WIRE_NAMES.items()
    if (read_only := DOCUMENTED_READ_ONLY.get(kind, frozenset()))
}
"""The same, by logical name: what ``wire_fields`` refuses to write."""

_INTEGER_FIELDS = frozenset({"Number", "ContactId"})
_BOOLEAN_FIELDS = frozenset({"IsPerson"})


def _is_on(flag: bool | None, *, default: bool = True) -> bool:
    return default if flag is None else flag


def to_record(kind: Kind, dto: WireDto) -> Record:
    """The talkcore record of one wire object of ``kind``."""
    fields: dict[str, FieldValue] = {}
    for logical, wire in WIRE_NAMES[kind].items():
        fields[logical] = coerce(getattr(dto, _attribute(wire)))
    archived = getattr(dto, "is_archived", None)
    active = _is_on(dto.is_active) and not _is_on(archived, default=False)
    return Record(RecordKey.of(kind, dto.id), fields, dto.last_changed_date_time_offset, active)


def origin_key_of(kind: Kind, dto: WireDto) -> str | None:
    """The origin key a wire object carries, if its kind has an origin field."""
    wire = ORIGIN_FIELD.get(kind)
    value = getattr(dto, _attribute(wire), None) if wire else None
    return value if isinstance(value, str) and value else None


def _attribute(wire: str) -> str:
    out = []
    for i, ch in enumerate(wire):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


@attrs.frozen
class UnwritableField(Exception):
    """A logical field that cannot be written to ``kind`` (unknown, read only, or bad value)."""

    field: str
    message: str


def wire_value(wire: str, value: FieldValue) -> Any:
    """A logical string value as the wire type of field ``wire`` (numbers, booleans)."""
    if value is None:
        return None
    if wire in _INTEGER_FIELDS:
        if not value.strip().lstrip("-").isdigit():
            raise UnwritableField(wire, f"{value!r} is not a whole number")
        return int(value)
    if wire in _BOOLEAN_FIELDS:
        if value.strip().lower() not in ("true", "false"):
            raise UnwritableField(wire, f"{value!r} is not true or false")
        return value.strip().lower() == "true"
    return value


def wire_fields(kind: Kind, fields: Mapping[str, FieldValue]) -> dict[str, Any]:
    """Logical ``fields`` of a write as wire names and values; raises :class:`UnwritableField`."""
    names = WIRE_NAMES[kind]
    out: dict[str, Any] = {}
    for logical, value in fields.items():
        if logical not in names:
            raise UnwritableField(logical, f"PowerOffice {kind} has no field {logical!r}")
        if logical in READ_ONLY.get(kind, frozenset()):
            raise UnwritableField(logical, f"{logical!r} of a PowerOffice {kind} cannot be changed")
        try:
            out[names[logical]] = wire_value(names[logical], value)
        except UnwritableField as exc:
            raise UnwritableField(logical, exc.message) from None
    return out


def json_patch(wire: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An RFC 6902 patch replacing exactly the given wire properties (PascalCase paths)."""
    return [{"op": "replace", "path": f"/{name}", "value": value} for name, value in wire.items()]


def logical_name(kind: Kind, wire: str) -> str | None:
    """The logical field a wire name (any casing) stands for in ``kind``, if any."""
    for logical, name in WIRE_NAMES[kind].items():
        if name.casefold() == wire.casefold():
            return logical
    return None
