"""Writing to PowerOffice through the adapter over replayed, spec-checked fixtures."""

from __future__ import annotations

from poweroffice_support import FakeTime, Replay

from talkcore.ports import WriteOp, WriteRequest
from talkcore.records import Kind


def _update(
    kind: Kind, id: str, current: dict[str, str] | None = None, **fields: str
) -> WriteRequest:
    return WriteRequest(f"item-{id}", WriteOp.UPDATE, kind, id, fields, current=current or {})


def test_patch_sends_only_the_changed_property_and_returns_the_stored_record() -> None:
    replay = Replay.of("write_patch_customer")
    [result] = replay.port(FakeTime(), "patch").apply(
        [_update(Kind.CUSTOMER, "101", Name="Acme Norge AS")]
    )
    replay.assert_done()
    assert result.ok and result.item_id == "item-101"
    assert result.record is not None
    assert result.record.get("Name") == "Acme Norge AS"
    assert result.record.get("EmailAddress") == "post@acme.no"


def test_patch_rejected_with_problem_details_names_record_and_field() -> None:
    replay = Replay.of("write_patch_rejected")
    write = _update(Kind.CONTACT_PERSON, "201", {"partyId": "101"}, emailAddress="per@acme")
    [result] = replay.port(FakeTime(), "rejected").apply([write])
    replay.assert_done()
    assert result.error is not None
    assert result.error.code == "invalid"
    assert result.error.field == "emailAddress"
    assert result.error.record == "poweroffice contact_person 201"
    assert "not a valid e-mail address" in result.error.message
    assert "400" in result.error.message


def test_department_patch_with_empty_answer_reads_the_stored_record_back() -> None:
    replay = Replay.of("write_patch_department")
    [result] = replay.port(FakeTime(), "dept").apply(
        [_update(Kind.DEPARTMENT, "7", Name="Salg og marked")]
    )
    replay.assert_done()
    assert result.record is not None
    assert result.record.fields == {"Name": "Salg og marked", "Code": "S1"}


def test_create_carries_the_origin_key_and_returns_the_created_record() -> None:
    replay = Replay.of("write_create_customer")
    write = WriteRequest(
        "c1",
        WriteOp.CREATE,
        Kind.CUSTOMER,
        None,
        {"Name": "Fjord Consulting AS"},
        origin_key="zendesk:organization:5501",
    )
    [result] = replay.port(FakeTime(), "create").apply([write])
    replay.assert_done()
    assert result.record is not None and result.record.id == "110"
    assert result.record.get("Name") == "Fjord Consulting AS"


def test_create_of_unknown_outcome_is_not_resent_but_found_by_origin_key() -> None:
    replay = Replay.of("write_create_reconciled")
    time = FakeTime()
    write = WriteRequest(
        "c1",
        WriteOp.CREATE,
        Kind.CUSTOMER,
        None,
        {"Name": "Fjord Consulting AS"},
        origin_key="zendesk:organization:5501",
    )
    [result] = replay.port(time, "reconcile", page_size=2).apply([write])
    replay.assert_done()  # exactly one POST, then the lookup
    assert result.record is not None and result.record.id == "110"
    assert time.waits() == [1.5]  # gave the replica time to show the create


def test_contact_person_create_goes_under_its_party_with_external_code() -> None:
    replay = Replay.of("write_create_contact_person")
    write = WriteRequest(
        "cp",
        WriteOp.CREATE,
        Kind.CONTACT_PERSON,
        None,
        {"emailAddress": "lise@acme.no", "partyId": "101", "firstName": "Lise", "lastName": "Dahl"},
        origin_key="zendesk:user:7701",
    )
    [result] = replay.port(FakeTime(), "cp").apply([write])
    replay.assert_done()
    assert result.record is not None
    assert result.record.get("partyId") == "101" and result.record.id == "210"


def test_find_contact_persons_by_origin() -> None:
    replay = Replay.of("find_contact_persons_by_origin")
    found = replay.port(FakeTime(), "find", page_size=2).find_by_origin(
        Kind.CONTACT_PERSON, ["zendesk:user:7701", "zendesk:user:7702"]
    )
    replay.assert_done()
    assert {key: r.id for key, r in found.items()} == {"zendesk:user:7701": "210"}


def test_delete_in_use_is_explained() -> None:
    replay = Replay.of("delete_in_use")
    write = WriteRequest("d", WriteOp.DELETE, Kind.CUSTOMER, "101")
    [result] = replay.port(FakeTime(), "in-use").apply([write])
    replay.assert_done()
    assert result.error is not None and result.error.code == "in_use"
    assert "in use" in result.error.message and "archive" in result.error.message
    assert result.error.record == "poweroffice customer 101"


def test_deletes_address_contact_persons_under_their_party() -> None:
    replay = Replay.of("delete_ok")
    results = replay.port(FakeTime(), "del").apply(
        [
            WriteRequest("d1", WriteOp.DELETE, Kind.DEPARTMENT, "8"),
            WriteRequest(
                "d2", WriteOp.DELETE, Kind.CONTACT_PERSON, "202", current={"partyId": "300"}
            ),
        ]
    )
    replay.assert_done()
    assert [r.ok for r in results] == [True, True]


def test_writes_that_cannot_be_sent_fail_without_a_call() -> None:
    replay = Replay([], None)
    port = replay.port(FakeTime(), "nocall")
    results = port.apply(
        [
            _update(Kind.CONTACT_PERSON, "201", emailAddress="a@b.no"),  # no partyId
            _update(Kind.CONTACT_PERSON, "201", {"partyId": "101"}, partyId="102"),  # a move
            _update(Kind.CUSTOMER, "101", Number="ten"),
            _update(Kind.CUSTOMER, "101", Colour="red"),
            _update(Kind.SUPPLIER, "300", Name="x"),
        ]
    )
    assert replay.sent == []
    assert [(r.error.code, r.error.field) for r in results if r.error] == [
        ("missing_parent", "partyId"),
        ("unwritable", "partyId"),
        ("unwritable", "Number"),
        ("unwritable", "Colour"),
        ("unsupported", None),
    ]
