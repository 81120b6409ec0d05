"""Reading PowerOffice through the adapter over replayed, spec-checked fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from poweroffice_support import FakeTime, Replay

from talkcore.records import Kind, RecordKey, System

ALL = frozenset({Kind.CUSTOMER, Kind.CONTACT_PERSON, Kind.DEPARTMENT, Kind.SUPPLIER})


def test_full_read_pages_and_maps_every_kind() -> None:
    replay = Replay.of("read_full")
    result = replay.port(FakeTime(), "full", page_size=2).read(ALL, None)
    replay.assert_done()

    assert result.full and result.system is System.POWEROFFICE and result.problems == ()
    by_key = {r.key: r for r in result.records}
    assert len(by_key) == len(result.records) == 8

    acme = by_key[RecordKey.of(Kind.CUSTOMER, 101)]
    assert acme.fields == {
        "Name": "Acme AS",
        "EmailAddress": "post@acme.no",
        "IsPerson": "false",
        "FirstName": None,
        "LastName": None,
        "Number": "10001",
    }
    assert acme.active
    assert acme.modified == datetime(2026, 2, 10, 9, 15, 0, 123456, tzinfo=UTC)

    kari = by_key[RecordKey.of(Kind.CUSTOMER, 102)]
    assert kari.get("IsPerson") == "true" and kari.get("FirstName") == "Kari"
    assert not kari.active  # archived

    per = by_key[RecordKey.of(Kind.CONTACT_PERSON, 201)]
    assert per.fields == {
        "emailAddress": "per@acme.no",
        "partyId": "101",
        "firstName": "Per",
        "lastName": "Olsen",
    }
    assert not by_key[RecordKey.of(Kind.DEPARTMENT, 8)].active
    assert by_key[RecordKey.of(Kind.DEPARTMENT, 7)].fields == {"Name": "Salg", "Code": "S1"}


def test_contact_person_under_a_supplier_is_read_and_the_supplier_too() -> None:
    replay = Replay.of("read_full")
    result = replay.port(FakeTime(), "supplier", page_size=2).read(ALL, None)
    by_key = {r.key: r for r in result.records}
    siv = by_key[RecordKey.of(Kind.CONTACT_PERSON, 202)]
    assert siv.get("partyId") == "300" and not siv.active
    supplier = by_key[RecordKey.of(Kind.SUPPLIER, 300)]
    assert supplier.fields == {"Name": "Leverandøren AS"}
    assert RecordKey.of(Kind.CUSTOMER, 300) not in by_key


def test_full_read_returns_cursors_at_the_latest_change_per_kind() -> None:
    replay = Replay.of("read_full")
    result = replay.port(FakeTime(), "cursors", page_size=2).read(ALL, None)
    # Every change is over a minute before the read (T0), so the cursors are settled.
    assert result.cursors == {
        "poweroffice:customer": "2026-02-14T16:45:30.500000+00:00|settled",
        "poweroffice:contact_person": "2026-02-13T11:00:00+00:00|settled",
        "poweroffice:department": "2026-02-02T07:30:00+00:00|settled",
        "poweroffice:supplier": "2026-01-20T12:00:00+00:00|settled",
    }


def test_a_cursor_is_settled_only_once_its_time_is_over_a_minute_past() -> None:
    replay = Replay.of("read_full")
    recent = FakeTime(current=datetime(2026, 2, 14, 16, 46, tzinfo=UTC))  # 30 s after
    result = replay.port(recent, "cursors", page_size=2).read(ALL, None)
    assert result.cursors["poweroffice:customer"] == "2026-02-14T16:45:30.500000+00:00"
    assert result.cursors["poweroffice:supplier"].endswith("|settled")


def test_incremental_read_overlaps_the_cursor_and_folds_duplicates() -> None:
    replay = Replay.of("read_incremental")
    cursors = {"poweroffice:customer": "2026-02-14T16:45:30.500000+00:00"}
    result = replay.port(FakeTime(), "incr", page_size=2).read(frozenset({Kind.CUSTOMER}), cursors)
    replay.assert_done()
    assert not result.full
    assert [(r.id, r.get("Name")) for r in result.records] == [("103", "Ola B. Hansen")]
    assert result.cursors == {"poweroffice:customer": "2026-02-15T08:00:00+00:00|settled"}


def test_unreadable_records_become_problems_and_the_rest_is_read() -> None:
    replay = Replay.of("read_problems")
    result = replay.port(FakeTime(), "problems").read(frozenset({Kind.CUSTOMER}), None)
    replay.assert_done()
    assert {r.id for r in result.records} == {"101", "106"}
    camel = next(r for r in result.records if r.id == "106")
    assert camel.get("Name") == "Camel AS" and camel.get("EmailAddress") == "camel@example.no"
    found = {(p.record_id, p.field) for p in result.problems}
    assert found == {("(no usable Id)", "Id"), ("104", "Name"), ("105", "IsPerson")}
    assert all(p.system is System.POWEROFFICE and p.kind is Kind.CUSTOMER for p in result.problems)
    # A full read missing records would make them look deleted.
    assert not result.full


def test_reading_a_zendesk_kind_is_refused() -> None:
    replay = Replay([], None)
    with pytest.raises(ValueError, match="user"):
        replay.port(FakeTime(), "zd").read(frozenset({Kind.USER}), None)
