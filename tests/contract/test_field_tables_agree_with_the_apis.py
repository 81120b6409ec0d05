"""Each adapter's field table agrees with its API's ground truth, so a wire fact is written once
and proved, not copied: the PowerOffice tables against the OpenAPI document (field names and its
``readOnly`` marks), the Zendesk tables against the recorded traffic, and both sandboxes' field
lists against the same sources and against the adapters (docs/extending.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from poweroffice_openapi import SPEC_MISSING_REASON, load_spec
from zendesk_support import needs_recorded, recorded_files

from adapters.poweroffice import mapping as po_mapping
from adapters.poweroffice.port import WRITABLE as PO_WRITABLE_KINDS
from adapters.sandbox import poweroffice as po_sandbox
from adapters.sandbox import zendesk as zd_sandbox
from adapters.zendesk import mapping as zd_mapping
from talkcore.records import Kind

SCHEMAS = {
    Kind.CUSTOMER: ("CustomerDto", "CustomerPostDto"),
    Kind.CONTACT_PERSON: ("ContactPersonDto", "ContactPersonPostDto"),
    Kind.DEPARTMENT: ("DepartmentDto", "DepartmentPostDto"),
    Kind.SUPPLIER: ("SupplierDto", None),
}
SANDBOX_LISTS = {
    "CustomerDto": po_sandbox.CUSTOMER_DTO_FIELDS,
    "CustomerPostDto": po_sandbox.CUSTOMER_POST_FIELDS,
    "ContactPersonDto": po_sandbox.CONTACT_PERSON_DTO_FIELDS,
    "ContactPersonPostDto": po_sandbox.CONTACT_PERSON_POST_FIELDS,
    "DepartmentDto": po_sandbox.DEPARTMENT_DTO_FIELDS,
    "DepartmentPostDto": po_sandbox.DEPARTMENT_POST_FIELDS,
    "SupplierDto": po_sandbox.SUPPLIER_DTO_FIELDS,
}


def _properties(schema: str) -> Mapping[str, Mapping[str, Any]]:
    spec = load_spec()
    if spec is None:
        pytest.skip(SPEC_MISSING_REASON)
    properties: Mapping[str, Mapping[str, Any]] = spec.raw["components"]["schemas"][schema][
        "properties"
    ]
    return properties


@pytest.mark.parametrize("schema", sorted(SANDBOX_LISTS))
def test_the_poweroffice_sandbox_serves_exactly_the_documented_fields(schema: str) -> None:
    assert set(SANDBOX_LISTS[schema]) == set(_properties(schema))


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_the_poweroffice_table_reads_documented_fields_and_knows_which_are_read_only(
    kind: Kind,
) -> None:
    dto, post = SCHEMAS[kind]
    documented = _properties(dto)
    wire = set(po_mapping.WIRE_NAMES[kind].values())
    assert wire <= set(documented), f"{kind}: not in {dto}: {sorted(wire - set(documented))}"
    read_only = {name for name in wire if documented[name].get("readOnly")}
    assert read_only == po_mapping.DOCUMENTED_READ_ONLY.get(kind, frozenset())
    if kind in PO_WRITABLE_KINDS:
        assert post is not None
        writable = wire - read_only
        creatable = set(_properties(post))
        assert writable <= creatable, f"{kind}: {sorted(writable - creatable)} not in {post}"


def _recorded_objects(key: str, marker: str) -> Iterator[Mapping[str, Any]]:
    """Every object under ``key`` (singular or plural) in the recorded responses that has the
    field ``marker`` (so a user's ``organization`` link is not taken for an organization)."""

    def walk(node: Any) -> Iterator[Mapping[str, Any]]:
        if isinstance(node, dict):
            for name, value in node.items():
                if name in (key, f"{key}s"):
                    for item in value if isinstance(value, list) else [value]:
                        if isinstance(item, dict) and marker in item:
                            yield item
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for path in recorded_files():
        for exchange in json.loads(path.read_text("utf-8")):
            yield from walk(exchange.get("response"))


ZENDESK = {
    Kind.USER: ("user", "role", zd_sandbox.USER_WRITABLE),
    Kind.ORGANIZATION: ("organization", "shared_tickets", zd_sandbox.ORGANIZATION_WRITABLE),
}


@needs_recorded()
@pytest.mark.parametrize("kind", sorted(ZENDESK))
def test_the_zendesk_table_and_sandbox_agree_with_the_recorded_traffic(kind: Kind) -> None:
    key, marker, sandbox_writable = ZENDESK[kind]
    seen = {name for obj in _recorded_objects(key, marker) for name in obj}
    assert seen, f"no recorded {key} objects"
    assert set(zd_mapping.FIELDS[kind]) <= seen
    # The sandbox takes on write exactly what it also answers with, and at least what we write.
    assert sandbox_writable <= seen, sorted(sandbox_writable - seen)
    assert zd_mapping.WRITABLE[kind] <= sandbox_writable
