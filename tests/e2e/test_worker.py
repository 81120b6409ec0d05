"""`talksync worker` processes on a real PostgreSQL and the sandboxes: every tenant is synced as
it falls due with its own account and secrets, never twice at once (shown from the run log), a
failing tenant backs off without holding up the others, a sync can be deferred ahead of its
schedule, SIGTERM stops a worker cleanly, and a SIGKILLed worker's tenant runs again elsewhere
after its lease."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from e2e_support import CLI, cli_env, duplicated_external_ids
from site_support import changes
from tests.tenant_support import runs

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.tenant_registry import TenantRegistry
from adapters.tenants import SecretRef, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CADENCE = timedelta(seconds=4)
WAIT_LIMIT = 240.0
"""Seconds a condition may take before the test gives up (a hang guard, not a measurement)."""


@contextmanager
def two_accounts() -> Iterator[tuple[RunningSandboxes, RunningSandboxes]]:
    """One PowerOffice client with data and two Zendesk accounts: one seeded with matching
    users, one empty. Both tenants use the same PowerOffice client (the deployment has one
    PowerOffice base URL), so each Zendesk ends with the same organizations."""
    po, zd_a = PowerOfficeSandbox(), ZendeskSandbox(job_polls=0)
    seed_sandboxes(po, zd_a, size=12, seed=5)
    with ExitStack() as stack:
        a = stack.enter_context(serve_sandboxes(po, zd_a))
        b = stack.enter_context(serve_sandboxes(PowerOfficeSandbox(), ZendeskSandbox(job_polls=0)))
        yield a, b


def tenant(name: str, account: RunningSandboxes, token_var: str, *, email: bool) -> Tenant:
    return Tenant(
        name,
        zendesk_url=account.zendesk_url,
        zendesk_email=account.zendesk.credentials.email if email else None,
        zendesk_token=SecretRef("env", token_var),
        poweroffice_client_key=SecretRef("env", "SHARED_PO_CLIENT_KEY"),
        cadence=CADENCE,
    )


def worker_env(a: RunningSandboxes, b: RunningSandboxes, url: str) -> dict[str, str]:
    """The deployment's environment: PowerOffice's application and subscription keys and URLs,
    the database, and the tenants' secrets under the names their references give. No Zendesk
    setting and no client key of its own: those come from each tenant."""
    deployment = {
        k: v
        for k, v in a.env().items()
        if k.startswith("TALKSYNC_POWEROFFICE_") and not k.endswith("CLIENT_KEY")
    }
    return cli_env(
        {
            **deployment,
            "TALKSYNC_DATABASE_URL": url,
            "SHARED_PO_CLIENT_KEY": a.poweroffice.credentials.client_key,
            "ACME_ZENDESK_TOKEN": a.zendesk.credentials.api_token,
            "BETA_ZENDESK_OAUTH": b.zendesk.credentials.oauth_token,
        }
    )


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--log-format", "json", "worker", "--stalled-after", "3", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        env=env,
        cwd=log.parent,
    )


def wait_for(what: str, done: Callable[[], bool], logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not done():
        if time.monotonic() > deadline:
            tails = "\n".join(p.read_text()[-3000:] for p in logs)
            raise AssertionError(f"gave up waiting for {what}; worker logs:\n{tails}")
        time.sleep(0.25)


def overlapping(reports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of runs of one tenant whose [started, finished] intervals overlap."""
    spans = sorted(
        (datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"]), r["run_id"])
        for r in reports
    )
    return [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=WAIT_LIMIT)


def test_workers_sync_each_tenant_alone_and_a_failing_one_backs_off(
    tmp_path: Path, database_url: str
) -> None:
    with two_accounts() as (a, b):
        with TenantRegistry(database_url) as registry:
            registry.add(tenant("acme", a, "ACME_ZENDESK_TOKEN", email=True))
            registry.add(tenant("beta", b, "BETA_ZENDESK_OAUTH", email=False))
            registry.add(tenant("broken", b, "NOT_SET_ANYWHERE", email=False))
        env = worker_env(a, b, database_url)
        logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
        workers = [start_worker(env, logs[0]), start_worker(env, logs[1], "--concurrency", "2")]
        try:

            def settled() -> bool:
                seen = runs(database_url)
                with TenantRegistry(database_url) as registry:
                    broken = registry.get("broken")
                return (
                    all(len(seen.get(name, [])) >= 3 for name in ("acme", "beta"))
                    and broken.failure_streak >= 2
                )

            wait_for("three runs of each good tenant and two failures of the broken", settled, logs)
        finally:
            codes = [stop(w) for w in workers]
        assert codes == [0, 0], [p.read_text()[-2000:] for p in logs]

        seen = runs(database_url)
        for name, zendesk in (("acme", a.zendesk), ("beta", b.zendesk)):
            assert overlapping(seen[name]) == [], name
            first, last = seen[name][0], seen[name][-1]
            assert first["summary"]["create"] > 5 and first["summary"]["failed"] == 0, name
            # The latest run found nothing left to do: the tenant reached its fixpoint.
            assert changes(last) == 0 and last["summary"]["failed"] == 0, name
            assert duplicated_external_ids(zendesk.dump()) == [], name
        assert "broken" not in seen  # it never got as far as a run
        with TenantRegistry(database_url) as registry:
            for name in ("acme", "beta"):
                good = registry.get(name)
                # SIGTERM may have landed in a run: it stopped cleanly, and that is no failure.
                assert good.last_outcome in ("ok", "interrupted"), name
                assert good.failure_streak == 0, name
            broken = registry.get("broken")
        assert broken.last_outcome == "error" and broken.failure_streak >= 2
        # Backed off: after the n-th failure in a row the next try waited 2^n cadences (the
        # good tenants ran every cadence meanwhile, above).
        failures = sorted(
            datetime.fromisoformat(event["timestamp"])
            for path in logs
            for event in map(json.loads, path.read_text().splitlines())
            if event.get("event") == "worker.setup_error" and event.get("tenant") == "broken"
        )
        assert len(failures) == broken.failure_streak
        for n, (before, after) in enumerate(itertools.pairwise(failures), start=1):
            assert after - before >= CADENCE * 2**n, (n, failures)
        stderr = "".join(p.read_text() for p in logs)
        assert "environment variable NOT_SET_ANYWHERE is not set" in stderr
        assert a.zendesk.credentials.api_token not in stderr
        assert b.zendesk.credentials.oauth_token not in stderr


def test_a_killed_workers_tenant_runs_again_and_a_sync_can_be_deferred_now(
    tmp_path: Path, database_url: str
) -> None:
    from cli.jobs import defer_sync

    with two_accounts() as (a, b):
        hourly = attrs.evolve(
            tenant("acme", a, "ACME_ZENDESK_TOKEN", email=True), cadence=timedelta(hours=1)
        )
        with TenantRegistry(database_url) as registry:
            registry.add(hourly)
            # Not due for an hour: its sync comes only from the outside trigger below.
            assert [t.name for t in registry.claim_due(datetime.now(UTC))] == ["acme"]
        env = worker_env(a, b, database_url)
        logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
        # The answer to the victim's first write is withheld: it is killed mid-sync, after
        # the write was applied and before it saw the answer (the journal's worst case).
        a.controller.hold_after_writes(1)
        victim = start_worker(env, logs[0])
        try:
            # The outside trigger (a webhook): defer acme's sync now, ahead of its schedule.
            assert defer_sync(database_url, "acme") is True
            assert defer_sync(database_url, "acme") is False  # one waiting is enough
            assert a.controller.wait_until_held(timeout=WAIT_LIMIT), logs[0].read_text()
            assert _doing(database_url) == ["acme"]
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        a.controller.release()
        survivor = start_worker(env, logs[1])
        try:
            wait_for(
                "the killed worker's sync of acme to run again on the survivor",
                lambda: len(runs(database_url).get("acme", [])) >= 1,
                logs,
            )
        finally:
            assert stop(survivor) == 0
        (run,) = runs(database_url)["acme"]
        assert run["summary"]["failed"] == 0
        assert duplicated_external_ids(a.zendesk.dump()) == []  # the killed write not redone
        survivor_log = logs[1].read_text()
        assert "worker.stalled_job" in survivor_log


def _doing(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT args->>'tenant' FROM procrastinate_jobs"
            " WHERE status = 'doing' AND task_name = 'sync_tenant'"
        ).fetchall()
    return [r[0] for r in rows]
