"""Reading Zendesk through the real CLI against the sandboxes on loopback sockets: a token whose
user is not an admin (the incremental exports refuse it), and an organization export that
stops advancing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from e2e_support import talksync

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox

pytestmark = pytest.mark.e2e

ORGANIZATION_LIST = "zendesk GET /api/v2/organizations"
ORGANIZATION_EXPORT = "zendesk GET /api/v2/incremental/organizations"


@contextmanager
def served(caller_role: str = "admin") -> Iterator[RunningSandboxes]:
    """Small seeded sandboxes whose Zendesk credentials sign in with ``caller_role``."""
    po, zd = PowerOfficeSandbox(), ZendeskSandbox(job_polls=0, caller_role=caller_role)
    seed_sandboxes(po, zd, size=8, seed=5)
    with serve_sandboxes(po, zd) as running:
        yield running


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of one run."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def errors(stderr: str) -> str:
    """Every error line of one run, joined."""
    return "\n".join(
        str(e.get("message") or e.get("event")) for e in events(stderr) if e["level"] == "error"
    )


def test_check_refuses_a_token_whose_user_is_not_an_admin(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with served("agent") as running:
        checked = talksync(running.env(), state, "check")
        # Without check's warning the first sync works (it reads without the exports) ...
        first = talksync(running.env(), state, "sync")
        # ... and the next one is refused the exports: the message says what is missing.
        second = talksync(running.env(), state, "sync")
    # Exit 5: fixed like refused credentials, with another (an admin's) token.
    assert checked.returncode == 5, checked.stdout
    said = errors(checked.stderr)
    assert "'admin' role" in said and "role 'agent'" in said, checked.stderr[-2000:]
    assert "fix: check TALKSYNC_ZENDESK_API_TOKEN" in said
    assert checked.stdout.count("ok: ") == 1  # PowerOffice's credentials are fine
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 5, second.stderr[-2000:]
    said = errors(second.stderr)
    assert "'admin' role" in said and "could not reach" not in said, second.stderr[-2000:]


def test_check_passes_an_admin_token(tmp_path: Path) -> None:
    with served("admin") as running:
        checked = talksync(running.env(), tmp_path / "state.db", "check")
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "signed in as user" in checked.stdout and "(admin)" in checked.stdout


def test_a_stalled_organization_export_is_reported_and_the_next_run_reads_in_full(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    with served() as running:
        env = running.env()
        assert talksync(env, state, "sync").returncode == 0
        requests = running.controller.requests
        running.zendesk.stall_organization_export = True
        stalled = talksync(env, state, "sync", "--json")
        listed_before = requests[ORGANIZATION_LIST]
        exported_before = requests[ORGANIZATION_EXPORT]
        recovered = talksync(env, state, "sync", "--json")
        listed_after = requests[ORGANIZATION_LIST]
        exported_after = requests[ORGANIZATION_EXPORT]
        running.zendesk.stall_organization_export = False
        settled = talksync(env, state, "sync", "--json")
        exported_last = requests[ORGANIZATION_EXPORT]
    assert stalled.returncode == 0, stalled.stderr[-2000:]
    report = json.loads(stalled.stdout)
    [problem] = report["problems"]
    assert (problem["system"], problem["kind"], problem["field"]) == (
        "zendesk",
        "organization",
        "end_time",
    )
    assert "stopped advancing" in problem["message"]
    assert report["summary"]["read_problems"] == 1
    warnings = [e for e in events(stalled.stderr) if e["event"] == "zendesk.read.export_stalled"]
    assert [w["level"] for w in warnings] == ["warning"]
    # The next run reads every organization (one list page) instead of asking the export.
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert json.loads(recovered.stdout)["problems"] == []
    assert (listed_after - listed_before, exported_after - exported_before) == (1, 0)
    # Then it goes back to the export, which works again.
    assert settled.returncode == 0, settled.stderr[-2000:]
    assert exported_last == exported_after + 1
    assert json.loads(settled.stdout)["problems"] == []
