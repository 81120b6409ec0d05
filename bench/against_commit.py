"""The planner benchmarks at this checkout and at an earlier commit, measured in one run.

For each round, each side runs its own ``bench/plan_scale.py --one N`` and
``bench/incremental_plan.py N`` in a fresh process (with that side's ``src`` on the path), the
two sides alternating so that a busy machine slows both alike. Prints every round and the
median per figure, then one line per figure: ``<figure>: <rev> X s, HEAD Y s (ratio Y/X)``.

    python bench/against_commit.py d70c3b5^                  # 100k and 1M, 3 rounds
    python bench/against_commit.py d70c3b5^ --sizes 100000 --incremental 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(
        [sys.executable, *args], cwd=root, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def _plan_scale(root: Path, n: int) -> float:
    return float(json.loads(_run(root, "bench/plan_scale.py", "--one", str(n)))["plan_s"])


def _incremental(root: Path, n: int) -> float:
    out = _run(root, "bench/incremental_plan.py", str(n))
    found = re.search(r"^incremental plan\s+([\d.]+)s", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no 'incremental plan' line in:\n{out}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier commit (any git revision)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--incremental", type=int, default=1_000_000, help="records per side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="talksync-bench-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.rev],
            check=True,
        )
        try:
            figures = {f"full plan {n:,}": (_plan_scale, n) for n in args.sizes}
            figures[f"incremental plan {args.incremental:,}"] = (_incremental, args.incremental)
            times: dict[tuple[str, str], list[float]] = {}
            for round_no in range(1, args.rounds + 1):
                for name, (measure, n) in figures.items():
                    for side, root in ((args.rev, old), ("HEAD", REPO)):
                        seconds = measure(root, n)
                        times.setdefault((name, side), []).append(seconds)
                        print(f"round {round_no} {name} {side}: {seconds:.3f} s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True
            )
    for name in figures:
        before = statistics.median(times[(name, args.rev)])
        after = statistics.median(times[(name, "HEAD")])
        print(f"{name}: {args.rev} {before:.3f} s, HEAD {after:.3f} s (ratio {after / before:.2f})")


if __name__ == "__main__":
    main()
