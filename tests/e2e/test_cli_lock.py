"""Two real processes on one state file: the second run refuses at once; a dead holder frees it.

The holder is the real CLI in a child process, wired to in-memory systems whose Zendesk side
blocks inside its first write until the test says go, so the lock is held for as long as the
test needs. The second is ``python -m cli.main`` with the real wiring (dummy credentials that
are never used: the lock is taken before either system is called).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HOLDER = r"""
import sys, time
from pathlib import Path
from adapters.memory import memory_poweroffice, memory_zendesk
from adapters.sqlite import SqliteStateStore
from cli.main import app
from cli.wiring import AppContext
from talkcore.ports import NO_HOOKS
from talkcore.records import Kind

db, holding, release = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
po, zd = memory_poweroffice(), memory_zendesk()
po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")


class BlockingZendesk:
    system = zd.system
    read = zd.read
    find_by_origin = zd.find_by_origin

    def apply(self, writes, hooks=NO_HOOKS):
        holding.write_text("holding")
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return zd.apply(writes, hooks)


class Wiring:
    def systems(self, settings, stack):
        return po, BlockingZendesk()

    def store(self, settings, stack):
        return stack.enter_context(SqliteStateStore(settings.state_path))


app(["--state", db, "--log-format", "json", "sync"], obj=AppContext(wiring=Wiring(), env={}))
"""

DUMMY_ENV = {
    "TALKSYNC_POWEROFFICE_BASE_URL": "http://127.0.0.1:9/v2",
    "TALKSYNC_POWEROFFICE_TOKEN_URL": "http://127.0.0.1:9/OAuth/Token",
    "TALKSYNC_POWEROFFICE_APPLICATION_KEY": "dummy-app",
    "TALKSYNC_POWEROFFICE_CLIENT_KEY": "dummy-client",
    "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY": "dummy-sub",
    "TALKSYNC_ZENDESK_BASE_URL": "http://127.0.0.1:9",
    "TALKSYNC_ZENDESK_EMAIL": "agent@example.com",
    "TALKSYNC_ZENDESK_API_TOKEN": "dummy-token",
}


def start_holder(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    holding, release = tmp_path / "holding", tmp_path / "release"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "talksync.db"), str(holding), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not holding.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the holder never reached its first write"
        time.sleep(0.01)
    return proc, release


def talksync(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **DUMMY_ENV}
    env.pop("TALKSYNC_STATE", None)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--state", str(tmp_path / "talksync.db"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_a_second_run_refuses_at_once_while_the_first_holds_the_state(tmp_path: Path) -> None:
    holder, release = start_holder(tmp_path)
    try:
        started = time.monotonic()
        second = talksync(tmp_path, "sync")
        elapsed = time.monotonic() - started
        assert second.returncode == 4, second.stderr
        assert "another talksync run" in second.stderr
        assert f"(pid {holder.pid})" in second.stderr
        assert elapsed < 15  # refused at once, not after waiting for the holder
        # A person's decision is refused too: it would be overwritten by the running sync.
        decided = talksync(tmp_path, "links", "unlink", "customers-organizations", "1")
        assert decided.returncode == 4, decided.stderr
        # Reading is fine while a run holds the state (WAL: readers never wait).
        assert talksync(tmp_path, "status", "--json").returncode == 0
    finally:
        release.write_text("go")
        _, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err

    # The holder finished and released the lock: a person may now change the state.
    after = talksync(tmp_path, "links", "unlink", "customers-organizations", "1")
    assert after.returncode == 0, after.stderr


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    holder, _ = start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    # Nothing was saved by the killed run, so there is no link; but the lock is free.
    result = talksync(tmp_path, "links", "unlink", "customers-organizations", "1")
    assert result.returncode == 2, result.stderr
    assert "no link in customers-organizations" in result.stderr
