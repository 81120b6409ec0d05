"""Sampled mutation testing of ``src/talkcore``: how many small planted bugs the unit tests catch.

Each mutant changes one thing in one module (a comparison flipped, ``and`` for ``or``, a
condition negated, a constant changed, a statement dropped, a return emptied). Mutants are drawn
with a fixed seed, applied one at a time to a *copy* of ``src`` (the working tree is never
touched), and ``tests/unit`` runs against the copy with ``-x``: a failing test kills the mutant.
A mutant whose run exceeds the time limit counts as killed (it hung the suite).

    python bench/mutation.py --per-module 25 --jobs 2 --json mutation.json

prints a line per survivor and a score per module; ``make mutate`` runs the documented sample.
Survivors are judged by a person: some change no behaviour (equivalent mutants), and
``docs/testing.md`` lists which and why.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODULES = ("planning", "state", "engine", "linking", "values", "records")

_FLIP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass(frozen=True)
class Mutant:
    """One planted change: where, what kind, and the line before and after."""

    module: str
    index: int
    line: int
    operator: str
    before: str
    after: str


@dataclass(frozen=True)
class Outcome:
    """What the unit tests made of one mutant."""

    mutant: Mutant
    killed: bool
    seconds: float
    reason: str


Rewrite = Callable[[ast.AST], ast.AST | None]


def _sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str, Rewrite]]:
    """Every place a mutation operator applies, with a function building the mutated node."""
    docstrings = {
        id(node.body[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    # Module- and class-level statements define names: dropping them only breaks imports.
    definitions = {id(stmt) for stmt in tree.body} | {
        id(stmt) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for stmt in node.body
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _FLIP:

            def flip(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.Compare)
                n.ops = [_FLIP[type(n.ops[0])](), *n.ops[1:]]
                return n

            yield node, "flip_comparison", flip
        elif isinstance(node, ast.BoolOp):

            def swap(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.BoolOp)
                n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
                return n

            yield node, "swap_bool_op", swap
        elif isinstance(node, ast.If | ast.While | ast.IfExp):

            def negate(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.If | ast.While | ast.IfExp)
                n.test = ast.UnaryOp(ast.Not(), n.test)
                return n

            yield node, "negate_condition", negate
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop_not", lambda n: n.operand  # type: ignore[attr-defined,no-any-return]
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):

            def toggle(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.Constant)
                n.value = not n.value
                return n

            yield node, "toggle_bool", toggle
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):

            def bump(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.Constant)
                n.value = n.value + 1
                return n

            yield node, "bump_number", bump
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):

            def empty(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.Return)
                n.value = ast.Constant(None)
                return n

            yield node, "return_none", empty
        elif (
            isinstance(node, ast.Expr | ast.AugAssign | ast.Assign)
            and id(node) not in docstrings
            and id(node) not in definitions
        ):
            yield node, "drop_statement", lambda n: ast.Pass()
        elif isinstance(node, ast.Continue | ast.Break):
            yield node, "drop_jump", lambda n: ast.Pass()


def _source(module: str) -> str:
    return (ROOT / "src" / "talkcore" / f"{module}.py").read_text(encoding="utf-8")


def count_sites(module: str) -> int:
    """How many mutants ``src/talkcore/<module>.py`` has."""
    return sum(1 for _ in _sites(ast.parse(_source(module))))


def mutant_of(module: str, index: int) -> tuple[Mutant, str] | None:
    """The ``index``-th mutant of a module with its mutated source (``None``: not expressible)."""
    source = _source(module)
    tree = ast.parse(source)
    site = next(itertools.islice(_sites(tree), index, None), None)
    if site is None:
        return None
    node, operator, rewrite = site
    line = getattr(node, "lineno", 1)
    before = source.splitlines()[line - 1].strip()
    replacement = rewrite(node)
    if replacement is not node and not _replace(tree, node, replacement):
        return None
    ast.fix_missing_locations(tree)
    try:
        mutated = ast.unparse(tree)
    except (AttributeError, ValueError):
        return None
    after = ast.unparse(replacement)[:120]
    return Mutant(module, index, line, operator, before, after), mutated


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> bool:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return True
            if isinstance(value, list) and any(item is old for item in value):
                setattr(parent, field, [new if item is old else item for item in value])
                return True
    return False


def run_one(mutant: Mutant, mutated: str, workdir: Path, timeout: float) -> Outcome:
    """Run the unit tests against a copy of ``src`` holding ``mutated`` in place of the module."""
    target = workdir / "src" / "talkcore" / f"{mutant.module}.py"
    original = target.read_text(encoding="utf-8")
    target.write_text(mutated, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(workdir / "src"), "HYPOTHESIS_PROFILE": "ci"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/unit", "-x", "-q", "-p", "no:cacheprovider"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        killed, reason = done.returncode != 0, _last_line(done.stdout)
    except subprocess.TimeoutExpired:
        killed, reason = True, f"timeout after {timeout:.0f} s"
    finally:
        target.write_text(original, encoding="utf-8")
    return Outcome(mutant, killed, time.monotonic() - started, reason)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _workdir(base: Path, n: int) -> Path:
    """A private copy of the tree the tests need (src and tests), so workers never collide."""
    workdir = base / f"worker-{n}"
    for part in ("src", "tests"):
        shutil.copytree(ROOT / part, workdir / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    return workdir


def main() -> None:
    """Draw, run and score the sample; print survivors and a score per module."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=list(DEFAULT_MODULES))
    parser.add_argument("--per-module", type=int, default=25, help="mutants drawn per module")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    drawn: list[tuple[Mutant, str]] = []
    for module in args.modules:
        sites = count_sites(module)
        for index in sorted(rng.sample(range(sites), min(args.per_module, sites))):
            mutant = mutant_of(module, index)
            if mutant is not None:
                drawn.append(mutant)
    print(f"{len(drawn)} mutants drawn (seed {args.seed}), {args.jobs} workers", flush=True)

    with tempfile.TemporaryDirectory(prefix="talksync-mutation-") as tmp:
        workdirs = [_workdir(Path(tmp), n) for n in range(args.jobs)]
        chunks = [drawn[n :: args.jobs] for n in range(args.jobs)]

        def work(n: int) -> list[Outcome]:
            outcomes = []
            for mutant, mutated in chunks[n]:
                outcome = run_one(mutant, mutated, workdirs[n], args.timeout)
                outcomes.append(outcome)
                if not outcome.killed:
                    print(
                        f"survived {mutant.module}.py:{mutant.line} {mutant.operator}: "
                        f"{mutant.before}  ->  {mutant.after}",
                        flush=True,
                    )
            return outcomes

        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = [o for chunk in pool.map(work, range(args.jobs)) for o in chunk]

    print()
    for module in args.modules:
        mine = [o for o in outcomes if o.mutant.module == module]
        killed = sum(o.killed for o in mine)
        if mine:
            print(f"{module:10} {killed:3} of {len(mine):3} killed ({killed / len(mine):.0%})")
    total = sum(o.killed for o in outcomes)
    print(f"mutation score: {total} of {len(outcomes)} killed ({total / len(outcomes):.0%})")
    if args.json:
        args.json.write_text(
            json.dumps([{**asdict(o.mutant), **asdict(o)} for o in outcomes], indent=1),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
