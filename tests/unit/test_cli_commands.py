"""Every command through Typer's CliRunner, against in-memory systems and both state stores.

The wiring is swapped for one that hands out in-memory PowerOffice and Zendesk fakes; the state
store is either the in-memory one or a real SQLite file, so every command runs on both.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import attrs
import pytest
import structlog
from typer.testing import CliRunner, Result

from adapters.memory import MemoryStateStore, MemorySystem, memory_poweroffice, memory_zendesk
from adapters.reportjson import FORMAT, plan_from_json
from adapters.sqlite import SqliteStateStore
from cli.config import Settings
from cli.main import app
from cli.wiring import AppContext, ReadOnlyStore, open_sqlite
from talkcore.ports import (
    NO_HOOKS,
    ApplyHooks,
    StateStore,
    SystemPort,
    SystemUnavailable,
    WriteError,
    WriteRequest,
    WriteResult,
)
from talkcore.records import Kind, ReadPages, ReadResult, Record, System, collect_read

CUSTOMERS = "customers-organizations"
CONTACTS = "contact-persons-users"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; put it back so later tests log normally."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@attrs.define
class Flaky:
    """A system port around a memory system that can fail writes, reads or its check."""

    inner: MemorySystem
    fail_names: set[str] = attrs.field(factory=set)
    down: bool = False
    on_apply: Callable[[], None] | None = None
    refusal: Exception | None = None
    """Raised by every read: the system refusing the credentials, say."""

    @property
    def system(self) -> System:
        return self.inner.system

    def check(self) -> str:
        if self.down:
            raise SystemUnavailable(f"{self.system} refused the credentials (401)")
        return f"{self.system} in memory"

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        return collect_read(self.read_pages(kinds, cursors))

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        if self.refusal is not None:
            raise self.refusal
        if self.down:
            raise SystemUnavailable(f"{self.system} is down")
        return (yield from self.inner.read_pages(kinds, cursors))

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        if self.on_apply is not None:
            self.on_apply()
        results = []
        for write in writes:
            if write.fields.get("name") in self.fail_names:
                error = WriteError("invalid", "rejected by test", f"{self.system} organization")
                results.append(WriteResult(write.item_id, error=error))
            else:
                results.extend(self.inner.apply([write], hooks))
        return results

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        return self.inner.find_by_origin(kind, origin_keys)


@attrs.define
class FakeWiring:
    """In-memory systems; the store is shared memory or a SQLite file opened per command."""

    poweroffice: Flaky
    zendesk: Flaky
    store_kind: str
    memory_store: MemoryStateStore = attrs.field(factory=MemoryStateStore)

    def systems(self, settings: Settings, stack: ExitStack) -> tuple[SystemPort, SystemPort]:
        return self.poweroffice, self.zendesk

    def store(self, settings: Settings, stack: ExitStack) -> StateStore:
        if self.store_kind == "memory":
            return self.memory_store
        return open_sqlite(settings, stack)

    def read_only_store(self, settings: Settings, stack: ExitStack) -> StateStore:
        if self.store_kind == "memory":
            return ReadOnlyStore(self.memory_store)
        return open_sqlite(settings, stack, read_only=True)


@attrs.define
class Cli:
    """Runs talksync commands against the fakes."""

    wiring: FakeWiring
    state_path: Path
    env: dict[str, str] = attrs.field(factory=dict)
    waits: list[float] = attrs.field(factory=list)
    stop_after_waits: int = 0

    @property
    def po(self) -> MemorySystem:
        return self.wiring.poweroffice.inner

    @property
    def zd(self) -> MemorySystem:
        return self.wiring.zendesk.inner

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return len(self.waits) >= self.stop_after_waits

    def __call__(self, *args: str) -> Result:
        obj = AppContext(wiring=self.wiring, env=self.env, wait=self.wait)
        argv = ["--state", str(self.state_path), "--log-format", "json", *args]
        return CliRunner().invoke(app, argv, obj=obj)

    def open_store(self) -> StateStore:
        if self.wiring.store_kind == "memory":
            return self.wiring.memory_store
        return SqliteStateStore(self.state_path)


@pytest.fixture(params=["memory", "sqlite"])
def cli(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    po, zd = memory_poweroffice(), memory_zendesk()
    po.put(Kind.CUSTOMER, 1, Name="Acme AS", EmailAddress=None, IsPerson="false")
    po.put(Kind.CUSTOMER, 2, Name="Beta AS", EmailAddress=None, IsPerson="false")
    po.put(
        Kind.CONTACT_PERSON,
        11,
        emailAddress="kari@acme.no",
        partyId="1",
        firstName="Kari",
        lastName="Nordmann",
    )
    zd.put(Kind.USER, 501, email="kari@acme.no", name="Kari Nordmann", organization_id=None)
    wiring = FakeWiring(Flaky(po), Flaky(zd), request.param)
    return Cli(wiring, tmp_path / "talksync.db")


def ok(result: Result, code: int = 0) -> Result:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def organizations(zd: MemorySystem) -> dict[str, str | None]:
    return {r.id: r.get("name") for r in zd.records.get(Kind.ORGANIZATION, {}).values()}


# -- plan ------------------------------------------------------------------------------------


def test_plan_prints_what_would_happen_and_writes_nothing(cli: Cli) -> None:
    out = ok(cli("plan", "--from-empty")).stdout
    assert f"{CUSTOMERS}:" in out
    assert "create: organization in zendesk from poweroffice:customer:1" in out
    assert "link: poweroffice:contact_person:11 <-> zendesk:user:501 (identity" in out
    assert cli.po.applied == []
    assert cli.zd.applied == []
    store = cli.open_store()
    assert store.load_state().links == {}
    assert len(store.load_mirror(System.ZENDESK)) == 0


def test_plan_json_has_a_summary_and_every_item(cli: Cli) -> None:
    data = json.loads(ok(cli("plan", "--from-empty", "--json")).stdout)
    assert data["dry_run"] is True
    assert data["summary"]["create"] == 2
    assert data["summary"]["link"] == 1
    types = {item["type"] for item in data["items"]}
    assert types == {"create", "link", "update"}
    creates = [item for item in data["items"] if item["type"] == "create"]
    assert {item["record_kind"] for item in creates} == {"organization"}
    # The user's organization is one this run creates: its id is pending until then.
    (update,) = [item for item in data["items"] if item["type"] == "update"]
    assert update["target"] == "zendesk:user:501"
    assert update["changes"][0]["value"] == {"pending": "create:customers-organizations:1"}
    assert all(item["flow"] and item["id"] for item in data["items"])


def test_the_run_log_keeps_the_report_sync_json_prints(cli: Cli) -> None:
    printed = json.loads(ok(cli("sync", "--json")).stdout)
    (kept,) = cli.open_store().recent_runs(5)
    assert kept == printed
    assert printed["format"] == FORMAT and printed["summary"]["applied"] == 3
    # A plan prints the same shape, and the kept report reads back as the plan it ran.
    again = json.loads(ok(cli("plan", "--json")).stdout)
    assert list(again) == list(printed)
    assert plan_from_json(kept).by_id().keys() == {item["id"] for item in printed["items"]}


def test_plan_explain_shows_base_and_both_sides(cli: Cli) -> None:
    ok(cli("sync"))
    org_id = next(iter(organizations(cli.zd)))
    linked = next(r for r in cli.zd.records[Kind.ORGANIZATION].values() if r.id == org_id)
    cli.zd.edit(Kind.ORGANIZATION, linked.id, name="Renamed in Zendesk")
    out = ok(cli("plan", "--explain")).stdout
    assert "Name := 'Renamed in Zendesk' (zendesk_changed)" in out
    assert "[base 'Acme AS', poweroffice 'Acme AS', zendesk 'Renamed in Zendesk']" in out


# -- sync ------------------------------------------------------------------------------------


def test_sync_applies_the_plan_and_a_second_sync_does_nothing(cli: Cli) -> None:
    result = ok(cli("sync"))
    assert sorted(organizations(cli.zd).values()) == ["Acme AS", "Beta AS"]
    assert "applied" in result.stdout
    store = cli.open_store()
    assert len(store.load_state().table(CUSTOMERS)) == 2
    assert len(store.load_state().table(CONTACTS)) == 1

    again = json.loads(ok(cli("sync", "--json")).stdout)
    assert again["summary"]["applied"] == 0
    assert again["items"] == []


def test_sync_lists_failed_records_and_exits_1(cli: Cli) -> None:
    cli.wiring.zendesk.fail_names = {"Beta AS"}
    result = ok(cli("sync"), 1)
    assert "failed: create:" in result.stdout
    assert "rejected by test" in result.stdout
    assert list(organizations(cli.zd).values()) == ["Acme AS"]


def test_sync_exits_3_when_a_system_cannot_be_reached(cli: Cli) -> None:
    cli.wiring.zendesk.down = True
    result = ok(cli("sync"), 3)
    assert "could not reach a system: zendesk is down" in result.stderr


def test_sync_refuses_while_another_run_holds_the_state(cli: Cli) -> None:
    store = cli.open_store()
    with store.lock():
        result = ok(cli("sync"), 4)
    assert "another talksync run" in result.stderr
    assert cli.zd.applied == []


def test_sync_every_runs_until_told_to_stop(cli: Cli) -> None:
    cli.stop_after_waits = 2
    out = ok(cli("sync", "--every", "5m", "--json")).stdout
    reports = [json.loads(line) for line in out.splitlines()]
    assert len(reports) == 2  # the second wait said stop
    assert cli.waits == [300.0, 300.0]
    assert reports[0]["summary"]["applied"] == 3
    assert reports[1]["summary"]["applied"] == 0


def test_ctrl_c_finishes_the_write_in_flight_sends_nothing_more_saves_and_stops(cli: Cli) -> None:
    interrupted: list[bool] = []

    def press_ctrl_c_once(write: WriteRequest) -> None:
        del write
        if not interrupted:
            interrupted.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    cli.zd.after_write = press_ctrl_c_once
    result = ok(cli("sync", "--every", "1m"), 130)
    # The first organization's create was in flight and finished; nothing was sent after it,
    # not even the rest of its batch.
    assert "interrupted: 1 of 3 writes applied, state saved" in result.stderr
    assert cli.waits == []  # stopped after the run instead of waiting for the next
    assert len(organizations(cli.zd)) == 1
    assert len(cli.open_store().load_state().table(CUSTOMERS)) == 1
    assert cli.open_store().open_intents() == []  # the unsent writes are not left in doubt
    cli.zd.after_write = None
    again = json.loads(ok(cli("sync", "--json")).stdout)  # the next sync finishes the job
    assert again["summary"]["applied"] == 2
    assert sorted(organizations(cli.zd).values()) == ["Acme AS", "Beta AS"]
    assert json.loads(ok(cli("plan", "--json")).stdout)["summary"].get("update", 0) == 0


def test_a_bad_interval_is_a_usage_error(cli: Cli) -> None:
    result = ok(cli("sync", "--every", "soon"), 2)
    assert "--every: 'soon' is not a duration" in result.stderr


def test_log_lines_are_json_with_the_run_id(cli: Cli) -> None:
    result = ok(cli("sync"))
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    starts = [line for line in lines if line.get("event") == "sync.start"]
    assert len(starts) == 1
    assert len(starts[0]["run_id"]) == 12
    assert "kari@acme.no" not in result.stderr


# -- the queues a person works through -------------------------------------------------------


def manual_conflicts(cli: Cli) -> None:
    config = cli.state_path.parent / "manual.toml"
    config.write_text(f'[flows.{CUSTOMERS}]\nconflict = "manual"\n')
    cli.env["__config"] = str(config)


def run_with_config(cli: Cli, *args: str) -> Result:
    return cli("--config", cli.env["__config"], *args)


def test_a_held_conflict_is_listed_and_resolved_by_hand(cli: Cli) -> None:
    manual_conflicts(cli)
    ok(run_with_config(cli, "sync"))
    org = next(r for r in cli.zd.records[Kind.ORGANIZATION].values() if r.get("name") == "Acme AS")
    cli.po.edit(Kind.CUSTOMER, "1", Name="Acme Holding AS")
    cli.zd.edit(Kind.ORGANIZATION, org.id, name="ACME")
    ok(run_with_config(cli, "sync"))

    listed = ok(run_with_config(cli, "conflicts")).stdout
    key = f"{CUSTOMERS}/1/Name"
    assert key in listed
    assert "'Acme Holding AS'" in listed
    assert "'ACME'" in listed
    assert "held for a person" in listed

    ok(run_with_config(cli, "conflicts", "resolve", key, "--take", "zendesk"))
    assert "zendesk wins" in ok(run_with_config(cli, "conflicts", "list")).stdout
    ok(run_with_config(cli, "sync"))
    assert cli.po.records[Kind.CUSTOMER]["1"].get("Name") == "ACME"
    assert json.loads(ok(run_with_config(cli, "conflicts", "list", "--json")).stdout) == []


def test_resolving_an_unknown_conflict_names_it(cli: Cli) -> None:
    result = ok(cli("conflicts", "resolve", "nope/1/Name", "--take", "poweroffice"), 2)
    assert "no open conflict 'nope/1/Name'" in result.stderr


def test_an_ambiguity_is_listed_and_decided_by_hand(cli: Cli) -> None:
    cli.po.put(Kind.CONTACT_PERSON, 12, emailAddress="KARI@acme.no", partyId="2")
    ok(cli("sync"))
    listed = ok(cli("ambiguities")).stdout
    assert "poweroffice:contact_person:11" in listed
    assert "poweroffice:contact_person:12" in listed
    data = json.loads(ok(cli("ambiguities", "list", "--json")).stdout)
    assert data[0]["type"] == "ambiguity"

    refused = ok(cli("ambiguities", "link", CONTACTS, "12", "501"), 2)  # no terminal, no --yes
    assert "confirm on a terminal, or add --yes" in refused.stderr
    ok(cli("ambiguities", "link", CONTACTS, "poweroffice:contact_person:12", "501", "--yes"))
    links = json.loads(ok(cli("links", "list", "--flow", CONTACTS, "--json")).stdout)
    assert [(link["poweroffice_id"], link["zendesk_id"]) for link in links] == [("12", "501")]
    # Contact person 11 still shares the e-mail with a user now linked to 12: the list says
    # so, as the plan does.
    left = json.loads(ok(cli("ambiguities", "list", "--json")).stdout)
    planned = json.loads(ok(cli("plan", "--json")).stdout)["items"]
    assert left == [item for item in planned if item["type"] == "ambiguity"]
    assert [c.split(":")[-1] for c in left[0]["candidates"]] == ["11", "12", "501"]


def test_links_are_listed_filtered_and_unlinked(cli: Cli) -> None:
    ok(cli("sync"))
    listed = ok(cli("links")).stdout.splitlines()
    assert len(listed) == 3
    by_id = ok(cli("links", "list", "--id", "501")).stdout.splitlines()
    assert by_id == [
        f"{CONTACTS}\t11\tKari Nordmann <kari@acme.no>, customer Acme AS"
        "\t501\tKari Nordmann <kari@acme.no>\tlinked"
    ]

    ok(cli("links", "unlink", CUSTOMERS, "1"))
    remaining = json.loads(ok(cli("links", "list", "--flow", CUSTOMERS, "--json")).stdout)
    assert [(link["poweroffice_id"], link["state"]) for link in remaining] == [
        ("2", "linked"),
        ("1", "kept_apart"),
    ]


def test_unlinking_what_is_not_linked_is_a_usage_error(cli: Cli) -> None:
    result = ok(cli("links", "unlink", CUSTOMERS, "999"), 2)
    assert "no link in customers-organizations for PowerOffice record 999" in result.stderr
    assert "no flow 'bogus'" in ok(cli("links", "unlink", "bogus", "1"), 2).stderr


# -- status, check, dataflow, init, config ---------------------------------------------------


def test_status_shows_runs_links_and_cursors(cli: Cli) -> None:
    ok(cli("sync"))
    data = json.loads(ok(cli("status", "--json")).stdout)
    assert data["links"][CUSTOMERS] == 2
    assert data["links"][CONTACTS] == 1
    assert len(data["runs"]) == 1
    assert data["runs"][0]["applied"] == 3  # two organizations, one user's organization
    assert "zendesk:user" in data["cursors"]
    assert data["last_full_sync"] is not None
    text = ok(cli("status")).stdout
    assert "Links per flow" in text
    assert CUSTOMERS in text


def test_status_on_a_fresh_state_says_no_runs(cli: Cli) -> None:
    if cli.wiring.store_kind == "sqlite":
        result = ok(cli("status"), 2)
        assert f"no state at {cli.state_path}: run `talksync sync` first" in result.stderr
        return
    assert "(no runs yet)" in ok(cli("status")).stdout


def test_check_reports_each_system(cli: Cli) -> None:
    assert ok(cli("check")).stdout.splitlines() == [
        "ok: poweroffice in memory",
        "ok: zendesk in memory",
    ]
    cli.wiring.poweroffice.down = True
    result = ok(cli("check"), 3)
    error = json.loads(result.stderr)
    assert error["message"] == "poweroffice: poweroffice refused the credentials (401)"
    assert error["level"] == "error"
    assert "ok: zendesk in memory" in result.stdout


def test_dataflow_prints_the_checklist(cli: Cli) -> None:
    rst = ok(cli("dataflow")).stdout
    assert ".. list-table::" in rst
    assert "Contact person to User" in rst
    markdown = ok(cli("dataflow", "--format", "markdown")).stdout
    assert "| PowerOffice property | Zendesk property | Data type |" in markdown
    assert markdown == ok(cli("dataflow", "--format", "markdown")).stdout  # byte-identical
    assert "none" in markdown.split("## Customer (person) to User")[1]  # no empty table
    flows = json.loads(ok(cli("dataflow", "--format", "json")).stdout)
    assert [flow["id"] for flow in flows] == [
        "customers-organizations",
        "departments-organizations",
        CONTACTS,
        "person-customers-users",
    ]
    contacts = next(flow for flow in flows if flow["id"] == CONTACTS)
    assert {"poweroffice": "partyId", "zendesk": "organization_id", "datatype": "string"} in (
        contacts["properties"]
    )


def test_init_writes_a_config_that_loads(cli: Cli, tmp_path: Path) -> None:
    out = ok(cli("init")).stdout
    assert "TALKSYNC_ZENDESK_API_TOKEN" in out
    assert (tmp_path / "talksync.toml").is_file()
    assert "exists" in ok(cli("init"), 2).stderr
    ok(cli("init", "--force"))
    ok(cli("--config", "talksync.toml", "plan", "--from-empty"))


def test_a_config_error_exits_2_naming_the_key(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[flows.{CUSTOMERS}]\nconflict = "loudest"\n')
    result = ok(cli("--config", str(bad), "plan"), 2)
    assert f"flows.{CUSTOMERS}.conflict: expected one of" in result.stderr


def test_the_real_wiring_lists_missing_secrets(tmp_path: Path) -> None:
    obj = AppContext(env={})
    result = CliRunner().invoke(app, ["--state", str(tmp_path / "s.db"), "check"], obj=obj)
    assert result.exit_code == 2
    assert "TALKSYNC_POWEROFFICE_APPLICATION_KEY" in result.stderr
    assert "TALKSYNC_ZENDESK_SUBDOMAIN" in result.stderr


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout.startswith("talksync ")
    sync_help = " ".join(runner.invoke(app, ["sync", "--help"]).stdout.split())
    assert "(exit codes: talksync --help)" in sync_help
    assert "Exit codes:" in runner.invoke(app, ["--help"]).stdout


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "talksync.db"
    path.write_text("garbage " * 200)
    obj = AppContext(env={})
    result = CliRunner().invoke(app, ["--state", str(path), "status"], obj=obj)
    assert result.exit_code == 2
    assert "not a usable talksync state file" in result.stderr


# -- plan flags, exit codes, read-only commands ----------------------------------------------


def test_plan_flow_shows_only_that_flow(cli: Cli) -> None:
    out = ok(cli("plan", "--from-empty", "--flow", CONTACTS)).stdout.splitlines()
    assert f"{CONTACTS}:" in out
    assert f"{CUSTOMERS}:" not in out
    data = json.loads(ok(cli("plan", "--from-empty", "--flow", CUSTOMERS, "--json")).stdout)
    assert {item["flow"] for item in data["items"]} == {CUSTOMERS}
    assert data["summary"]["create"] == 2
    assert data["summary"]["link"] == 0  # the identity link belongs to the other flow
    assert "no flow 'people'" in ok(cli("plan", "--flow", "people"), 2).stderr


def test_plan_summary_prints_counts_per_flow_and_kind_only(cli: Cli) -> None:
    out = ok(cli("plan", "--from-empty", "--summary")).stdout
    assert "create: organization" not in out
    rows = {tuple(line.split()[1:4:2]) for line in out.splitlines() if "│" in line}
    assert (CUSTOMERS, "create") in rows or any(CUSTOMERS in line for line in out.splitlines())
    assert "applied" not in out  # a dry run writes nothing, so it counts no writes
    assert "failed" not in out


def test_plan_detailed_exitcode_tells_pending_from_nothing_and_errors(cli: Cli) -> None:
    ok(cli("plan", "--from-empty", "--detailed-exitcode"), 2)
    ok(cli("plan", "--from-empty"), 0)  # without the flag, pending changes are not an error
    ok(cli("sync"))
    ok(cli("plan", "--detailed-exitcode"), 0)
    org_id = next(iter(organizations(cli.zd)))
    cli.zd.edit(Kind.ORGANIZATION, org_id, name="Renamed in Zendesk")
    ok(cli("plan", "--detailed-exitcode", "--flow", CONTACTS), 0)
    ok(cli("plan", "--detailed-exitcode", "--flow", CUSTOMERS), 2)
    cli.wiring.zendesk.down = True
    ok(cli("plan", "--detailed-exitcode"), 1)  # an error is 1, never 2 (changes)
    ok(cli("plan"), 3)


def test_sync_counts_writes_but_a_dry_run_does_not(cli: Cli) -> None:
    planned = ok(cli("plan", "--from-empty")).stdout
    assert "applied" not in planned
    synced = ok(cli("sync")).stdout
    assert "applied" in synced
    assert CUSTOMERS in synced  # counts are per flow


@pytest.mark.parametrize(
    ("error", "variable"),
    [
        (
            "adapters.poweroffice.errors.PowerOfficeAuthError",
            "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY",
        ),
        ("adapters.zendesk.errors.ZendeskUnauthorized", "TALKSYNC_ZENDESK_API_TOKEN"),
    ],
)
def test_refused_credentials_exit_5_naming_the_variable(
    cli: Cli, error: str, variable: str
) -> None:
    import importlib

    module, name = error.rsplit(".", 1)
    kind = getattr(importlib.import_module(module), name)
    message = "refused the token request (HTTP 401): the subscription key was not accepted"
    refusal = kind(message) if "poweroffice" in module else kind(message, status=401, code="x")
    target = cli.wiring.poweroffice if "poweroffice" in module else cli.wiring.zendesk
    target.refusal = refusal
    for command in ("sync", "plan"):
        result = ok(cli(command), 5)
        assert variable in result.stderr
        assert "could not reach" not in result.stderr


def test_a_run_that_cannot_reach_a_system_is_not_a_credentials_error(cli: Cli) -> None:
    cli.wiring.poweroffice.down = True
    assert "TALKSYNC_" not in ok(cli("sync"), 3).stderr


READ_ONLY = (
    ("status",),
    ("status", "--json"),
    ("plan",),
    ("plan", "--from-empty"),
    ("links", "list"),
    ("links",),
    ("conflicts", "list"),
    ("ambiguities", "list"),
    ("dataflow",),
)


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_no_file(cli: Cli, args: tuple[str, ...]) -> None:
    before = _files(cli.state_path.parent)
    result = cli(*args)
    assert _files(cli.state_path.parent) == before, result.stderr
    previews = args[0] == "dataflow" or "--from-empty" in args
    if not previews and cli.wiring.store_kind == "sqlite":
        assert result.exit_code == 2
        assert f"no state at {cli.state_path}: run `talksync sync` first" in result.stderr
    ok(cli("sync"))
    before = _files(cli.state_path.parent)
    ok(cli(*args))
    assert _files(cli.state_path.parent) == before  # no lock file, no -wal left behind


def test_status_shows_a_run_in_progress(cli: Cli) -> None:
    ok(cli("sync"))
    assert json.loads(ok(cli("status", "--json")).stdout)["running"] is None
    if cli.wiring.store_kind != "sqlite":
        return  # the lock holder is read from the state file's lock, which memory lacks
    with cli.open_store().lock():
        data = json.loads(ok(cli("status", "--json")).stdout)
        text = ok(cli("status")).stdout
    assert data["running"]["pid"] == os.getpid()
    assert f"A run is in progress: pid {os.getpid()}" in text


def test_every_stderr_line_is_json_under_log_format_json(cli: Cli) -> None:
    cli.wiring.zendesk.fail_names = {"Beta AS"}
    for args in (("status",), ("plan",), ("sync",), ("sync",), ("status",), ("check",)):
        result = cli(*args)
        for line in result.stderr.splitlines():
            assert isinstance(json.loads(line), dict), (args, line)
    cli.wiring.zendesk.down = True
    for args in (("plan",), ("sync",), ("check",), ("sync", "--every", "1m")):
        for line in cli(*args).stderr.splitlines():
            assert isinstance(json.loads(line), dict), (args, line)
    cli.wiring.zendesk.down = False
    events = [json.loads(line)["event"] for line in cli("sync", "--full").stderr.splitlines()]
    assert "read.start" in events  # progress is among the JSON lines, not beside them


def test_sync_every_stamps_each_cycle_and_counts_repeats(cli: Cli) -> None:
    cli.wiring.zendesk.fail_names = set()
    cli.zd.put(Kind.USER, 502, email="kari@acme.no", name="Kari Dup", organization_id=None)
    cli.stop_after_waits = 3
    out = ok(cli("sync", "--every", "5m")).stdout
    assert out.count("sync starts") == 3
    assert out.count("-- next run at ") == 3
    assert out.count("ambiguity:") == 1  # printed once, then counted
    assert "1 unresolved item(s) unchanged since the last run" in out


def test_init_lists_only_the_variables_not_set(cli: Cli) -> None:
    cli.env.update(
        TALKSYNC_POWEROFFICE_APPLICATION_KEY="a",
        TALKSYNC_ZENDESK_SUBDOMAIN="acme",
        TALKSYNC_ZENDESK_OAUTH_TOKEN="t",
    )
    out = ok(cli("init")).stdout
    assert "TALKSYNC_POWEROFFICE_CLIENT_KEY" in out
    assert "TALKSYNC_POWEROFFICE_APPLICATION_KEY" not in out
    assert "TALKSYNC_ZENDESK" not in out


def test_version_short_flag() -> None:
    out = CliRunner().invoke(app, ["-V"]).stdout
    assert out.startswith("talksync ")


def test_the_readme_exit_code_table_is_the_cli_one() -> None:
    from cli.main import EXIT_CODES

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Exit codes\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    assert [(int(code), meaning.strip()) for code, meaning in rows] == list(EXIT_CODES)


def test_plan_names_the_records_it_would_change(cli: Cli) -> None:
    ok(cli("sync"))
    cli.po.edit(Kind.CUSTOMER, "1", Name="Acme Holding AS")
    lines = ok(cli("plan")).stdout.splitlines()
    (update,) = [line for line in lines if line.startswith("  update: zendesk:organization:")]
    assert update.endswith('"Acme AS"')  # the name a person knows it by, from the last sync
