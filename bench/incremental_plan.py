"""Incremental planning: 1,000 changes over mirrors of N records per side (default 1M).

Builds the same linked data as ``plan_scale.py`` (with no changes), warms the snapshot indexes the
planner uses (as a long-running ``sync --every`` process has them from its previous run), then
folds an incremental read of 1,000 changed records (500 customer renames in PowerOffice, 500 user
e-mail changes in Zendesk) into the mirrors and plans only those. Prints the fold time, the
focused plan time, the full plan time over the same data, the time to build the indexes cold,
and peak RSS; checks the focused plan equals the full plan.

    python bench/incremental_plan.py            # 1,000,000 records per side
    python bench/incremental_plan.py 100000
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).parent))

from plan_scale import build

from talkcore.dataflow import DEFAULT_DATAFLOW
from talkcore.engine import incremental_focus
from talkcore.planning import plan_changes, planner_indexes
from talkcore.policy import SyncPolicy
from talkcore.records import Kind, ReadResult, Snapshot, System, fold_read

LATER = datetime(2026, 2, 1, tzinfo=UTC)


def warm(po: Snapshot, zd: Snapshot) -> float:
    """Build the indexes an incremental plan looks things up in; the seconds it took."""
    start = time.perf_counter()
    for system, (kind, field, key) in planner_indexes(DEFAULT_DATAFLOW):
        (po if system is System.POWEROFFICE else zd).index(kind, field, key)
    return time.perf_counter() - start


def main(n: int) -> None:
    po, zd, state = build(n, changed_share=0.0)
    index_s = warm(po, zd)
    customers = list(po.of_kind(Kind.CUSTOMER).values())[:500]
    users = list(zd.of_kind(Kind.USER).values())[:500]
    po_read = ReadResult(
        System.POWEROFFICE,
        frozenset({Kind.CUSTOMER}),
        tuple(
            attrs.evolve(
                c, fields={**c.fields, "Name": f"{c.get('Name')} (endret)"}, modified=LATER
            )
            for c in customers
        ),
        False,
    )
    zd_read = ReadResult(
        System.ZENDESK,
        frozenset({Kind.USER}),
        tuple(
            attrs.evolve(
                u, fields={**u.fields, "email": f"endret.{u.id}@example.no"}, modified=LATER
            )
            for u in users
        ),
        False,
    )
    start = time.perf_counter()
    po, zd = fold_read(po, po_read), fold_read(zd, zd_read)
    fold_s = time.perf_counter() - start
    focus = incremental_focus([po_read, zd_read], state)
    start = time.perf_counter()
    focused = plan_changes(po, zd, state, DEFAULT_DATAFLOW, SyncPolicy(), focus=focus)
    focused_s = time.perf_counter() - start
    start = time.perf_counter()
    full = plan_changes(po, zd, state, DEFAULT_DATAFLOW, SyncPolicy())
    full_s = time.perf_counter() - start
    assert sorted(map(repr, focused)) == sorted(map(repr, full)), "focused plan differs"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"records per side        {n:>12,}")
    print(f"changes                 {len(focus):>12,}")
    print(f"writes planned          {len(focused.writes()):>12,}")
    print(f"fold of the read        {fold_s:>11.3f}s")
    print(f"incremental plan        {focused_s:>11.3f}s")
    print(f"full plan (same data)   {full_s:>11.3f}s")
    print(f"indexes built cold      {index_s:>11.3f}s")
    print(f"peak RSS                {peak:>10,.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
