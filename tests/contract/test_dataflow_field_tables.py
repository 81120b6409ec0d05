"""The adapters' field tables agree with the dataflow: every property a flow syncs, matches on or
filters by is read (and, where the sync writes it, written) by both adapters, under the names
the dataflow gives it. A property added to the dataflow but not to an adapter fails here, not
in a run (docs/extending.md)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from adapters.poweroffice import mapping as po_mapping
from adapters.poweroffice.wire import wire_name
from adapters.zendesk import mapping as zd_mapping
from adapters.zendesk.wire import OrganizationDTO, UserDTO
from talkcore.dataflow import DEFAULT_DATAFLOW, Flow, PropertyMap
from talkcore.records import Kind, System

ZENDESK_FIELDS = zd_mapping.FIELDS
ZENDESK_DTOS = {Kind.USER: UserDTO, Kind.ORGANIZATION: OrganizationDTO}


def _properties(flow: Flow) -> Iterator[PropertyMap]:
    yield from flow.properties
    if flow.identity is not None:
        yield from flow.identity.properties


PROPERTIES = [
    pytest.param(flow, prop, id=f"{flow.id}:{prop.poweroffice}")
    for flow in DEFAULT_DATAFLOW
    for prop in _properties(flow)
]


@pytest.mark.parametrize(("flow", "prop"), PROPERTIES)
def test_poweroffice_reads_every_property_under_its_logical_name(
    flow: Flow, prop: PropertyMap
) -> None:
    wire = po_mapping.WIRE_NAMES[flow.poweroffice_kind].get(prop.poweroffice)
    assert wire is not None, f"{prop.poweroffice} is not in WIRE_NAMES[{flow.poweroffice_kind}]"
    dto = po_mapping.DTO_OF[flow.poweroffice_kind]
    assert wire in {wire_name(f.name) for f in attrs.fields(dto)}, f"{dto.__name__} lacks {wire}"


@pytest.mark.parametrize(("flow", "prop"), PROPERTIES)
def test_zendesk_reads_every_property_under_its_logical_name(flow: Flow, prop: PropertyMap) -> None:
    assert prop.zendesk in ZENDESK_FIELDS[flow.zendesk_kind]
    assert prop.zendesk in {f.name for f in attrs.fields(ZENDESK_DTOS[flow.zendesk_kind])}


@pytest.mark.parametrize(("flow", "prop"), PROPERTIES)
def test_a_synced_value_is_writable_where_the_sync_writes_it(flow: Flow, prop: PropertyMap) -> None:
    if prop not in flow.properties:
        return  # matched on only, never written
    assert prop.zendesk in zd_mapping.WRITABLE[flow.zendesk_kind]
    read_only = po_mapping.READ_ONLY.get(flow.poweroffice_kind, frozenset())
    # A reference changes its PowerOffice record's parent: a move, refused as a field write.
    assert (prop.poweroffice in read_only) == prop.is_reference


def test_the_filter_fields_and_origin_fields_are_read() -> None:
    for flow in DEFAULT_DATAFLOW:
        if flow.poweroffice_filter is not None:
            assert flow.poweroffice_filter.field in po_mapping.WIRE_NAMES[flow.poweroffice_kind]
        if flow.zendesk_origin_field is not None:
            assert flow.zendesk_origin_field == zd_mapping.ORIGIN_FIELD
            assert flow.zendesk_origin_field in ZENDESK_FIELDS[flow.zendesk_kind]


def test_every_kind_the_dataflow_reads_has_a_table() -> None:
    assert DEFAULT_DATAFLOW.kinds(System.POWEROFFICE) <= set(po_mapping.DTO_OF)
    assert DEFAULT_DATAFLOW.kinds(System.ZENDESK) <= set(ZENDESK_DTOS)
