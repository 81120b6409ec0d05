"""Six tenants, three `talksync worker` processes, PostgreSQL, and one sandbox server for all
of them (six PowerOffice clients under one subscription key, six Zendesk accounts by path
prefix). The worker running a tenant's sync is SIGKILLed mid-sync, twice; afterwards every
tenant ends in the same state as one clean run of that tenant alone, no organization is
duplicated, no tenant ever ran twice at once (from the run log), and the PowerOffice gateway
never saw more than 10 requests in any one-second window for the shared subscription key."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_support import cli_env, comparable, duplicated_external_ids, talksync
from site_support import changes
from test_worker import WAIT_LIMIT, overlapping, start_worker, stop, wait_for
from tests.tenant_support import register_tenants, runs

from adapters.postgres import LOCK_SPACE
from adapters.sandbox.accounts import PowerOfficeGateway, ZendeskAccounts
from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningAccounts, serve_accounts, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANTS = [f"t{n}" for n in range(6)]
SIZE = 6
CADENCE = timedelta(seconds=3)


def _seeded(n: int, po: PowerOfficeSandbox | None = None) -> tuple[PowerOfficeSandbox, Any]:
    """Tenant ``n``'s data: the same for the shared server and for its clean reference run."""
    po = po or PowerOfficeSandbox()
    zd = ZendeskSandbox(job_polls=0)
    seed_sandboxes(po, zd, size=SIZE, seed=100 + n)
    return po, zd


@contextmanager
def shared_server() -> Iterator[RunningAccounts]:
    gateway = PowerOfficeGateway([f"client-{name}" for name in TENANTS], rate_limit=10)
    accounts = {}
    for n, name in enumerate(TENANTS):
        _, accounts[name] = _seeded(n, gateway.clients[f"client-{name}"])
    with serve_accounts(gateway, ZendeskAccounts(accounts)) as running:
        yield running


def reference(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Each tenant's state after one clean `talksync sync` of it alone (SQLite, own sandboxes)."""
    found = {}
    for n, name in enumerate(TENANTS):
        po, zd = _seeded(n)
        with serve_sandboxes(po, zd) as running:
            state = tmp_path / f"reference-{name}" / "talksync.db"
            state.parent.mkdir()
            done = talksync(running.env(), state, "sync")
            assert done.returncode == 0, done.stderr[-3000:]
            found[name] = comparable(po.dump(), zd.dump())
    return found


def _holder_pid(url: str, name: str) -> int | None:
    """The process whose run holds ``name``'s tenant lock (its connection is named after it)."""
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " JOIN tenants t ON t.id = l.objid::bigint"
            " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.granted AND t.name = %s",
            (LOCK_SPACE, name),
        ).fetchone()
    if row is None:
        return None
    return int(str(row[0]).removeprefix("talksync ").partition("@")[0])


def test_six_tenants_three_workers_two_kills_one_budget(tmp_path: Path, database_url: str) -> None:
    expected = reference(tmp_path)
    with shared_server() as running:
        env = cli_env(
            {
                **register_tenants(database_url, running, TENANTS, CADENCE),
                "TALKSYNC_DATABASE_URL": database_url,
            }
        )
        logs: list[Path] = []

        def worker() -> subprocess.Popen[str]:
            logs.append(tmp_path / f"worker-{len(logs)}.log")
            return start_worker(env, logs[-1])

        # The answer to t0's and to t1's first Zendesk write is withheld: whichever worker is
        # running that sync is SIGKILLed there, after the write was applied and before it saw
        # the answer (the journal's worst case), and a fresh worker takes its place.
        held = ("t0", "t1")
        for name in held:
            running.zendesk.accounts[name].controller.hold_after_writes(1)
        workers = [worker() for _ in range(3)]
        killed = []
        try:
            for name in held:
                controller = running.zendesk.accounts[name].controller
                assert controller.wait_until_held(timeout=WAIT_LIMIT), name
                pid = _holder_pid(database_url, name)
                assert pid is not None, f"no process holds {name}'s lock"
                (victim,) = [w for w in workers if w.pid == pid]
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=WAIT_LIMIT)
                killed.append(name)
                controller.release()
                workers[workers.index(victim)] = worker()

            def converged() -> bool:
                seen = runs(database_url)
                return all(
                    seen.get(name)
                    and changes(seen[name][-1]) == 0
                    and seen[name][-1]["summary"]["failed"] == 0
                    for name in TENANTS
                )

            wait_for("every tenant to reach a run with nothing left to do", converged, logs)
        finally:
            codes = [stop(w) for w in workers]
        assert codes == [0, 0, 0], [p.read_text()[-2000:] for p in logs]
        assert killed == list(held)

        seen = runs(database_url)
        for name in TENANTS:
            po = running.gateway.clients[f"client-{name}"]
            zd = running.zendesk.accounts[name]
            assert comparable(po.dump(), zd.dump()) == expected[name], name
            assert duplicated_external_ids(zd.dump()) == [], name
            assert overlapping(seen[name]) == [], name
        assert 0 < running.gateway.max_per_second() <= 10, running.gateway.per_second
        stderr = "".join(p.read_text() for p in logs)
        assert running.gateway.subscription_key not in stderr
        assert "worker.stalled_job" in stderr
