"""The Zendesk adapter against our own fixtures: every call it makes, and what it parses."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx
import pytest
from zendesk_support import EMAIL, TOKEN, Replay, Sleeps, load, make_port

from adapters.zendesk import ZendeskAuth
from talkcore.ports import WriteOp, WriteRequest
from talkcore.records import Kind, RecordKey, System

USER = f"{System.ZENDESK}:{Kind.USER}"
ORG = f"{System.ZENDESK}:{Kind.ORGANIZATION}"


def create_org(item: str, name: str, origin: str) -> WriteRequest:
    return WriteRequest(item, WriteOp.CREATE, Kind.ORGANIZATION, None, {"name": name}, origin)


def test_full_read_follows_cursor_pages_and_maps_records() -> None:
    replay = Replay(load("read_all"))
    result = make_port(replay).read(frozenset({Kind.USER, Kind.ORGANIZATION}), None)
    replay.done()

    assert result.full
    assert result.problems == ()
    by_key = {r.key: r for r in result.records}
    kari = by_key[RecordKey.of(Kind.USER, 11)]
    assert kari.fields == {
        "email": "kari@acme.example",
        "name": "Kari Nordmann",
        "organization_id": "501",
        "external_id": None,
        "role": "end-user",
    }
    assert kari.modified == datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    assert kari.active
    assert not by_key[RecordKey.of(Kind.USER, 13)].active
    acme = by_key[RecordKey.of(Kind.ORGANIZATION, 501)]
    assert acme.fields == {"name": "Acme AS", "external_id": "poweroffice:customer:1"}
    assert len(result.records) == 5
    # A full read still hands back cursors, so the next run can go incremental.
    assert set(result.cursors) == {USER, ORG}


def test_full_read_sends_auth_to_our_host_only() -> None:
    replay = Replay(load("read_all"))
    make_port(replay).read(frozenset({Kind.USER, Kind.ORGANIZATION}), None)
    expected = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert {r.headers["authorization"] for r in replay.requests} == {expected}
    assert {r.url.host for r in replay.requests} == {"acme.zendesk.com"}


def test_oauth_token_is_sent_as_bearer() -> None:
    replay = Replay(load("check"))
    port = make_port(replay, auth=ZendeskAuth.oauth("oauth-SECRET"))
    assert "user 99 (admin)" in port.check()
    assert replay.requests[0].headers["authorization"] == "Bearer oauth-SECRET"


def test_incremental_read_dedupes_marks_deleted_and_returns_next_cursors() -> None:
    replay = Replay(load("incremental"))
    cursors = {ORG: "start:1772000000", USER: "cursor:MTc3MjAwMDAwMC4wfHwxMXw="}
    result = make_port(replay).read(frozenset({Kind.USER, Kind.ORGANIZATION}), cursors)
    replay.done()

    assert not result.full
    orgs = {r.id: r for r in result.records if r.kind is Kind.ORGANIZATION}
    assert set(orgs) == {"501", "502", "503"}
    assert orgs["501"].get("name") == "Acme Holding AS"  # the later copy wins
    assert not orgs["503"].active
    assert orgs["502"].active
    users = {r.id: r for r in result.records if r.kind is Kind.USER}
    assert users["11"].get("email") == "kari.n@acme.example"
    assert not users["13"].active
    # The record that does not fit is reported, naming record and field, not dropped silently.
    assert [(p.record_id, p.field) for p in result.problems] == [("14", "active")]
    assert result.cursors == {ORG: "start:1772020000", USER: "cursor:BBB"}


def test_incremental_start_time_is_kept_over_a_minute_in_the_past() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    seen: list[str] = []

    def handler(request):  # type: ignore[no-untyped-def]
        import httpx

        seen.append(request.url.params["start_time"])
        return httpx.Response(200, json={"organizations": [], "end_of_stream": True, "end_time": 1})

    port = make_port(handler, now=lambda: now)
    port.read(frozenset({Kind.ORGANIZATION}), {ORG: f"start:{int(now.timestamp())}"})
    assert int(seen[0]) <= int(now.timestamp()) - 61


def test_create_organizations_in_bulk_polls_the_job_and_knows_the_records_without_reading() -> None:
    replay = Replay(load("create_organizations"))
    sleeps = Sleeps()
    port = make_port(replay, sleep=sleeps)
    results = port.apply(
        [
            create_org("a", "Acme AS", "poweroffice:customer:1"),
            create_org("b", "Salg", "poweroffice:department:7"),
        ]
    )
    replay.done()  # two polls of the job, no read-back of what it created
    assert [r.ok for r in results] == [True, True]
    assert results[0].record is not None
    assert results[0].record.id == "601"
    assert results[0].record.get("external_id") == "poweroffice:customer:1"
    assert results[1].record is not None
    assert results[1].record.id == "602"
    assert results[1].record.fields == {"name": "Salg", "external_id": "poweroffice:department:7"}
    assert results[1].record.modified is None  # when Zendesk stored it: the next read says
    assert sum(sleeps) == 1.0 + 2.0  # back-off between the polls, slept in short slices


def test_update_organizations_with_update_many() -> None:
    replay = Replay(load("update_organizations"))
    write = WriteRequest("u", WriteOp.UPDATE, Kind.ORGANIZATION, "601", {"name": "Acme Holding AS"})
    [result] = make_port(replay).apply([write])
    replay.done()
    assert result.ok
    assert result.record is not None
    assert result.record.get("name") == "Acme Holding AS"


def test_job_that_fails_half_its_items() -> None:
    replay = Replay(load("job_half_failed"))
    names = ["Alfa AS", "Beta AS", "Gamma AS", "Delta AS"]
    writes = [
        create_org(f"i{n}", name, f"poweroffice:customer:{n}") for n, name in enumerate(names, 1)
    ]
    results = make_port(replay).apply(writes)
    replay.done()
    assert [r.ok for r in results] == [True, False, True, False]
    assert [r.record.id for r in results if r.record] == ["701", "703"]
    dup = results[1].error
    assert dup is not None
    assert (dup.code, dup.field) == ("duplicate_value", "name")
    assert "poweroffice:customer:2" in dup.record
    assert "already been taken" in dup.message
    too_long = results[3].error
    assert too_long is not None
    assert too_long.field == "name"
    assert too_long.code == "organization_create_failed"


def test_duplicate_organization_name_422() -> None:
    replay = Replay(load("duplicate_organization_name"))
    [result] = make_port(replay).apply([create_org("d", "acme as ", "poweroffice:customer:9")])
    replay.done()
    assert result.error is not None
    assert result.error.code == "duplicate_value"
    assert result.error.field == "name"
    assert result.error.record == "zendesk organization poweroffice:customer:9"


def test_timeout_during_create_many_is_reconciled_by_origin_key() -> None:
    replay = Replay(load("create_in_doubt"))
    port = make_port(replay)
    results = port.apply(
        [
            create_org("n", "Nord AS", "poweroffice:customer:21"),
            create_org("s", "Sør AS", "poweroffice:customer:22"),
        ]
    )
    replay.done()  # the found one was not sent again; the missing one was sent once more
    posts = [r for r in replay.requests if r.method == "POST"]
    assert len(posts) == 2
    assert [r.record.id for r in results if r.record] == ["801", "802"]


def test_users_bulk_403_saying_bulk_is_off_falls_back_to_single_calls_for_the_run() -> None:
    replay = Replay(load("users_bulk_disabled"))
    port = make_port(replay)
    first = port.apply(
        [
            WriteRequest("k", WriteOp.UPDATE, Kind.USER, "11", {"organization_id": "601"}),
            WriteRequest("o", WriteOp.UPDATE, Kind.USER, "12", {"name": "Ola Nordmann"}),
        ]
    )
    assert [r.ok for r in first] == [True, True]
    assert first[0].record is not None
    assert first[0].record.get("organization_id") == "601"
    assert not port.bulk_users_enabled
    [second] = port.apply(
        [WriteRequest("p", WriteOp.UPDATE, Kind.USER, "13", {"organization_id": None})]
    )
    replay.done()  # no second update_many was tried
    assert second.ok
    assert second.record is not None


def test_a_permission_403_on_update_many_is_one_clear_error_and_no_single_calls() -> None:
    replay = Replay(load("users_update_forbidden"))
    port = make_port(replay)
    first = port.apply(
        [
            WriteRequest("k", WriteOp.UPDATE, Kind.USER, "11", {"organization_id": "601"}),
            WriteRequest("o", WriteOp.UPDATE, Kind.USER, "12", {"name": "Ola Nordmann"}),
        ]
    )
    replay.done()  # the one update_many, and no PUT /users/{id} after it
    errors = [r.error for r in first]
    assert [e.code if e else None for e in errors] == ["forbidden", "forbidden"]
    assert [e.record if e else None for e in errors] == ["zendesk user 11", "zendesk user 12"]
    assert errors[0] is not None and "permission to update users" in errors[0].message
    assert "You do not have access" in errors[0].message  # Zendesk's own words are kept
    assert port.bulk_users_enabled  # it was not the bulk switch
    # The rest of the run sends no user update at all: not in bulk, not singly, not e-mail.
    later = port.apply(
        [
            WriteRequest("p", WriteOp.UPDATE, Kind.USER, "13", {"name": "Per"}),
            WriteRequest("q", WriteOp.UPDATE, Kind.USER, "14", {"email": "q@acme.example"}),
        ]
    )
    assert [r.error.code if r.error else None for r in later] == ["forbidden", "forbidden"]


def test_a_403_on_organizations_update_many_is_a_permission_error_too() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return httpx.Response(403, json={"error": "Forbidden", "description": "no access"})

    write = WriteRequest("a", WriteOp.UPDATE, Kind.ORGANIZATION, "601", {"name": "Nord AS"})
    [result] = make_port(answer).apply([write])
    assert calls == ["PUT /api/v2/organizations/update_many.json"]
    assert result.error is not None and result.error.code == "forbidden"
    assert result.error.record == "zendesk organization 601"


def test_users_bulk_update_of_organization_needs_no_read_back() -> None:
    # An id is stored as sent: the recorded show_many read-back is not requested. (A user in
    # no organization yet joins one in bulk; a move from one to another is a per-user step.)
    exchanges = [e for e in load("users_bulk_update") if "show_many" not in e["request"]["path"]]
    replay = Replay(exchanges)
    write = WriteRequest(
        "k",
        WriteOp.UPDATE,
        Kind.USER,
        "11",
        {"organization_id": "601"},
        current={"email": "kari@acme.example", "organization_id": None},
    )
    [result] = make_port(replay).apply([write])
    replay.done()
    assert result.record is not None
    assert result.record.get("organization_id") == "601"
    assert result.record.get("email") == "kari@acme.example"


def test_primary_email_change_goes_through_identities() -> None:
    replay = Replay(load("change_email"))
    write = WriteRequest(
        "e", WriteOp.UPDATE, Kind.USER, "11", {"email": "Kari.Nordmann@Acme.example"}
    )
    [result] = make_port(replay).apply([write])
    replay.done()
    assert result.record is not None
    assert result.record.get("email") == "kari.nordmann@acme.example"  # as stored


def move(releases: dict[str, str | None]) -> WriteRequest:
    """User 11 moved from organization 600 to 601 (``releases``: what the flow owned)."""
    return WriteRequest(
        "m",
        WriteOp.UPDATE,
        Kind.USER,
        "11",
        {"organization_id": "601"},
        current={"email": "kari@acme.example", "organization_id": "600"},
        releases=releases,
    )


def test_a_move_joins_the_new_organization_as_default_and_leaves_only_the_owned_one() -> None:
    replay = Replay(load("move_user_memberships"))
    [result] = make_port(replay).apply([move({"organization_id": "600"})])
    # Memberships listed, 601 joined and made the default, 600 (the flow's) left; 700, which
    # no flow owns, untouched. No update_many: writing organization_id is not relied on.
    replay.done()
    assert result.record is not None
    assert result.record.get("organization_id") == "601"


def test_a_move_from_an_organization_no_flow_owns_keeps_that_membership() -> None:
    exchanges = [e for e in load("move_user_memberships") if e["request"]["method"] != "DELETE"]
    replay = Replay(exchanges)
    [result] = make_port(replay).apply([move({})])
    replay.done()  # the same, without leaving 600
    assert result.ok


def test_a_move_where_the_user_is_a_member_already_only_changes_the_default() -> None:
    exchanges = [e for e in load("move_user_memberships") if e["request"]["method"] != "POST"]
    listed = exchanges[0]["response"]["json"]["organization_memberships"]
    listed.append({**listed[0], "id": 5003, "organization_id": 601, "default": False})
    replay = Replay(exchanges)
    [result] = make_port(replay).apply([move({"organization_id": "600"})])
    replay.done()
    assert result.ok


def test_an_account_with_one_organization_per_user_moves_by_organization_id() -> None:
    replay = Replay(load("move_user_single_organization"))
    [result] = make_port(replay).apply([move({"organization_id": "600"})])
    replay.done()  # the refused membership, a look, then the user's organization_id written
    assert result.record is not None
    assert result.record.get("organization_id") == "601"


def test_an_address_another_user_holds_is_a_named_failure() -> None:
    replay = Replay(load("change_email_held"))
    write = WriteRequest("e", WriteOp.UPDATE, Kind.USER, "11", {"email": "ola@acme.example"})
    [result] = make_port(replay).apply([write])
    replay.done()  # the user's own identities were checked (a retried POST lands there)
    assert result.error is not None
    assert result.error.code == "email_held_by_another_user"
    assert result.error.record == "zendesk user 11"
    assert result.error.field == "email"
    assert "ola@acme.example" in result.error.message
    assert "another Zendesk user holds" in str(result.error)


def test_the_replaced_address_is_deleted_only_when_opted_in() -> None:
    replay = Replay(load("change_email_remove_old"))
    port = make_port(replay, remove_old_emails=True)
    write = WriteRequest(
        "e",
        WriteOp.UPDATE,
        Kind.USER,
        "11",
        {"email": "Kari.Nordmann@Acme.example"},
        current={"email": "kari@acme.example"},
    )
    [result] = port.apply([write])
    replay.done()  # the old identity (9000, no longer primary) was deleted, nothing else
    assert result.ok
    # By default the same change keeps the old address: no identity listing, no DELETE.
    removal = {
        ("GET", "/api/v2/users/11/identities.json"),
        ("DELETE", "/api/v2/users/11/identities/9000.json"),
    }
    kept = [
        e
        for e in load("change_email_remove_old")
        if (e["request"]["method"], e["request"]["path"]) not in removal
    ]
    assert len(kept) == 3
    replay = Replay(kept)
    [result] = make_port(replay).apply([write])
    replay.done()
    assert result.ok


def test_deletes_go_by_destroy_many_and_end_in_a_job() -> None:
    replay = Replay(load("deletes"))
    results = make_port(replay).apply(
        [
            WriteRequest("o", WriteOp.DELETE, Kind.ORGANIZATION, "503"),
            WriteRequest("u", WriteOp.DELETE, Kind.USER, "13"),
            WriteRequest("p", WriteOp.DELETE, Kind.ORGANIZATION, "504"),
        ]
    )
    # One call per kind, in the order the kinds come (the engine decides the order of writes).
    # An id the job could not find is gone already; a user the job said nothing about is read
    # back (inactive).
    replay.done()
    assert [r.item_id for r in results] == ["o", "u", "p"]
    assert all(r.ok for r in results)


def test_destroy_many_sends_100_ids_a_call() -> None:
    calls: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["ids"].split(",")
        calls.append(ids)
        results = [{"id": int(i), "action": "delete", "status": "Deleted"} for i in ids]
        return httpx.Response(
            200,
            json={
                "job_status": {"id": f"J{len(calls)}", "status": "completed", "results": results}
            },
        )

    writes = [
        WriteRequest(f"d{n}", WriteOp.DELETE, Kind.ORGANIZATION, str(1000 + n)) for n in range(250)
    ]
    results = make_port(answer).apply(writes)
    assert [len(ids) for ids in calls] == [100, 100, 50]
    assert sorted(i for ids in calls for i in ids) == sorted(w.id or "" for w in writes)
    assert all(r.ok for r in results)


def test_a_delete_the_job_failed_or_left_undone_is_a_retryable_failure() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("show_many.json"):
            org = {"id": 8, "name": "Still AS", "updated_at": "2026-03-01T12:00:00Z"}
            return httpx.Response(200, json={"organizations": [org]})
        results = [{"id": 7, "status": "Failed", "error": "PermissionDenied", "details": "no"}]
        job = {"id": "J", "status": "completed", "results": results}
        return httpx.Response(200, json={"job_status": job})

    writes = [WriteRequest(n, WriteOp.DELETE, Kind.ORGANIZATION, n) for n in ("7", "8")]
    denied, undone = make_port(answer).apply(writes)
    assert denied.error is not None and denied.error.code == "permission_denied"
    assert denied.error.record == "zendesk organization 7"
    assert undone.error is not None and undone.error.code == "job_failed"
    assert undone.error.retryable


def test_find_by_origin() -> None:
    replay = Replay(load("find_by_origin"))
    port = make_port(replay)
    orgs = port.find_by_origin(
        Kind.ORGANIZATION, ["poweroffice:customer:1", "poweroffice:customer:2"]
    )
    users = port.find_by_origin(
        Kind.USER, ["poweroffice:contact_person:5", "poweroffice:contact_person:6"]
    )
    replay.done()
    assert {k: r.id for k, r in orgs.items()} == {"poweroffice:customer:1": "601"}
    assert {k: r.id for k, r in users.items()} == {"poweroffice:contact_person:6": "15"}


@pytest.mark.parametrize(
    ("write", "code", "field"),
    [
        (
            WriteRequest("x", WriteOp.UPDATE, Kind.CUSTOMER, "1", {"Name": "x"}),
            "unsupported_kind",
            None,
        ),
        (
            WriteRequest("x", WriteOp.UPDATE, Kind.USER, "1", {"phone": "1"}),
            "unsupported_field",
            "phone",
        ),
        (WriteRequest("x", WriteOp.UPDATE, Kind.USER, None, {"name": "x"}), "missing_id", None),
    ],
)
def test_refused_writes_send_nothing(write: WriteRequest, code: str, field: str | None) -> None:
    replay = Replay([])
    [result] = make_port(replay).apply([write])
    assert result.error is not None
    assert (result.error.code, result.error.field) == (code, field)
