"""The adapter against the PowerOffice sandbox (in-process WSGI), traffic checked by the spec.

Scenarios the replayed fixtures show once, run here against a second, independent reading of
the API: suppliers behind contact persons, the department re-read, creates found by origin
key, a missing access role, and token expiry on the sandbox's own clock.
"""

from __future__ import annotations

import importlib.util

import pytest
from test_poweroffice_port_contract import SandboxBackend

from adapters.poweroffice import PowerOfficeAccessDenied
from talkcore.ports import WriteOp, WriteRequest
from talkcore.records import Kind

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("adapters.sandbox.poweroffice") is None,
    reason="adapters.sandbox.poweroffice is not there yet",
)


def test_contact_person_of_a_supplier_is_read_and_the_supplier_too() -> None:
    backend = SandboxBackend.start()
    supplier = backend.sandbox.add_supplier(Name="Leverandøren AS")
    row = backend.sandbox.add_contact_person(
        supplier["Id"], FirstName="Siv", LastName="Berg", EmailAddress="siv@lev.no"
    )
    result = backend.port.read(frozenset({Kind.CONTACT_PERSON, Kind.SUPPLIER}), None)
    by_kind = {(r.kind, r.id): r for r in result.records}
    person = by_kind[(Kind.CONTACT_PERSON, str(row["Id"]))]
    assert person.get("partyId") == str(supplier["Id"])
    assert by_kind[(Kind.SUPPLIER, str(supplier["Id"]))].get("Name") == "Leverandøren AS"


def test_department_update_reads_the_stored_record_back() -> None:
    backend = SandboxBackend.start()
    dept = backend.sandbox.add_department(Name="Salg", Code="S1", IsActive=True)
    [result] = backend.port.apply(
        [WriteRequest("d", WriteOp.UPDATE, Kind.DEPARTMENT, str(dept["Id"]), {"Name": " Marked "})]
    )
    assert result.record is not None
    stored = backend.sandbox.dump()["departments"][0]["Name"]
    assert result.record.get("Name") == stored


def test_created_customer_and_contact_person_are_found_by_origin_key() -> None:
    backend = SandboxBackend.start()
    customer = WriteRequest(
        "c", WriteOp.CREATE, Kind.CUSTOMER, None, {"Name": "Fjord AS"}, "zendesk:organization:9"
    )
    [made] = backend.port.apply([customer])
    assert made.record is not None, made.error
    person = WriteRequest(
        "p",
        WriteOp.CREATE,
        Kind.CONTACT_PERSON,
        None,
        {"partyId": made.record.id, "firstName": "Lise", "lastName": "Dahl"},
        "zendesk:user:77",
    )
    [made_person] = backend.port.apply([person])
    assert made_person.record is not None, made_person.error
    assert made_person.record.get("partyId") == made.record.id

    found = backend.port.find_by_origin(Kind.CUSTOMER, ["zendesk:organization:9", "nope"])
    assert {k: r.id for k, r in found.items()} == {"zendesk:organization:9": made.record.id}
    found = backend.port.find_by_origin(Kind.CONTACT_PERSON, ["zendesk:user:77"])
    assert found["zendesk:user:77"].id == made_person.record.id


def test_missing_access_role_fails_the_check_and_the_write_is_explained() -> None:
    backend = SandboxBackend.start()
    dept = backend.sandbox.add_department(Name="Salg", Code="S1")
    backend.sandbox.forbidden.update({"Customers", "Departments"})
    with pytest.raises(PowerOfficeAccessDenied, match="Customer"):
        backend.port.check()
    [result] = backend.port.apply(
        [WriteRequest("d", WriteOp.UPDATE, Kind.DEPARTMENT, str(dept["Id"]), {"Name": "X"})]
    )
    assert result.error is not None and result.error.code == "access_denied"
    assert "Department_Full" in result.error.message


def test_delete_removes_the_department() -> None:
    backend = SandboxBackend.start()
    dept = backend.sandbox.add_department(Name="Salg", Code="S1")
    [result] = backend.port.apply(
        [WriteRequest("d", WriteOp.DELETE, Kind.DEPARTMENT, str(dept["Id"]))]
    )
    assert result.ok
    assert backend.sandbox.dump()["departments"] == []
