"""The real wiring end to end: the CLI over HTTP against both sandboxes on loopback sockets.

This is what `talksync sandbox serve` plus the printed exports give a person: check, plan,
sync and status with the real adapters and a real SQLite file.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner, Result

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_forever, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from cli.main import app
from cli.wiring import AppContext, RealWiring


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def sandboxes() -> Iterator[RunningSandboxes]:
    po, zd = PowerOfficeSandbox(), ZendeskSandbox()
    seed_sandboxes(po, zd, size=8, seed=3)
    with serve_sandboxes(po, zd) as running:
        yield running


def talksync(env: dict[str, str], state: Path, *args: str) -> Result:
    # The adapters' waits (job polling, retries) are real sleeps; here they are cut short.
    obj = AppContext(
        wiring=RealWiring(sleep=lambda seconds: time.sleep(min(seconds, 0.01))), env=env
    )
    return CliRunner().invoke(app, ["--state", str(state), "--log-format", "json", *args], obj=obj)


def test_check_plan_sync_status_against_the_sandboxes(
    sandboxes: RunningSandboxes, tmp_path: Path
) -> None:
    env, state = sandboxes.env(), tmp_path / "talksync.db"

    checked = talksync(env, state, "check")
    assert checked.exit_code == 0, checked.stderr
    assert len(checked.stdout.splitlines()) == 2

    refused = talksync(env, state, "plan")
    assert refused.exit_code == 2
    assert f"no state at {state}: run `talksync sync` first" in refused.stderr
    planned = talksync(env, state, "plan", "--from-empty", "--json")
    assert planned.exit_code == 0, planned.stderr
    summary = json.loads(planned.stdout)["summary"]
    assert summary["create"] > 0
    organizations_before = len(sandboxes.zendesk.dump()["organizations"])

    synced = talksync(env, state, "sync", "--json")
    assert synced.exit_code == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert report["summary"]["applied"] > 0
    assert report["failures"] == []
    assert len(sandboxes.zendesk.dump()["organizations"]) > organizations_before
    for secret in (env["TALKSYNC_ZENDESK_API_TOKEN"], env["TALKSYNC_POWEROFFICE_CLIENT_KEY"]):
        assert secret not in synced.stdout + synced.stderr

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("talksync.db*"))
    for name, value in env.items():
        if name.endswith(("_KEY", "_TOKEN")):
            assert value.encode() not in stored, f"{name} found in the state file"

    again = json.loads(talksync(env, state, "sync", "--json").stdout)
    writes = ("create", "update", "delete", "link", "unlink")
    assert {kind: again["summary"][kind] for kind in writes} == dict.fromkeys(writes, 0)

    status = json.loads(talksync(env, state, "status", "--json").stdout)
    assert sum(status["links"].values()) > 0
    assert status["runs"][1]["run_id"] == report["run_id"]


def test_wrong_credentials_are_one_clear_line_and_exit_5(
    sandboxes: RunningSandboxes, tmp_path: Path
) -> None:
    env = {**sandboxes.env(), "TALKSYNC_ZENDESK_API_TOKEN": "wrong-token"}
    result = talksync(env, tmp_path / "s.db", "check")
    assert result.exit_code == 5
    assert result.stdout.startswith("ok: ")
    assert "zendesk:" in result.stderr
    assert "TALKSYNC_ZENDESK_API_TOKEN" in result.stderr
    assert "wrong-token" not in result.stderr
    synced = talksync(env, tmp_path / "s.db", "sync")
    assert synced.exit_code == 5
    assert "TALKSYNC_ZENDESK_API_TOKEN" in synced.stderr
    assert "could not reach" not in synced.stderr


def test_a_host_name_that_does_not_resolve_fails_at_once(
    sandboxes: RunningSandboxes, tmp_path: Path
) -> None:
    env = {**sandboxes.env(), "TALKSYNC_ZENDESK_BASE_URL": "http://no-such-host.invalid"}
    result = talksync(env, tmp_path / "s.db", "sync")
    assert result.exit_code == 3
    assert "host name no-such-host.invalid does not resolve" in result.stderr
    assert "TALKSYNC_ZENDESK_SUBDOMAIN or TALKSYNC_ZENDESK_BASE_URL" in result.stderr
    assert "retry" not in result.stderr  # said at once, not after back-off


def test_serve_forever_prints_exports_the_cli_accepts(tmp_path: Path) -> None:
    out, stop = io.StringIO(), threading.Event()
    printed = threading.Event()

    def wait() -> None:
        printed.set()
        stop.wait(30)

    server = threading.Thread(target=serve_forever, args=(3, 1), kwargs={"out": out, "wait": wait})
    server.start()
    try:
        assert printed.wait(30)
        env = {}
        for line in out.getvalue().splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value
        result = talksync(env, tmp_path / "s.db", "check")
        assert result.exit_code == 0, result.stderr
    finally:
        stop.set()
        server.join(30)
