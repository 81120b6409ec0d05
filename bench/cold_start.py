"""A cold incremental sync: a fresh process, a large SQLite state, 1,000 changes.

cron, systemd timers and worker tasks start a new process for every run, so what such a run
costs is what a scheduled talksync costs. This benchmark:

1. builds a SQLite state of N linked records per side (default 1,000,000; the shape of
   ``plan_scale.py``: half customer–organization pairs, half contact-person–user pairs), saved
   as a completed full sync whose periodic full reconcile is not due;
2. starts a **new process** that opens that state and runs ``run_sync`` against in-process fake
   ports answering an incremental read of 1,000 changes (500 customer renames in PowerOffice,
   500 user e-mail changes in Zendesk) and storing each write at once. The fakes simulate no
   latency, so the wall time is the process's own work: interpreter start, imports, loading
   state and mirrors, reading, planning, applying, saving;
3. checks the run applied exactly the 1,000 counterpart writes, and prints wall time and the
   child's peak RSS;
4. does the same once more on a fresh copy of the state with ``RunOptions.whole_mirrors``: the
   path before the mirror view (issue 13), which loads both whole mirrors and every link, so
   today's cost and the old one are measured in the same run, on the same state and machine.

The view path reads through the SQLite store only what the changes touch (their records,
links, counterparts and the records sharing their identity values, names and origin keys) and
saves only what changed.

    python bench/cold_start.py                 # 1,000,000 per side (builds ~1 GB of SQLite)
    python bench/cold_start.py 100000
    python bench/cold_start.py 100000 --keep cold.db   # reuse a built state
    python bench/cold_start.py --no-baseline   # skip the whole-mirror run
    python bench/cold_start.py --full-reconcile   # also a full reconcile, whole and streamed

The last line reads ``cold incremental sync: X s wall, Y MiB peak (1,000 changes over N
mirrored per side)``; the line before it gives the whole-mirror path's figures. The fakes
simulate no API latency, so both wall times are the process's own work.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from plan_scale import build, pair_records

from adapters.sqlite import SqliteStateStore
from talkcore.dataflow import DEFAULT_DATAFLOW
from talkcore.engine import RunOptions, run_sync
from talkcore.policy import SyncPolicy
from talkcore.ports import NO_HOOKS, ApplyHooks, WriteOp, WriteRequest, WriteResult
from talkcore.records import Kind, ReadPages, ReadResult, Record, RecordKey, System, collect_read
from talkcore.streaming import plan_basis

CHANGES = 1000
LATER = datetime.now(UTC)


def build_state(path: Path, n: int) -> float:
    """Save the plan_scale data at ``path`` as a finished full sync; the seconds it took."""
    start = time.perf_counter()
    po, zd, state = build(n, changed_share=0.0)
    state = attrs.evolve(
        state,
        cursors={"poweroffice": "built", "zendesk": "built"},
        last_full_sync=datetime.now(UTC) - timedelta(minutes=5),
        full_plan_basis=plan_basis(DEFAULT_DATAFLOW, SyncPolicy()),
    )
    store = SqliteStateStore(path)
    try:
        store.save(state, [po, zd])
    finally:
        store.close()
    return time.perf_counter() - start


def changed_records(system: System) -> tuple[Record, ...]:
    """The 500 changes one side reports, derived from plan_scale's ids (no mirror needed)."""
    half = CHANGES // 2
    if system is System.POWEROFFICE:
        return tuple(
            Record(
                RecordKey.of(Kind.CUSTOMER, str(i + 1)),
                {"Name": f"Kunde {i} AS (endret)", "IsPerson": "false"},
                LATER,
            )
            for i in range(half)
        )
    return tuple(
        Record(
            RecordKey.of(Kind.USER, str(30_000_000 + i)),
            {"email": f"endret.{i}@example.no", "organization_id": str(10_000_000 + i)},
            LATER,
        )
        for i in range(half)
    )


FULL_READ_PAGE = 5_000
"""Records per page of the fakes' full read (the page size the PowerOffice adapter asks)."""


@attrs.define
class ChangesOnly:
    """A system that reports a fixed set of changes and stores every write as sent.

    With ``n``, a read without cursors answers every record of the built state, generated a
    page at a time with the changes on top: a full reconcile's read. ``read`` collects those
    pages into one result, as a whole read holds every record it fetched.
    """

    system: System
    n: int | None = None
    applied: int = 0

    def check(self) -> str:
        """Always reachable: it lives in this process."""
        return f"{self.system} in memory"

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        """The changes (or, without cursors, everything), as one result."""
        return collect_read(self.read_pages(kinds, cursors))

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        """The changes as an incremental read, or every record in pages of ``FULL_READ_PAGE``."""
        changes = changed_records(self.system)
        if cursors is not None:
            yield changes
            return ReadResult(self.system, kinds, (), False, dict(cursors))
        if self.n is None:
            raise AssertionError("the benchmark expects an incremental run")
        changed = {record.key: record for record in changes}
        page: list[Record] = []
        for i in range(self.n // 2):
            for record in pair_records(i):
                if record.key.system is self.system:
                    page.append(changed.get(record.key, record))
            if len(page) >= FULL_READ_PAGE:
                yield page
                page = []
        if page:
            yield page
        return ReadResult(self.system, kinds, (), True, {})

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """Each update stored as its current fields with the written ones on top."""
        results = []
        for write in writes:
            if write.op is not WriteOp.UPDATE or write.id is None:
                raise AssertionError(f"unexpected write {write}")
            fields = {**write.current, **write.fields}
            stored = Record(RecordKey(self.system, write.kind, write.id), fields, LATER)
            results.append(WriteResult(write.item_id, stored))
            self.applied += 1
        return results

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        """Nothing was created, so nothing is found."""
        return {}


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    ``VmHWM`` where Linux gives it: ``ru_maxrss`` survives ``exec``, so a child started by a
    parent that once held a large state would report the parent's peak, not its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: Path, *, whole_mirrors: bool, full_of: int | None = None) -> None:
    """The fresh process: one incremental sync (or, with ``full_of``, a full reconcile of
    that many records per side); prints its own figures as JSON."""
    poweroffice = ChangesOnly(System.POWEROFFICE, full_of)
    zendesk = ChangesOnly(System.ZENDESK, full_of)
    store = SqliteStateStore(path)
    try:
        options = RunOptions(whole_mirrors=whole_mirrors, full=full_of is not None)
        report = run_sync(poweroffice, zendesk, store, options)
    finally:
        store.close()
    peak_mib = peak_rss_mib()
    print(
        json.dumps(
            {
                "full": report.full,
                "applied": len(report.applied),
                "failed": len(report.failures),
                "peak_mib": peak_mib,
            }
        )
    )


def cold_run(
    path: Path, *, whole_mirrors: bool = False, full_of: int | None = None
) -> tuple[float, dict[str, object]]:
    """Run ``child`` as a new process on ``path``; its wall seconds and figures."""
    start = time.perf_counter()
    flags = ["--whole-mirrors"] if whole_mirrors else []
    if full_of is not None:
        flags += ["--full-of", str(full_of)]
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def checked(figures: dict[str, object], *, full: bool = False) -> dict[str, object]:
    """``figures``, once the run is known to have done the expected work."""
    if figures["full"] is not full or figures["applied"] != CHANGES or figures["failed"]:
        raise SystemExit(f"the run did not do the expected work: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000, help="records per side")
    parser.add_argument("--keep", type=Path, help="state file to build once and reuse")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the whole-mirror (pre-view) run"
    )
    parser.add_argument(
        "--full-reconcile",
        action="store_true",
        help="also time a full reconcile of the same state (every record read; not streamed)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--whole-mirrors", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full-of", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, whole_mirrors=args.whole_mirrors, full_of=args.full_of)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "cold.db"
        if not path.exists():
            print(f"building {args.n:,} linked records per side ...", flush=True)
            print(f"built in {build_state(path, args.n):.1f} s ({path.stat().st_size >> 20} MiB)")
        # A copy per run, so every run starts from the same state (a run saves its changes).
        scratch = Path(tmp) / "run.db"
        baseline: tuple[float, dict[str, object]] | None = None
        if not args.no_baseline:
            shutil.copyfile(path, scratch)
            wall, figures = cold_run(scratch, whole_mirrors=True)
            baseline = wall, checked(figures)
            for stale in Path(tmp).glob("run.db*"):
                stale.unlink()
        full: dict[bool, tuple[float, dict[str, object]]] = {}
        for whole in (True, False) if args.full_reconcile else ():
            shutil.copyfile(path, scratch)
            wall, figures = cold_run(scratch, whole_mirrors=whole, full_of=args.n)
            full[whole] = wall, checked(figures, full=True)
            for stale in Path(tmp).glob("run.db*"):
                stale.unlink()
        shutil.copyfile(path, scratch)
        wall, figures = cold_run(scratch)
        checked(figures)
    what = f"({CHANGES:,} changes over {args.n:,} mirrored per side)"
    for whole, how in ((True, "whole mirrors, before"), (False, "streamed")):
        if whole in full:
            wall_full, figures_full = full[whole]
            print(
                f"full reconcile ({how}): {wall_full:.2f} s wall,"
                f" {figures_full['peak_mib']:.0f} MiB peak {what}"
            )
    if baseline is not None:
        print(
            f"before (whole mirrors loaded): {baseline[0]:.2f} s wall,"
            f" {baseline[1]['peak_mib']:.0f} MiB peak {what}"
        )
    print(f"cold incremental sync: {wall:.2f} s wall, {figures['peak_mib']:.0f} MiB peak {what}")


if __name__ == "__main__":
    main()
