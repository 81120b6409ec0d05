"""Many tenants on one PowerOffice subscription key: `talksync worker` processes in steady state.

Starts a throwaway PostgreSQL (as the tests do: ``tests/postgres_support.py``; or
``TALKSYNC_TEST_DATABASE_URL``), serves one PowerOffice gateway with a client key per tenant
(10 requests a second over them all) and a Zendesk account per tenant, each with a little data
and ``--latency`` seconds of delay per request, registers the tenants at a cadence short enough
that their syncs ask for more than the budget, and runs ``--workers`` worker processes.

After the warm-up (every tenant has had a run that found nothing to do: steady state) it
measures for ``--measure`` seconds and prints tenants synced per minute, the share of the
PowerOffice budget used (requests that reached the gateway over 10 a second), the worst
staleness (the longest a tenant went without a finished sync, in cadences), overlapping runs of
one tenant (from the run log) and unconverged tenants (whose last run still had changes or
failures). The last line reads:

    tenants N, workers W: PowerOffice budget used P% of 10 req/s, 0 overlapping runs,
    0 unconverged, worst staleness S cadences

    python bench/tenants.py --tenants 200 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_support import postgres_server  # noqa: E402
from tests.tenant_support import register_tenants, runs  # noqa: E402

from adapters.sandbox.accounts import PowerOfficeGateway, ZendeskAccounts  # noqa: E402
from adapters.sandbox.seed import seed_sandboxes  # noqa: E402
from adapters.sandbox.server import RunningAccounts, serve_accounts  # noqa: E402
from adapters.sandbox.zendesk import ZendeskSandbox  # noqa: E402

CHANGES = ("create", "update", "delete", "link")
LIMIT = 10.0
"""PowerOffice's requests a second per subscription key."""


def quiet(report: dict[str, Any]) -> bool:
    """A run that found nothing to do and failed nothing (the tenant is converged)."""
    summary = report["summary"]
    return summary.get("failed", 0) == 0 and not any(summary.get(k, 0) for k in CHANGES)


def when(report: dict[str, Any], key: str) -> float:
    return datetime.fromisoformat(report[key]).timestamp()


def serve(tenants: int, size: int, latency: float) -> tuple[RunningAccounts, list[str]]:
    names = [f"tenant-{n:04d}" for n in range(tenants)]
    gateway = PowerOfficeGateway([f"client-{n}" for n in names], latency=latency)
    accounts = {}
    for n, name in enumerate(names):
        zd = accounts[name] = ZendeskSandbox(job_polls=0)
        seed_sandboxes(gateway.clients[f"client-{name}"], zd, size=size, seed=n)
    return serve_accounts(gateway, ZendeskAccounts(accounts, latency=latency)), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="syncs per worker at once")
    parser.add_argument("--cadence", type=float, default=60.0, help="seconds between syncs")
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per request")
    parser.add_argument("--size", type=int, default=2, help="customers per tenant")
    parser.add_argument("--measure", type=float, default=120.0, help="seconds measured")
    parser.add_argument("--warmup-limit", type=float, default=420.0)
    args = parser.parse_args()

    with (
        postgres_server() as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = server.fresh_database("bench")
        running, names = serve(args.tenants, args.size, args.latency)
        secrets = register_tenants(url, running, names, timedelta(seconds=args.cadence))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALKSYNC_")}
        env.update(secrets)
        env["TALKSYNC_DATABASE_URL"] = url
        env["PYTHONPATH"] = str(ROOT / "src")
        workers = []
        for n in range(args.workers):
            log = Path(tmp) / f"worker-{n}.log"
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "cli.main",
                        "--log-format",
                        "json",
                        "worker",
                        "--concurrency",
                        str(args.concurrency),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log.open("w"),
                    env=env,
                    cwd=tmp,
                )
            )
        try:
            started = time.time()
            while True:
                seen = runs(url)
                steady = sum(1 for name in names if any(quiet(r) for r in seen.get(name, [])))
                print(
                    f"warm-up {time.time() - started:5.0f} s: {steady}/{len(names)} steady",
                    flush=True,
                )
                if steady == len(names):
                    break
                if time.time() - started > args.warmup_limit:
                    raise SystemExit("warm-up did not reach steady state: raise --warmup-limit")
                time.sleep(10)
            window_start = time.time()
            time.sleep(args.measure)
            window_end = time.time()
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=120)
        seen = runs(url)
        running.stop()

    seconds = range(int(window_start) + 1, int(window_end))
    used = sum(running.gateway.per_second.get(s, 0) for s in seconds) / (LIMIT * len(seconds))
    peak = max(running.gateway.per_second.get(s, 0) for s in seconds)
    synced = staleness = 0.0
    overlapping = unconverged = 0
    for name in names:
        mine = seen.get(name, [])
        finished = sorted(when(r, "finished") for r in mine)
        in_window = [t for t in finished if window_start <= t <= window_end]
        synced += len(in_window)
        marks = [window_start, *in_window, window_end]
        gap = max(b - a for a, b in itertools.pairwise(marks))
        staleness = max(staleness, gap / args.cadence)
        spans = sorted((when(r, "started"), when(r, "finished")) for r in mine)
        overlapping += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
        unconverged += 0 if mine and quiet(mine[-1]) else 1
    minutes = (window_end - window_start) / 60
    demand = len(names) / args.cadence * 60
    print(
        f"measured {window_end - window_start:.0f} s after warm-up; demand {demand:.0f} syncs/min"
    )
    print(f"tenants synced per minute: {synced / minutes:.1f}")
    print(f"PowerOffice requests in the busiest second: {peak} (limit {LIMIT:.0f})")
    print(
        f"tenants {len(names)}, workers {args.workers}: PowerOffice budget used {used:.0%} of"
        f" {LIMIT:.0f} req/s, {overlapping} overlapping runs, {unconverged} unconverged,"
        f" worst staleness {staleness:.1f} cadences"
    )


if __name__ == "__main__":
    main()
