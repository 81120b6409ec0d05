"""The adapter against the PowerOffice sandbox (in-process WSGI), traffic checked by the spec.

Scenarios the replayed fixtures show once, run here against a second, independent reading of
the API: suppliers behind contact persons, the department re-read, creates found by origin
key, a missing access role, and token expiry on the sandbox's own clock.
"""

from __future__ import annotations

import importlib.util
import json

import httpx
import pytest
from structlog.testing import capture_logs
from test_poweroffice_port_contract import SandboxBackend

from adapters.poweroffice import PowerOfficeAccessDenied, PowerOfficeRequestRejected
from adapters.poweroffice.port import MAX_URL_LENGTH
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
    change = {"Name": " Marked ", "Code": "M1"}  # every field the adapter writes on departments
    [result] = backend.port.apply(
        [WriteRequest("d", WriteOp.UPDATE, Kind.DEPARTMENT, str(dept["Id"]), change)]
    )
    assert result.record is not None, result.error
    [stored] = backend.sandbox.dump()["departments"]
    assert (result.record.get("Name"), result.record.get("Code")) == (stored["Name"], "M1")
    # 200 with no body, as the document lists it; the adapter read the record back.
    patched = [r for r in backend.transport.received if r.request.method == "PATCH"]
    assert [(r.status_code, r.content) for r in patched] == [(200, b"")]


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


# -- origin look-ups keep their URLs short ----------------------------------------------------


def _people_with_long_codes(backend: SandboxBackend, count: int) -> dict[str, str]:
    """``count`` contact persons whose ExternalCode is the longest the API holds (50)."""
    party = backend.sandbox.add_customer(Name="Mange Folk AS")["Id"]
    ids = {}
    for n in range(count):
        code = f"zendesk:user:{n:037d}"
        assert len(code) == 50
        row = backend.sandbox.add_contact_person(
            party, FirstName="P", LastName=str(n), ExternalCode=code
        )
        ids[code] = str(row["Id"])
    return ids


def test_a_look_up_of_many_long_origin_keys_stays_under_the_url_limit() -> None:
    backend = SandboxBackend.start()
    ids = _people_with_long_codes(backend, 120)
    missing = [f"zendesk:user:{n:037d}" for n in range(1000, 1010)]

    found = backend.port.find_by_origin(Kind.CONTACT_PERSON, [*ids, *missing])

    assert {key: record.id for key, record in found.items()} == ids
    assert backend.sandbox.refused_urls == []  # the sandbox answers a longer URL with 404
    lengths = [len(str(r.url)) for r in backend.api_requests("/ContactPersons")]
    assert max(lengths) <= MAX_URL_LENGTH
    # Packed, not merely short: every look-up but the last has no room for one more key. One
    # more adds 57 characters (its colons and comma go as %3A and %2C), and the budget keeps 4
    # for page numbers up to 10000.
    assert all(length + 57 + 4 > MAX_URL_LENGTH for length in lengths[:-1])
    assert len(lengths) == 5  # 130 keys, 31 a call (50 a call would be refused)


def test_a_look_up_answered_404_is_split_until_it_fits() -> None:
    # The gateway's real limit may be lower than reported: here it is 700 characters.
    backend = SandboxBackend.start(max_url_length=700)
    ids = _people_with_long_codes(backend, 40)

    found = backend.port.find_by_origin(Kind.CONTACT_PERSON, list(ids))

    assert {key: record.id for key, record in found.items()} == ids
    assert backend.sandbox.refused_urls  # it really was refused first, and recovered
    answered = [
        len(str(r.url)) for r in backend.api_requests("/ContactPersons") if len(str(r.url)) <= 700
    ]
    assert len(answered) >= 4


def test_a_single_key_answered_404_is_not_found_and_logged_not_the_end_of_the_run() -> None:
    backend = SandboxBackend.start(max_url_length=60)  # even one key is "too long" now
    _people_with_long_codes(backend, 2)
    with capture_logs() as logs:
        found = backend.port.find_by_origin(
            Kind.CONTACT_PERSON, ["zendesk:user:" + "0" * 37, "zendesk:user:" + "0" * 36 + "1"]
        )
        customers = backend.port.find_by_origin(Kind.CUSTOMER, ["zendesk:organization:1"])
    assert found == {} and customers == {}
    not_found = [e for e in logs if e["event"] == "poweroffice.lookup_not_found"]
    assert [e["key"] for e in not_found] == [
        "zendesk:user:" + "0" * 37,
        "zendesk:user:" + "0" * 36 + "1",
        "zendesk:organization:1",
    ]
    assert all("404" in e["reason"] for e in not_found)
    assert [e["keys"] for e in logs if e["event"] == "poweroffice.lookup_split"] == [2]


def test_a_404_on_a_plain_read_still_stops_the_read() -> None:
    # Only look-ups read a 404 as "nothing carries this key"; a read cannot tell what is missing.
    backend = SandboxBackend.start(max_url_length=40)  # the token URL still fits
    with pytest.raises(PowerOfficeRequestRejected, match="404"):
        backend.port.read(frozenset({Kind.CUSTOMER}), None)


# -- paging: X-Pagination is a hint, never a requirement ----------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_paging_reads_everything_with_or_without_x_pagination(header: bool) -> None:
    backend = SandboxBackend.start(pagination_header=header, port_options={"page_size": 2})
    made = {str(backend.sandbox.add_department(Name=f"Avd {n}")["Id"]) for n in range(4)}

    result = backend.port.read(frozenset({Kind.DEPARTMENT}), None)

    assert {r.id for r in result.records} == made
    pages = [r.url.params["PageNumber"] for r in backend.api_requests("/Departments")]
    # With the header, a full last page that names no next page ends the read; without it,
    # only the 204 on the page after does.
    assert pages == (["1", "2"] if header else ["1", "2", "3"])


def test_the_next_page_link_points_at_the_next_page_with_the_same_filters() -> None:
    backend = SandboxBackend.start(port_options={"page_size": 2})
    for n in range(3):
        backend.sandbox.add_department(Name=f"Avd {n}", Code=f"A{n}")
    backend.port.read(frozenset({Kind.DEPARTMENT}), None)
    [first, second] = backend.transport.responses("/v2/Departments")
    link = json.loads(first.headers["X-Pagination"])["nextPageLink"]
    assert httpx.URL(link).params == httpx.URL(str(first.request.url)).params.set("PageNumber", "2")
    assert json.loads(second.headers["X-Pagination"]) == {"nextPageLink": None}


# -- throttling ------------------------------------------------------------------------------


def test_the_gateways_429_is_sat_out_for_its_retry_after() -> None:
    backend = SandboxBackend.start(
        rate_limit=2, rate_limit_retry_after=3, port_options={"page_size": 1}
    )
    for n in range(3):
        backend.sandbox.add_department(Name=f"Avd {n}")
    # A port paced at 10 a second meets a gateway allowing 2: it waits as told and finishes.
    result = backend.port.read(frozenset({Kind.DEPARTMENT}), None)
    assert len(result.records) == 3
    throttled = [r for r in backend.transport.responses("/v2/Departments") if r.status_code == 429]
    assert throttled and all(r.json()["statusCode"] == 429 for r in throttled)
    assert backend.time.waits(at_least=3.0)


# -- page size: the document's maximum -----------------------------------------------------------


def test_the_default_page_size_is_the_documents_maximum() -> None:
    """The adapter reads in pages of ``MaxPageSize`` (issue 13) and the sandbox serves them."""
    from poweroffice_openapi import SPEC_MISSING_REASON, load_spec

    from adapters.poweroffice.port import DEFAULT_PAGE_SIZE

    spec = load_spec()
    if spec is None:
        pytest.skip(SPEC_MISSING_REASON)
    parameters = spec.raw["components"]["schemas"]["ResourceParameters"]["properties"]
    assert "20 000 by default" in parameters["MaxPageSize"]["description"]
    assert DEFAULT_PAGE_SIZE == parameters["MaxPageSize"]["example"] == 20000
    assert "larger than MaxPageSize" in parameters["PageSize"]["description"]

    backend = SandboxBackend.start()
    made = {str(backend.sandbox.add_department(Name=f"Avd {n}")["Id"]) for n in range(3)}
    result = backend.port.read(frozenset({Kind.DEPARTMENT}), None)
    assert {r.id for r in result.records} == made
    [page] = backend.api_requests("/Departments")
    assert page.url.params["PageSize"] == "20000"
