"""The README's main-job command runs end to end and says what it did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_syncs_edits_and_reaches_the_fixpoint(tmp_path: Path) -> None:
    state = tmp_path / "demo.db"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "talksync"),
            "--state",
            str(state),
            "demo",
            "--size",
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for step in (
        "1. talksync plan",
        "2. talksync sync",
        "3. People edit both sides",
        "4. talksync sync",
        "5. talksync sync",
    ):
        assert step in out
    assert "conflict" in out and "zendesk wins" in out
    assert "name := 'Fjordkraft Demo AS' (poweroffice_changed)" in out
    assert "unsupported_change" in out  # the user moved to another customer's organization
    assert "; 0 failed writes." in out
    third = out.split("5. talksync sync")[1]
    assert "update:" not in third and "create:" not in third
    assert state.exists()
