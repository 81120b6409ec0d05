"""What the real CLI prints, as a subprocess against both sandboxes on loopback sockets: stderr
that is pure JSON lines under ``--log-format json`` (retries of both systems included, in one
vocabulary), read-only commands that create no file, the exit codes a script relies on, and a
wrong subscription key that names its variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import sandboxes, talksync

from adapters.sandbox.faults import FaultConfig

pytestmark = pytest.mark.e2e

READ_ONLY = (
    ("status",),
    ("plan",),
    ("plan", "--from-empty"),
    ("links", "list"),
    ("conflicts", "list"),
    ("ambiguities", "list"),
    ("dataflow",),
)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON; fails naming the first line that is not."""
    events = []
    for line in stderr.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
    return events


def test_stderr_is_json_lines_and_retries_share_one_event(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with sandboxes(size=20) as running:
        # Refusals only (no delays), so every retry is quick and nothing is in doubt.
        running.controller.configure(FaultConfig(rate=0.3, seed=3, kinds=("503",)))
        done = talksync(running.env(), state, "-v", "sync")
        running.controller.configure(FaultConfig())
        again = talksync(running.env(), state, "sync", "--json")
    events = json_lines(done.stderr) + json_lines(again.stderr)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    names = {event["event"] for event in events}
    assert {"read.start", "read.done", "sync.start", "sync.done"} <= names
    retries = [event for event in events if event["event"] == "http.retry"]
    assert {event["system"] for event in retries} == {"poweroffice", "zendesk"}
    for event in retries:
        assert event["level"] == "warning"
        assert {"call", "attempt", "reason", "wait"} <= set(event)
    assert not any(name.endswith((".http.retry", "office.retry")) for name in names)


def test_a_usage_error_is_a_json_line_too(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    done = talksync({}, state, "sync", "--no-such-option")
    assert done.returncode == 2
    (error,) = json_lines(done.stderr)
    assert error["event"] == "cli.error"
    assert "--no-such-option" in error["message"]
    assert sorted(tmp_path.iterdir()) == []


def test_read_only_commands_create_no_file_and_say_what_to_run(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with sandboxes(size=5) as running:
        for args in READ_ONLY:
            done = talksync(running.env(), state, *args)
            assert sorted(tmp_path.iterdir()) == [], (args, done.stderr)
            if args[0] != "dataflow" and "--from-empty" not in args:
                assert done.returncode == 2, (args, done.stderr)
                (error,) = json_lines(done.stderr)
                assert error["message"] == f"no state at {state}: run `talksync sync` first"
        assert talksync(running.env(), state, "sync").returncode == 0
        files = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        for args in READ_ONLY:
            done = talksync(running.env(), state, *args)
            assert done.returncode == 0, (args, done.stderr)
            json_lines(done.stderr)
            assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files, args


def test_plan_detailed_exitcode_and_a_refused_key(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with sandboxes(size=5) as running:
        env = running.env()
        assert talksync(env, state, "plan", "--from-empty", "--detailed-exitcode").returncode == 2
        assert talksync(env, state, "sync").returncode == 0
        assert talksync(env, state, "plan", "--detailed-exitcode").returncode == 0
        summary = talksync(env, state, "plan", "--summary")
        assert "name_collision" in summary.stdout  # reports wait for a person, not a sync
        assert "applied" not in summary.stdout and "create" not in summary.stdout
        wrong = {**env, "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY": "not-the-key"}
        refused = talksync(wrong, state, "sync")
        assert refused.returncode == 5, refused.stderr[-2000:]
        (error,) = [e for e in json_lines(refused.stderr) if e["event"] == "cli.error"]
        assert "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY" in error["message"]
        assert "(: " not in error["message"]
        assert "not-the-key" not in refused.stderr
        assert talksync(wrong, state, "plan", "--detailed-exitcode").returncode == 1
