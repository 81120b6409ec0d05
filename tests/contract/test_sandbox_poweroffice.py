"""The PowerOffice sandbox: every answer fits the OpenAPI document, and the behaviour the sync
relies on (auth, paging, filters, JSON Patch, ProblemDetails, rate limit) holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sandbox_support import json_patch, poweroffice_client, poweroffice_token

from adapters.sandbox import FakeClock, PowerOfficeSandbox
from adapters.sandbox.poweroffice_query import LIST_FILTERS


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def po(clock: FakeClock) -> PowerOfficeSandbox:
    return PowerOfficeSandbox(clock=clock)


def _customer(po: PowerOfficeSandbox, name: str = "Fjord Bygg AS", **fields: Any) -> dict[str, Any]:
    return po.add_customer(Name=name, **fields)


# -- every answer validates against the OpenAPI document ------------------------------------------


def _tour(client: httpx.Client, po: PowerOfficeSandbox, clock: FakeClock) -> None:
    """Exercise every endpoint, success and error paths alike."""
    customer = _customer(po, EmailAddress="post@fjord.no")
    person = po.add_contact_person(customer["Id"], FirstName="Kari", LastName="Nordmann")
    supplier = po.add_supplier(Name="Leverandør AS")
    po.add_contact_person(supplier["Id"], FirstName="Per", LastName="Lev")
    department = po.add_department(Name="Salg", Code="10")
    client.get("/v2/Customers")
    client.get("/v2/Customers", params={"PageNumber": 1, "PageSize": 1})
    client.get("/v2/Customers", params={"PageNumber": 9, "PageSize": 1})
    client.get("/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": "nonsense"})
    client.get(f"/v2/Customers/{customer['Id']}")
    client.get("/v2/Customers/999")
    client.post("/v2/Customers", json={"Name": "Ny Kunde AS", "EmailAddress": "ny@kunde.no"})
    client.post("/v2/Customers", json={"Name": "Feil AS", "EmailAddress": "ikke-epost"})
    client.post("/v2/Customers", json={"IsPerson": True, "FirstName": "Ola", "LastName": "N"})
    json_patch(
        client,
        f"/v2/Customers/{customer['Id']}",
        [{"op": "replace", "path": "/Name", "value": "Fjord Bygg og Anlegg AS"}],
    )
    json_patch(
        client, f"/v2/Customers/{customer['Id']}", [{"op": "replace", "path": "/Id", "value": 5}]
    )
    client.delete(f"/v2/Customers/{customer['Id']}")
    client.get("/v2/ContactPersons", params={"contactIds": customer["Id"]})
    client.get("/v2/ContactPersons", params={"contactIds": 424242})
    client.post(
        f"/v2/ContactPersons/{customer['Id']}",
        json={"FirstName": "Ola", "LastName": "Hansen", "EmailAddress": "ola@fjord.no"},
    )
    client.post(f"/v2/ContactPersons/{customer['Id']}", json={"FirstName": "Ola"})
    client.post("/v2/ContactPersons/424242", json={"FirstName": "A", "LastName": "B"})
    client.get(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}")
    json_patch(
        client,
        f"/v2/ContactPersons/{customer['Id']}/{person['Id']}",
        [{"op": "replace", "path": "/EmailAddress", "value": "kari@fjord.no"}],
    )
    client.delete(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}")
    client.get(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}")
    client.get("/v2/Departments")
    client.post("/v2/Departments", json={"Name": "Service", "Code": "20"})
    client.post("/v2/Departments", json={"Name": "Dobbel", "Code": "20"})
    client.get(f"/v2/Departments/{department['Id']}")
    json_patch(
        client,
        f"/v2/Departments/{department['Id']}",
        [{"op": "replace", "path": "/Name", "value": "Salg Nord"}],
    )
    client.delete(f"/v2/Departments/{department['Id']}")
    client.get("/v2/Suppliers")
    client.get(f"/v2/Suppliers/{supplier['Id']}")
    po.forbidden.add("Suppliers")
    client.get("/v2/Suppliers")
    po.rate_limit = 2
    for _ in range(3):
        client.get("/v2/Departments")
    po.rate_limit = None
    clock.advance(po.token_lifetime + 1)
    client.get("/v2/Departments")  # expired token: 401


def test_every_answer_fits_the_openapi_document(po: PowerOfficeSandbox, clock: FakeClock) -> None:
    openapi = pytest.importorskip("poweroffice_openapi")
    spec = openapi.load_spec()
    if spec is None:
        pytest.skip(openapi.SPEC_MISSING_REASON)
    responses: list[httpx.Response] = []
    with poweroffice_client(po, event_hooks={"response": [lambda r: responses.append(r)]}) as c:
        _tour(c, po, clock)
    for response in responses:
        response.read()
    statuses = {r.status_code for r in responses if r.request.url.path.startswith("/v2/")}
    # The tour must really have reached every kind of answer, or the check below proves little.
    assert {200, 201, 204, 400, 401, 403, 404, 409, 429} <= statuses
    for response in responses:
        if response.request.url.path == "/OAuth/Token":
            openapi.check_token_response(response)
        else:
            spec.check_httpx_response(response, "/v2")


# -- auth --------------------------------------------------------------------------------------


def test_token_needs_all_three_keys(po: PowerOfficeSandbox) -> None:
    creds = po.credentials
    client = httpx.Client(transport=httpx.WSGITransport(app=po.app), base_url="http://po")
    good = poweroffice_token(client, po)
    assert good.status_code == 200
    assert good.json()["token_type"] == "Bearer"
    assert good.json()["expires_in"] == po.token_lifetime
    form = {"grant_type": "client_credentials"}
    sub = {"Ocp-Apim-Subscription-Key": creds.subscription_key}
    wrong_client = client.post(
        "/OAuth/Token", auth=(creds.application_key, "x"), headers=sub, data=form
    )
    assert wrong_client.status_code == 400
    assert wrong_client.json()["error"] == "invalid_client"
    wrong_app = client.post("/OAuth/Token", auth=("x", creds.client_key), headers=sub, data=form)
    assert wrong_app.status_code == 400
    no_sub = client.post("/OAuth/Token", auth=(creds.application_key, creds.client_key), data=form)
    assert no_sub.status_code == 401
    wrong_grant = client.post(
        "/OAuth/Token",
        auth=(creds.application_key, creds.client_key),
        headers=sub,
        data={"grant_type": "password"},
    )
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def test_api_calls_need_subscription_key_and_a_live_token(
    po: PowerOfficeSandbox, clock: FakeClock
) -> None:
    _customer(po)
    with poweroffice_client(po) as client:
        assert client.get("/v2/Customers").status_code == 200
        no_key = client.get("/v2/Customers", headers={"Ocp-Apim-Subscription-Key": ""})
        assert no_key.status_code == 401
        bad_token = client.get("/v2/Customers", headers={"Authorization": "Bearer nope"})
        assert bad_token.status_code == 401
        assert bad_token.json()["Status"] == 401
        clock.advance(po.token_lifetime - 1)
        assert client.get("/v2/Customers").status_code == 200
        clock.advance(1)
        expired = client.get("/v2/Customers")
        assert expired.status_code == 401
        assert "expired" in expired.json()["Detail"]


def test_forbidden_resource_answers_403(po: PowerOfficeSandbox) -> None:
    po.forbidden.add("Departments")
    with poweroffice_client(po) as client:
        assert client.get("/v2/Departments").status_code == 403
        assert client.get("/v2/Customers").status_code == 204


# -- paging and filters ------------------------------------------------------------------------


def test_paging_ends_with_204(po: PowerOfficeSandbox) -> None:
    ids = [_customer(po, f"Kunde {n}")["Id"] for n in range(5)]
    seen: list[int] = []
    with poweroffice_client(po) as client:
        for page in range(1, 10):
            response = client.get("/v2/Customers", params={"PageNumber": page, "PageSize": 2})
            if response.status_code == 204:
                assert response.content == b""
                break
            seen.extend(c["Id"] for c in response.json())
        assert page == 4
        assert client.get("/v2/Customers", params={"PageSize": 20001}).status_code == 400
        assert client.get("/v2/Customers", params={"pagenumber": 0}).status_code == 400
    assert seen == ids


def test_last_changed_filter_is_exclusive_and_moves_on_writes(
    po: PowerOfficeSandbox, clock: FakeClock
) -> None:
    first = _customer(po, "Første AS")
    clock.advance(10)
    second = _customer(po, "Andre AS")
    with poweroffice_client(po) as client:
        after_first = client.get(
            "/v2/Customers",
            params={"lastChangedDateTimeOffsetGreaterThan": first["LastChangedDateTimeOffset"]},
        )
        assert [c["Id"] for c in after_first.json()] == [second["Id"]]
        after_second = client.get(
            "/v2/Customers",
            params={"lastChangedDateTimeOffsetGreaterThan": second["LastChangedDateTimeOffset"]},
        )
        assert after_second.status_code == 204
        # A write moves the stamp even when the clock has not moved.
        patched = json_patch(
            client,
            f"/v2/Customers/{first['Id']}",
            [{"op": "replace", "path": "/Name", "value": "Første og Beste AS"}],
        )
        assert patched.status_code == 200
        assert patched.json()["LastChangedDateTimeOffset"] > second["LastChangedDateTimeOffset"]
        again = client.get(
            "/v2/Customers",
            params={"lastChangedDateTimeOffsetGreaterThan": second["LastChangedDateTimeOffset"]},
        )
        assert [c["Id"] for c in again.json()] == [first["Id"]]


def test_contact_persons_filter_by_contact_ids(po: PowerOfficeSandbox) -> None:
    a, b, c = (_customer(po, f"K{n}")["Id"] for n in range(3))
    pa = po.add_contact_person(a, FirstName="A", LastName="A")
    pc = po.add_contact_person(c, FirstName="C", LastName="C")
    po.add_contact_person(b, FirstName="B", LastName="B")
    with poweroffice_client(po) as client:
        got = client.get("/v2/ContactPersons", params={"contactIds": f"{a},{c}"}).json()
        assert [p["Id"] for p in got] == [pa["Id"], pc["Id"]]
        assert all(p["ContactId"] in (a, c) for p in got)
        repeated = client.get("/v2/ContactPersons", params=[("contactIds", a), ("contactIds", c)])
        assert [p["Id"] for p in repeated.json()] == [pa["Id"], pc["Id"]]


def test_every_list_honours_exactly_the_filters_the_document_declares() -> None:
    openapi = pytest.importorskip("poweroffice_openapi")
    spec = openapi.load_spec()
    if spec is None:
        pytest.skip(openapi.SPEC_MISSING_REASON)
    for resource, filters in LIST_FILTERS.items():
        _, operation, _ = spec.operation("GET", f"/{resource}")
        declared = {
            p["name"]
            for p in operation["parameters"]
            if p["in"] == "query" and p["name"] != "resourceParameter"
        }
        assert set(filters) == declared, resource


def test_origin_filters_find_by_external_reference_and_codes(po: PowerOfficeSandbox) -> None:
    fjord = _customer(po, "Fjord AS", ExternalImportReference="zendesk:organization:9")
    _customer(po, "Annen AS", ExternalImportReference="zendesk:organization:99")
    a = po.add_contact_person(fjord["Id"], FirstName="A", LastName="A", ExternalCode="zd:1")
    po.add_contact_person(fjord["Id"], FirstName="B", LastName="B", ExternalCode="zd:2")
    c = po.add_contact_person(fjord["Id"], FirstName="C", LastName="C", ExternalCode="zd:3")
    with poweroffice_client(po) as client:
        by_reference = client.get(
            "/v2/Customers", params={"externalImportReference": "Zendesk:Organization:9"}
        )
        assert [row["Id"] for row in by_reference.json()] == [fjord["Id"]]
        by_codes = client.get("/v2/ContactPersons", params={"externalCodes": "zd:1, zd:3,nope"})
        assert [row["Id"] for row in by_codes.json()] == [a["Id"], c["Id"]]
        blank = client.get("/v2/ContactPersons", params={"externalCodes": "  "})
        assert len(blank.json()) == 3  # "If null or whitespace, the filter is not used"
        nothing = client.get("/v2/Customers", params={"externalImportReference": "zd:0"})
        assert nothing.status_code == 204


def test_filters_the_document_does_not_declare_for_a_resource_are_ignored(
    po: PowerOfficeSandbox, clock: FakeClock
) -> None:
    old = _customer(po, "Gammel AS", Number=10001)
    clock.advance(3600)
    new = _customer(po, "Ny AS", Number=12000)
    between = (datetime.fromtimestamp(clock.now - 1800, UTC)).isoformat()
    with poweroffice_client(po) as client:
        created = client.get(
            "/v2/Customers", params={"customerCreatedDateTimeOffsetGreaterThan": between}
        )
        assert [row["Id"] for row in created.json()] == [new["Id"]]
        # Contact persons' and departments' name for it; Customers does not declare it.
        ignored = client.get("/v2/Customers", params={"createdDateTimeOffsetGreaterThan": between})
        assert [row["Id"] for row in ignored.json()] == [old["Id"], new["Id"]]
        codes = client.get("/v2/Customers", params={"externalCodes": "x", "codes": "y"})
        assert len(codes.json()) == 2
        ranges = client.get("/v2/Customers", params={"customerNos": "10000-11000, 13000-"})
        assert [row["Id"] for row in ranges.json()] == [old["Id"]]
        assert client.get("/v2/Customers", params={"customerNos": "ti"}).status_code == 400


@pytest.mark.parametrize(
    ("written", "matches"),
    [
        ("2021-09-25 08:03:00.1234567 -00:00", True),  # the document's own example
        ("2021-09-25 08:03:00.1234567 +00:00", True),
        ("2023-07-03 14:28:00.1234567Z", True),
        ("2021-09-25T08:03:00.1234567Z", True),
        ("2099-01-01 00:00:00.1234567 -00:00", False),
        ("2099-01-01T00:00:00.123456+00:00", False),
    ],
)
def test_time_filters_accept_the_documents_example_formats(
    po: PowerOfficeSandbox, written: str, matches: bool
) -> None:
    customer = _customer(po)
    with poweroffice_client(po) as client:
        answer = client.get(
            "/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": written}
        )
        assert answer.status_code == (200 if matches else 204), answer.text
        if matches:
            assert [row["Id"] for row in answer.json()] == [customer["Id"]]
        # A "+" left unencoded arrives as a space; it still means "+".
        raw = client.get(
            "/v2/Customers?lastChangedDateTimeOffsetGreaterThan="
            + written.replace(" +", "+").replace(" ", "%20")
        )
        assert raw.status_code == answer.status_code


def test_a_time_that_is_not_one_is_refused_naming_the_parameter(po: PowerOfficeSandbox) -> None:
    with poweroffice_client(po) as client:
        for wrong in ("yesterday", "2021-02-30 08:03:00", "2021-09-25"):
            answer = client.get(
                "/v2/ContactPersons", params={"createdDateTimeOffsetGreaterThan": wrong}
            )
            assert answer.status_code == 400
            assert "createdDateTimeOffsetGreaterThan" in answer.json()["Detail"]


# -- writes ------------------------------------------------------------------------------------


def test_post_validates_and_names_the_field(po: PowerOfficeSandbox) -> None:
    with poweroffice_client(po) as client:
        created = client.post("/v2/Customers", json={"Name": "Ny AS", "EmailAddress": "a@b.no"})
        assert created.status_code == 201
        assert created.json()["Id"] > 0
        assert created.json()["IsActive"] is True
        bad = client.post("/v2/Customers", json={"Name": "Ny AS", "EmailAddress": "a@"})
        assert bad.status_code == 400
        assert "EmailAddress" in bad.json()["Detail"]
        unknown = client.post("/v2/Customers", json={"Name": "X", "Id": 3})
        assert unknown.status_code == 400
        assert "Id" in unknown.json()["Detail"]
        lower = client.post("/v2/Customers", json={"name": "Små Bokstaver AS"})
        assert lower.status_code == 201
        assert lower.json()["Name"] == "Små Bokstaver AS"
        person = client.post(
            f"/v2/ContactPersons/{created.json()['Id']}",
            json={"FirstName": "Kari", "LastName": "Nordmann", "EmailAddress": "x"},
        )
        assert person.status_code == 400
        assert "EmailAddress" in person.json()["Detail"]
    assert len(po.dump()["customers"]) == 2


def test_json_patch_semantics(po: PowerOfficeSandbox) -> None:
    customer = _customer(po, EmailAddress="gammel@fjord.no")
    department = po.add_department(Name="Salg", Code="10")
    with poweroffice_client(po) as client:
        url = f"/v2/Customers/{customer['Id']}"
        not_patch = client.patch(url, json=[{"op": "replace", "path": "/Name", "value": "X"}])
        assert not_patch.status_code == 415
        removed = json_patch(client, url, [{"op": "remove", "path": "/EmailAddress"}])
        assert removed.status_code == 200
        assert removed.json()["EmailAddress"] is None
        added = json_patch(client, url, [{"op": "add", "path": "/emailaddress", "value": "n@f.no"}])
        assert added.json()["EmailAddress"] == "n@f.no"
        assert json_patch(client, url, [{"op": "move", "path": "/Name"}]).status_code == 400
        assert (
            json_patch(client, url, [{"op": "replace", "path": "/Nope", "value": 1}]).status_code
            == 400
        )
        dept = json_patch(
            client,
            f"/v2/Departments/{department['Id']}",
            [{"op": "replace", "path": "/Name", "value": "Salg Sør"}],
        )
        assert dept.status_code == 200  # as the document lists it: 200, no body
        assert dept.content == b""
        manager = json_patch(
            client,
            f"/v2/Departments/{department['Id']}",
            [{"op": "replace", "path": "/ManagerEmployeeNo", "value": 2}],
        )
        assert manager.status_code == 400  # not in DepartmentPatchDto (the document's example)
        assert manager.json()["Detail"] == (
            "/ManagerEmployeeNo: DepartmentPatchDto: The target location specified by path "
            "segment 'manageremployeeno' was not found."
        )
        assert (
            json_patch(client, "/v2/Customers/1", [{"op": "remove", "path": "/Name"}]).status_code
            == 404
        )
    assert po.dump()["departments"][0]["Name"] == "Salg Sør"


def test_delete_rules(po: PowerOfficeSandbox) -> None:
    customer = _customer(po)
    person = po.add_contact_person(customer["Id"], FirstName="Kari", LastName="N")
    other = _customer(po, "Annen AS")
    with poweroffice_client(po) as client:
        blocked = client.delete(f"/v2/Customers/{customer['Id']}")
        assert blocked.status_code == 409
        assert blocked.json()["Status"] == 409
        # A contact person is addressed under its own customer only.
        assert client.delete(f"/v2/ContactPersons/{other['Id']}/{person['Id']}").status_code == 404
        # The document lists 200 (no body) for every DELETE, and no 204.
        gone = client.delete(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}")
        assert (gone.status_code, gone.content) == (200, b"")
        assert client.delete(f"/v2/Customers/{customer['Id']}").status_code == 200
        assert client.get(f"/v2/Customers/{customer['Id']}").status_code == 404


# -- rate limit --------------------------------------------------------------------------------


def test_rate_limit_per_second_answers_in_the_gateways_shape(clock: FakeClock) -> None:
    po = PowerOfficeSandbox(clock=clock, rate_limit=10)
    with poweroffice_client(po) as client:  # the token call is the first of this second
        answers = [client.get("/v2/Customers") for _ in range(10)]
        assert [a.status_code for a in answers] == [204] * 9 + [429]
        # The API gateway answers, not the API: its own body, always with Retry-After.
        throttled = answers[-1]
        assert throttled.json() == {
            "statusCode": 429,
            "message": "Rate limit is exceeded. Try again in 1 seconds.",
        }
        assert throttled.headers["Retry-After"] == "1"
        clock.advance(1.0)
        assert client.get("/v2/Customers").status_code == 204
    po.rate_limit_retry_after = 3
    with poweroffice_client(po) as client:
        for _ in range(20):
            last = client.get("/v2/Customers")
        assert last.status_code == 429
        assert last.headers["Retry-After"] == "3"
        assert last.json()["message"] == "Rate limit is exceeded. Try again in 3 seconds."


def test_off_by_default(po: PowerOfficeSandbox) -> None:
    with poweroffice_client(po) as client:
        assert {client.get("/v2/Departments").status_code for _ in range(50)} == {204}
