"""Datatype coercion, normalisation and validation of property values.

Normalisation is what makes two values "the same" for matching and for the three-way merge:
trim, Unicode NFC, and case-fold for e-mail. Empty or missing values are ``None`` and never match.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping

from talkcore.records import FieldValue, KeyFunction


class Datatype(enum.StrEnum):
    """The datatypes a property can carry; the dataflow types every synced property "string"."""

    STRING = "string"
    EMAIL = "email"
    ID = "id"


def coerce(value: object) -> FieldValue:
    """Turn a wire value (str, int, bool, None) into a field value; reject anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"expected a string, number or null, got {type(value).__name__}")


def normalise(value: FieldValue, datatype: Datatype = Datatype.STRING) -> FieldValue:
    """The canonical form of ``value`` for comparison: trimmed, NFC, e-mails case-folded."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        return None
    if datatype is Datatype.EMAIL:
        return text.casefold()
    if datatype is Datatype.ID:
        # Ids arrive as numbers or strings; "0012" and "12" name the same numeric id.
        return (text.lstrip("0") or "0") if text.isdigit() else text
    return text


def name_key(value: FieldValue) -> FieldValue:
    """How Zendesk compares organization names for uniqueness: trimmed and case-insensitive."""
    norm = normalise(value)
    return norm.casefold() if norm is not None else None


# Deliberately permissive: one "@", no spaces, a dot in the domain. Zendesk rejects worse, and a
# stricter rule here would refuse addresses the remote systems accept.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MAX_NAME_LENGTH = 255
"""Zendesk's limit on organization and user names."""


def validate(value: FieldValue, datatype: Datatype) -> str | None:
    """Why ``value`` cannot be written as ``datatype``, or ``None`` when it can."""
    if value is None:
        return None
    if datatype is Datatype.EMAIL and not _EMAIL.match(value):
        return f"{value!r} is not a valid e-mail address"
    if datatype is Datatype.STRING and len(value) > MAX_NAME_LENGTH:
        return f"value is {len(value)} characters long; at most {MAX_NAME_LENGTH} are accepted"
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
        return "value contains control characters"
    return None


def email_key(value: FieldValue) -> str | None:
    """Index key of an e-mail address."""
    return normalise(value, Datatype.EMAIL)


def origin_index_key(value: FieldValue) -> str | None:
    """Index key of an origin key (``external_id``): case-insensitive, as Zendesk compares."""
    return value.strip().casefold() or None if value else None


def id_key(value: FieldValue) -> str | None:
    return normalise(value, Datatype.ID)


INDEX_KEYS: Mapping[Datatype, KeyFunction] = {
    Datatype.EMAIL: email_key,
    Datatype.STRING: normalise,
    Datatype.ID: id_key,
}
"""Identity lookups by comparison type (module-level, so snapshot caches are shared)."""

UNIQUE_KEYS: Mapping[Datatype, KeyFunction] = {
    Datatype.EMAIL: email_key,
    Datatype.STRING: name_key,
    Datatype.ID: id_key,
}
"""How Zendesk compares a unique value (trimmed, case-insensitive), by comparison type."""


def clean(value: FieldValue) -> FieldValue:
    """The value to write: trimmed and NFC, case kept."""
    return normalise(value, Datatype.STRING)
