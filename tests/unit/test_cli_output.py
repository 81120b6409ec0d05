"""How plans and progress are shown: item lines with reasons, bars on a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from structlog.testing import capture_logs

from cli.output import ProgressObserver, item_json, item_lines
from talkcore.plan import Conflict, Create, FieldChange, NameCollision, PendingId, Update
from talkcore.policy import ConflictPolicy
from talkcore.records import Kind, RecordKey, System

ORG = RecordKey.of(Kind.ORGANIZATION, "77")
CUSTOMER = RecordKey.of(Kind.CUSTOMER, "1")


def test_an_update_explained_shows_base_and_both_sides() -> None:
    change = FieldChange(
        "organization_id",
        PendingId("create:x:1"),
        "poweroffice_changed",
        None,
        "1",
        None,
        "partyId",
    )
    update = Update(
        "update:u", "contact-persons-users", RecordKey.of(Kind.USER, "5"), "9", (change,)
    )
    plain = item_lines(update)
    assert plain == [
        "update: zendesk:user:5",
        "    organization_id := <id of create:x:1> (poweroffice_changed)",
    ]
    explained = item_lines(update, explain=True)[1]
    assert "[base (empty), poweroffice '1', zendesk (empty)]" in explained


def test_a_conflict_line_names_both_values_the_policy_and_the_winner() -> None:
    conflict = Conflict(
        "c",
        "customers-organizations",
        CUSTOMER,
        ORG,
        "Name",
        "A",
        "B",
        "C",
        ConflictPolicy.NEWEST,
        System.ZENDESK,
        "conflict_newest_wins",
    )
    (line,) = item_lines(conflict)
    assert "'B'" in line
    assert "'C'" in line
    assert "zendesk wins (newest, conflict_newest_wins)" in line


def test_a_collision_names_the_holder() -> None:
    (line,) = item_lines(
        NameCollision(
            "n",
            "departments-organizations",
            RecordKey.of(Kind.DEPARTMENT, "3"),
            "Acme",
            ORG,
            "name_taken",
        )
    )
    assert line == (
        "name_collision: poweroffice:department:3 name 'Acme' is held by "
        "zendesk:organization:77 (name_taken)"
    )


def test_item_json_keeps_item_type_and_record_kind_apart() -> None:
    create = Create(
        "create:customers-organizations:1",
        "customers-organizations",
        Kind.ORGANIZATION,
        CUSTOMER,
        "poweroffice:customer:1",
        {"name": "Acme"},
    )
    data = item_json(create)
    assert data["type"] == "create"
    assert data["record_kind"] == "organization"
    assert "kind" not in data  # one name, one meaning: no key is the item's type and a kind
    assert data["source"] == "poweroffice:customer:1"


def test_progress_bars_on_a_terminal_and_lines_otherwise() -> None:
    tty = io.StringIO()
    with ProgressObserver(Console(file=tty, force_terminal=True, width=100), True) as bars:
        bars.event("read.start", {"system": "zendesk", "full": True})
        bars.event("read.done", {"system": "zendesk", "count": 12, "full": True})
        bars.event("apply.start", {"system": "zendesk", "total": 4})
        bars.event("apply.done", {"system": "zendesk", "applied": 3, "failed": 1})
    assert "read zendesk" in tty.getvalue()
    assert "4/4" in tty.getvalue()

    # Without bars the events are log lines, so --log-format json keeps stderr pure JSON.
    plain = io.StringIO()
    with (
        capture_logs() as logged,
        ProgressObserver(Console(file=plain, width=100), False) as lines,
    ):
        lines.event("read.done", {"system": "zendesk", "count": 12, "full": True})
    assert plain.getvalue() == ""
    assert logged == [
        {"event": "read.done", "log_level": "info", "system": "zendesk", "count": 12, "full": True}
    ]


def test_the_write_bar_moves_with_each_progress_event_and_has_rate_and_eta_columns() -> None:
    from rich.progress import TimeRemainingColumn

    tty = io.StringIO()
    with ProgressObserver(Console(file=tty, force_terminal=True, width=100), True) as bars:
        bars.event("apply.start", {"system": "zendesk", "total": 400})
        bars.event("apply.progress", {"system": "zendesk", "done": 100, "total": 400})
        assert bars._progress is not None
        (task,) = bars._progress.tasks
        assert task.completed == 100  # moved by one bulk call, not held to batch ends
        columns = bars._progress.columns
        assert any(isinstance(c, TimeRemainingColumn) for c in columns)  # the ETA
        assert any(type(c).__name__ == "_RateColumn" for c in columns)  # writes a second


def test_without_bars_write_progress_is_logged_each_tenth_of_the_way() -> None:
    with (
        capture_logs() as logged,
        ProgressObserver(Console(file=io.StringIO(), width=100), False) as lines,
    ):
        for done in range(1, 101):
            lines.event("apply.progress", {"system": "poweroffice", "done": done, "total": 100})
    # The first call's, then one a tenth of the way (the last is the end).
    assert [line["done"] for line in logged] == [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


def test_names_follow_the_keys_they_name() -> None:
    from cli.output import Names
    from talkcore.records import Record, Snapshot

    user = Record(RecordKey(System.ZENDESK, Kind.USER, "501"), {"name": "Kari", "email": "k@a.no"})
    person = Record(
        RecordKey(System.POWEROFFICE, Kind.CONTACT_PERSON, "11"),
        {"firstName": "Kari", "lastName": "Nordmann", "emailAddress": "k@a.no"},
    )
    names = Names(
        {
            System.ZENDESK: Snapshot.of(System.ZENDESK, [user]),
            System.POWEROFFICE: Snapshot.of(System.POWEROFFICE, [person]),
        }
    )
    line = "link: poweroffice:contact_person:11 <-> zendesk:user:501 (identity)"
    assert names.annotate(line) == (
        'link: poweroffice:contact_person:11 "Kari Nordmann <k@a.no>" <-> zendesk:user:501'
        ' "Kari <k@a.no>" (identity)'
    )
    assert names.annotate("update: zendesk:user:999") == "update: zendesk:user:999"
    assert Names().annotate(line) == line


def test_an_unsupported_move_names_the_setting_that_allows_it() -> None:
    from talkcore.plan import UnsupportedChange

    move = UnsupportedChange(
        "unsupported:1",
        "contact-persons-users",
        RecordKey(System.POWEROFFICE, Kind.CONTACT_PERSON, "5000001"),
        "partyId",
        "1000003",
    )
    head, hint = item_lines(move)
    assert head.endswith("partyId='1000003' (move_not_enabled)")
    assert "allow_moves = true under [flows.contact-persons-users]" in hint
