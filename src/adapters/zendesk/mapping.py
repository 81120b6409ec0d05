"""The one place Zendesk's wire objects become talkcore records, and logical fields become wire.

Zendesk user: ``email``, ``name``, ``organization_id``, ``external_id``, ``role``; modified is
``updated_at``; active is ``active``. Organization: ``name``, ``external_id``; active is "not
deleted". Errors found in Zendesk's ``details`` become ``WriteError`` naming record and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.zendesk.wire import OrganizationDTO, UserDTO, structure
from talkcore.ports import WriteError
from talkcore.records import FieldValue, Kind, Record, RecordKey
from talkcore.values import coerce

FIELDS: Mapping[Kind, tuple[str, ...]] = {
    Kind.USER: ("email", "name", "organization_id", "external_id", "role"),
    Kind.ORGANIZATION: ("name", "external_id"),
}
"""The fields read into a record, per kind: the one table of this adapter's field names. Each
is an attribute of the kind's DTO under the same name (tests/contract/test_dataflow_field_tables
proves both against the dataflow)."""

READ_ONLY: Mapping[Kind, frozenset[str]] = {}
"""Fields of ``FIELDS`` the API refuses to write. None: the read-only ones Zendesk documents
(``id``, ``url``, ``created_at``, ``updated_at``) are read as a record's key and time, not as
fields."""

WRITABLE: Mapping[Kind, frozenset[str]] = {
    kind: frozenset(names) - READ_ONLY.get(kind, frozenset()) for kind, names in FIELDS.items()
}
ORIGIN_FIELD = "external_id"


def _fields(kind: Kind, dto: UserDTO | OrganizationDTO) -> dict[str, FieldValue]:
    return {name: coerce(getattr(dto, name)) for name in FIELDS[kind]}


def user_record(user: UserDTO) -> Record:
    """A Zendesk user as a talkcore record."""
    return Record(
        RecordKey.of(Kind.USER, user.id), _fields(Kind.USER, user), user.updated_at, user.active
    )


def organization_record(org: OrganizationDTO) -> Record:
    """A Zendesk organization as a talkcore record; a deleted one is inactive."""
    fields = _fields(Kind.ORGANIZATION, org)
    key = RecordKey.of(Kind.ORGANIZATION, org.id)
    return Record(key, fields, org.updated_at, org.deleted_at is None)


def to_record(kind: Kind, raw: Any) -> Record:
    """A wire object of ``kind`` (a user or an organization) as a record; raises ``WireError``
    naming the field that did not fit."""
    if kind is Kind.USER:
        return user_record(structure(raw, UserDTO))
    return organization_record(structure(raw, OrganizationDTO))


def created_record(kind: Kind, record_id: str, sent: Mapping[str, FieldValue]) -> Record:
    """The record Zendesk stored for a create of ``sent`` fields that it gave ``record_id``.

    Known without reading it back: every synced field is stored as sent (ids as numbers, an
    empty value as null) except the name, which Zendesk trims. When it was stored is not known
    (``modified`` is ``None``); the next read brings it.
    """
    wire = wire_fields(kind, sent)
    fields: dict[str, FieldValue] = {name: coerce(wire.get(name)) for name in FIELDS[kind]}
    name = fields.get("name")
    if name is not None:
        fields["name"] = name.strip()
    return Record(RecordKey.of(kind, record_id), fields)


def wire_fields(kind: Kind, fields: Mapping[str, FieldValue]) -> dict[str, Any]:
    """Logical fields as Zendesk's JSON: ids become numbers, empty values become null."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "organization_id" and kind is Kind.USER:
            out[name] = int(value) if value and value.strip().isdigit() else None
        else:
            out[name] = value if value not in ("",) else None
    return out


def record_label(kind: Kind, ident: str | None) -> str:
    """How a write error names its record, e.g. ``zendesk organization 77``."""
    return f"zendesk {kind} {ident}" if ident else f"zendesk {kind}"


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# "Name: Acme has already been taken" — Zendesk's details as text start with the field label.
_LABELLED = re.compile(r"^\s*([A-Za-z_ ]+?)\s*:\s*(.*)$", re.DOTALL)


def snake(code: str) -> str:
    """``DuplicateValue`` → ``duplicate_value``."""
    return _CAMEL.sub("_", code).lower() if code else code


def write_error(
    kind: Kind,
    ident: str | None,
    *,
    error: str | None,
    description: str | None,
    details: Any,
    retryable: bool = False,
) -> WriteError:
    """A ``WriteError`` from Zendesk's ``error``/``description``/``details``, naming the field.

    ``details`` is either ``{field: [{"error": code, "description": text}]}`` (single calls) or
    a text such as ``"Name: Acme has already been taken"`` (bulk job results).
    """
    message = description or error or "failed"
    field: str | None = None
    code = error
    if isinstance(details, Mapping) and details:
        field, code, message = _field_details(details, code, message)
    elif isinstance(details, str) and details:
        field, code, message = _text_details(details, code)
    return WriteError(
        snake(code or "failed"), message, record_label(kind, ident), _named(kind, field), retryable
    )


def _field_details(
    details: Mapping[Any, Any], code: str | None, message: str
) -> tuple[str, str | None, str]:
    """Field, code and message from ``{field: [{"error": ..., "description": ...}]}``."""
    field = str(next(iter(details)))
    entries = details[field]
    first = entries[0] if isinstance(entries, list) and entries else entries
    if isinstance(first, Mapping):
        return (
            field,
            str(first.get("error") or code or ""),
            str(first.get("description") or message),
        )
    return field, code, str(first) if first else message


def _text_details(details: str, code: str | None) -> tuple[str | None, str | None, str]:
    """Field, code and message from a text such as ``"Name: Acme has already been taken"``."""
    match = _LABELLED.match(details)
    field = match.group(1).strip().lower().replace(" ", "_") if match else None
    if "already been taken" in details and (not code or code.endswith("Failed")):
        code = "DuplicateValue"
    return field, code, details


def _named(kind: Kind, field: str | None) -> str | None:
    """The field an error names, as a field of ours (``None`` when it is not one)."""
    if field is not None and field not in WRITABLE.get(kind, frozenset()) and field != "value":
        # A field we do not sync (or a label that is not a field): keep it in the message only.
        field = field if field in ("email", "name", "external_id") else None
    if field == "value" and kind is Kind.USER:
        field = "email"  # identity errors talk about the identity's "value": the e-mail
    return field
