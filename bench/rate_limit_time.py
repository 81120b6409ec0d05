"""Time under real rate limits: the first sync of ``requests_bound.py``'s shape with the Zendesk
sandbox enforcing 700 requests a minute and the PowerOffice sandbox 10 a second, the CLI told
the same (``TALKSYNC_ZENDESK_RATE_LIMIT=700``; the PowerOffice adapter's own default is 10/s).

The CLI runs as a child process with real sleeps. Zendesk bulk jobs complete on their first
status poll (the sandbox's ``job_polls=1``), so no poll beyond the bound is forced by the
server. The wall time is divided by the least time the limits allow for the cheapest plan: the
larger over the two systems of (floor requests / limit), with the floor of ``floor.py`` for the
plan the limits let finish first (bench/README.md, "The floor"). Every
answer's status is counted as the sandboxes send it, so 429s are seen however the client
handles them.

    python bench/rate_limit_time.py --scale 10   # 1,000 customers, 50 departments, 3,000 ...
    python bench/rate_limit_time.py              # full size
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floor import PO_PER_SECOND, ZD_PER_MINUTE, cheapest, least_seconds
from requests_bound import build, cli_env, requests_of, sync_child, table, written

from adapters.sandbox.server import serve_sandboxes

ZENDESK_PER_MINUTE = ZD_PER_MINUTE
POWEROFFICE_PER_SECOND = PO_PER_SECOND


class StatusCount:
    """Wraps a WSGI app and counts the status of every answer it gives."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def counting(status: str, headers: Any, *rest: Any) -> Any:
            with self._lock:
                self.statuses[int(status.split()[0])] += 1
            return start_response(status, headers, *rest)

        return self.app(environ, counting)


def log_events(path: Path) -> Counter[str]:
    """How often each event in the child's JSON log occurred, without the routine ones."""
    routine = {"sync.start", "sync.done", "apply.progress", "poweroffice.read", "zendesk.read"}
    out: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line).get("event")
        except (ValueError, AttributeError):
            continue
        if event and event not in routine:
            out[str(event)] += 1
    return out


def timeline(path: Path, started: datetime) -> str:
    """When the run's phases began and ended, in seconds from the child's start (the log's ISO
    timestamps): where the wall time beyond the requests' own goes."""
    marks = ("read.start", "read.done", "plan.done", "apply.start", "apply.done", "sync.done")
    seen: list[str] = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") in marks and "timestamp" in entry:
            at = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
            seen.append(f"{entry['event']} {(at - started).total_seconds():.1f}")
    return ", ".join(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1, help="1/scale of the full size")
    args = parser.parse_args()

    po, zd, counts = build(
        args.scale,
        zendesk_rate_limit=ZENDESK_PER_MINUTE,
        poweroffice_rate_limit=POWEROFFICE_PER_SECOND,
        job_polls=1,
    )
    print(f"seeded {counts}", flush=True)
    po_status, zd_status = StatusCount(po.app), StatusCount(zd.app)
    po.app, zd.app = po_status, zd_status  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp, serve_sandboxes(po, zd) as running:
        state = Path(tmp) / "talksync.db"
        env = cli_env(running, {"TALKSYNC_ZENDESK_RATE_LIMIT": str(ZENDESK_PER_MINUTE)})
        running.controller.reset_counters()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        code, report = sync_child(env, state, Path(tmp) / "talksync.log")
        wall = time.perf_counter() - t0
        measured = requests_of(running)
        events = log_events(Path(tmp) / "talksync.log")
        phases = timeline(Path(tmp) / "talksync.log", started)

    writes = written(report)
    bound = cheapest(counts, writes)["time"]
    least_by = least_seconds(bound)
    least = max(least_by.values())
    zd_bound = sum(n for name, n in bound.items() if name.startswith("zendesk"))
    po_bound = sum(n for name, n in bound.items() if name.startswith("poweroffice"))
    zd_sent = sum(n for name, n in measured.items() if name.startswith("zendesk"))
    po_sent = sum(n for name, n in measured.items() if name.startswith("poweroffice"))
    summary = report["summary"]
    print(f"\n== first sync under rate limits: exit {code}, summary {summary}")
    print(f"failures in the report: {len(report['failures'])}")
    print("\n".join(table(measured, bound)))
    print(f"zendesk answers by status: {dict(sorted(zd_status.statuses.items()))}")
    print(f"poweroffice answers by status: {dict(sorted(po_status.statuses.items()))}")
    print(f"429s seen: zendesk {zd_status.statuses[429]}, poweroffice {po_status.statuses[429]}")
    print(
        f"least time the limits allow the cheapest plan: zendesk {zd_bound} requests / "
        f"{ZENDESK_PER_MINUTE} a minute = {least_by['zendesk']:.1f} s; poweroffice {po_bound} / "
        f"{POWEROFFICE_PER_SECOND} a second = {least_by['poweroffice']:.1f} s"
    )
    print(
        f"time the requests actually sent need at those limits: zendesk {zd_sent} -> "
        f"{zd_sent / ZENDESK_PER_MINUTE * 60:.1f} s; poweroffice {po_sent} -> "
        f"{po_sent / POWEROFFICE_PER_SECOND:.1f} s"
    )
    print(f"log events (other than per-read/progress info): {dict(sorted(events.items()))}")
    print(f"phases (s from the child's start): {phases}")
    print(f"wall time {wall:.1f} s (child process, start to exit); ratio {wall / least:.2f}")


if __name__ == "__main__":
    main()
