"""Every PowerOffice fixture agrees with the v2 OpenAPI document (or breaks it on purpose)."""

from __future__ import annotations

import pytest
from poweroffice_openapi import SPEC_MISSING_REASON, load_spec
from poweroffice_support import fixture_names, load_fixture, validate_fixture_statically


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_matches_spec(name: str) -> None:
    spec = load_spec()
    if spec is None:
        pytest.skip(SPEC_MISSING_REASON)
    assert validate_fixture_statically(spec, name) == []


def test_there_are_fixtures_for_every_call_the_adapter_makes() -> None:
    calls = {
        (
            ex["request"]["method"],
            ex["request"]["path"].rsplit("/", 1)[0]
            if ex["request"]["path"].rsplit("/", 1)[-1].isdigit()
            else ex["request"]["path"],
        )
        for name in fixture_names()
        for ex in load_fixture(name)["exchanges"]
    }
    expected = {
        ("POST", "/OAuth/Token"),
        ("GET", "/v2/Customers"),
        ("GET", "/v2/ContactPersons"),
        ("GET", "/v2/Departments"),
        ("GET", "/v2/Suppliers"),
        ("GET", "/v2/Departments"),
        ("PATCH", "/v2/Customers"),
        ("PATCH", "/v2/ContactPersons/101"),
        ("PATCH", "/v2/Departments"),
        ("POST", "/v2/Customers"),
        ("POST", "/v2/ContactPersons"),
        ("DELETE", "/v2/Customers"),
        ("DELETE", "/v2/Departments"),
        ("DELETE", "/v2/ContactPersons/300"),
    }
    assert expected <= calls


def test_the_validator_catches_a_wrong_fixture() -> None:
    spec = load_spec()
    if spec is None:
        pytest.skip(SPEC_MISSING_REASON)
    with pytest.raises(AssertionError, match="not of type 'integer'"):
        spec.check_response("GET", "/Customers", 200, "application/json", [{"Id": "101"}])
    with pytest.raises(AssertionError, match="not declared"):
        spec.check_request("GET", "/Customers", [("lastChangedSince", "x")], None, None)
    with pytest.raises(AssertionError, match="content type"):
        spec.check_request("PATCH", "/Customers/1", [], "application/json", [])


def test_the_validator_rejects_a_status_the_operation_does_not_list() -> None:
    spec = load_spec()
    if spec is None:
        pytest.skip(SPEC_MISSING_REASON)
    # DELETE and PATCH /Departments/{id} list 200 (no body) and no 204: an empty 204 is off
    # the document even though the operation has a ``default`` response.
    for method in ("DELETE", "PATCH"):
        with pytest.raises(AssertionError, match=r"status not documented .*'200'"):
            spec.check_response(method, "/Departments/7", 204, None, None, empty=True)
        spec.check_response(method, "/Departments/7", 200, None, None, empty=True)
    # GET /Departments lists no 404 (GET /Customers does), and no operation lists a 5xx.
    with pytest.raises(AssertionError, match="status not documented"):
        spec.check_response("GET", "/Departments", 404, None, None, empty=True)
    spec.check_response("GET", "/Customers", 404, "application/json", {"Title": "Not found"})
    with pytest.raises(AssertionError, match="status not documented"):
        spec.check_response("GET", "/Customers", 500, None, None, empty=True)
    with pytest.raises(AssertionError, match="status not documented"):
        spec.check_response("POST", "/Customers", 200, "application/json", {"Id": 1})
