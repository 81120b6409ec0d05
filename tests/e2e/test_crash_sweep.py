"""Crash sweep: kill the real CLI right after its k-th write landed, for every k, and recover.

Scenario (seeded, the same every time): a first ``talksync sync`` links and creates the
organizations; then people edit both sides (organizations renamed and user e-mails changed in
Zendesk, customers renamed, contact persons' e-mails changed and new customers added in
PowerOffice), and a second sync writes all of that across: K writes, most of them PATCHes to
PowerOffice, plus Zendesk bulk updates, bulk creates and identity calls.

For a chosen k the sandbox withholds the answer to the k-th write of that second sync (the write
is applied; the client has not seen it), the test SIGKILLs the CLI, releases the hold, and runs
``talksync sync`` twice. Both systems must then equal the crash-free run's (ids and timestamps
aside), nothing may be created twice and the second recovery run must plan nothing.

CI runs a subset of k (the first, the last and every ``STRIDE``-th); ``TALKSYNC_FULL_SWEEP=1``
runs every k (see docs/reliability.md for the figures).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    comparable,
    duplicated_external_ids,
    make_edits,
    sandboxes,
    start_talksync,
    talksync,
)

from adapters.sandbox.server import RunningSandboxes

pytestmark = pytest.mark.e2e

STRIDE = 14
EDITS: Mapping[str, int] = {"org_renames": 30, "zendesk_emails": 15, "poweroffice_edits": 5}
NEW_CUSTOMERS = 3
FULL_SWEEP = os.environ.get("TALKSYNC_FULL_SWEEP") == "1"


def _sync(running: RunningSandboxes, state: Path) -> dict[str, Any]:
    result = talksync(running.env(), state, "sync", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _prepare(running: RunningSandboxes, state: Path) -> None:
    """The first sync, then people's edits on both sides; counters start from zero after."""
    _sync(running, state)
    make_edits(running, **EDITS)
    for n in range(NEW_CUSTOMERS):
        running.poweroffice.add_customer(Name=f"Ny kunde {n + 1} AS", IsPerson=False)
    running.controller.reset_counters()


def _settled(running: RunningSandboxes) -> dict[str, Any]:
    po, zd = running.poweroffice.dump(), running.zendesk.dump()
    assert duplicated_external_ids(zd) == [], "an organization was created twice"
    return comparable(po, zd)


def _crash_free(tmp: Path) -> tuple[int, dict[str, Any]]:
    tmp.mkdir()
    with sandboxes() as running:
        state = tmp / "talksync.db"
        _prepare(running, state)
        report = _sync(running, state)
        writes = running.controller.writes
        assert report["summary"]["failed"] == 0
        again = _sync(running, state)
        assert again["summary"]["applied"] == 0, "the crash-free run did not reach a fixpoint"
        return writes, _settled(running)


def _crash_at(k: int, tmp: Path) -> dict[str, Any]:
    tmp.mkdir()
    with sandboxes() as running:
        state = tmp / "talksync.db"
        _prepare(running, state)
        running.controller.hold_after_writes(k)
        proc = start_talksync(running.env(), state, "sync", "--json")
        try:
            held = running.controller.wait_until_held(timeout=120)
            assert held, f"k={k}: the CLI exited ({proc.poll()}) before its {k}-th write"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            running.controller.release()
        assert proc.returncode == -signal.SIGKILL
        # The first rerun may find in-doubt work; the second must find nothing left to do.
        talksync(running.env(), state, "sync", "--json")
        final = _sync(running, state)
        assert final["summary"]["applied"] == 0, f"k={k}: no fixpoint after recovery"
        assert final["summary"]["failed"] == 0
        return _settled(running)


def _chosen(total: int) -> list[int]:
    if FULL_SWEEP:
        return list(range(1, total + 1))
    return sorted({1, total, *range(STRIDE, total + 1, STRIDE)})


def _diff(expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    lines = []
    for part in sorted(set(expected) | set(got)):
        if expected.get(part) != got.get(part):
            lines.append(f"{part} differs")
            exp, act = expected.get(part), got.get(part)
            if isinstance(exp, dict) and isinstance(act, dict):
                for key in sorted(set(exp) | set(act), key=str):
                    if exp.get(key) != act.get(key):
                        lines.append(
                            f"  {key}: expected {exp.get(key)!r}, got {act.get(key)!r}"[:400]
                        )
            elif isinstance(exp, list) and isinstance(act, list):
                lines += [f"  missing {x!r}" for x in exp if x not in act]
                lines += [f"  extra {x!r}" for x in act if x not in exp]
    return lines


def test_a_kill_after_any_write_recovers_to_the_crash_free_state(tmp_path: Path) -> None:
    total, expected = _crash_free(tmp_path / "clean")
    assert total >= 50, f"the scenario makes only {total} writes"
    chosen = _chosen(total)
    broken: dict[int, list[str]] = {}
    for k in chosen:
        try:
            got = _crash_at(k, tmp_path / f"k{k}")
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            broken[k] = [str(exc)[-2000:]]
            continue
        if got != expected:
            broken[k] = _diff(expected, got)[:40]
    held = len(chosen) - len(broken)
    print(f"crash sweep: K={total}, tried {len(chosen)} k, held {held}")
    assert not broken, json.dumps(
        {"K": total, "tried": chosen, "failed": broken}, indent=1, ensure_ascii=False
    )


def test_a_kill_during_the_first_sync_recovers_without_duplicates(tmp_path: Path) -> None:
    """The first sync's writes are few (bulk creates and updates) but they create the
    organizations: a kill after each must leave one organization per origin key."""
    with sandboxes() as running:
        state = tmp_path / "clean.db"
        _sync(running, state)
        total = running.controller.writes
        expected = _settled(running)
    assert total >= 2
    for k in range(1, total + 1):
        tmp = tmp_path / f"first{k}"
        tmp.mkdir()
        with sandboxes() as running:
            state = tmp / "talksync.db"
            running.controller.hold_after_writes(k)
            proc = start_talksync(running.env(), state, "sync", "--json")
            try:
                assert running.controller.wait_until_held(timeout=120), f"k={k} never held"
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                running.controller.release()
            talksync(running.env(), state, "sync", "--json")
            final = _sync(running, state)
            assert final["summary"]["applied"] == 0, f"k={k}: no fixpoint after recovery"
            got = _settled(running)
        assert got == expected, "\n".join(_diff(expected, got)[:40])
