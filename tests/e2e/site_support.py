"""The served sandboxes as a site to work on: the real CLI as a subprocess with a real SQLite
state file, and ports to edit either system the way a person would (shared by e2e tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import SeedCases, seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from cli.config import load_settings
from cli.wiring import RealWiring
from talkcore.ports import SystemPort, WriteOp, WriteRequest
from talkcore.records import Kind

TALKSYNC = Path(sys.executable).parent / "talksync"
CHANGES = ("create", "update", "delete", "link", "unlink", "advance_base")


@attrs.define
class Site:
    """Served sandboxes, their seeded cases, a working folder and ports to edit with."""

    served: RunningSandboxes
    cases: SeedCases
    folder: Path
    poweroffice: SystemPort
    zendesk: SystemPort

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.served.env(),
            "TALKSYNC_STATE": str(self.folder / "state.db"),
        }

    def cli(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(TALKSYNC), "--log-format", "json", *args],
            env=self.env(),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if expect is not None:
            assert done.returncode == expect, done.stderr[-3000:]
        return done

    def sync(self, expect: int | None = 0) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.cli("sync", "--json", expect=expect).stdout)
        return report

    def edit(
        self,
        port: SystemPort,
        kind: Kind,
        rid: str,
        current: dict[str, str] | None = None,
        **fields: str,
    ) -> None:
        """Change a record over its API (``current``: what the adapter needs to address it)."""
        write = WriteRequest("edit", WriteOp.UPDATE, kind, rid, fields, current=current or {})
        (result,) = port.apply([write])
        assert result.ok, result.error

    def link(self, flow: str, po_id: str) -> str:
        data = json.loads(self.cli("links", "list", "--flow", flow, "--json").stdout)
        for link in data:
            if str(link["poweroffice_id"]) == po_id:
                return str(link["zendesk_id"])
        raise AssertionError(f"no link for {po_id} in {flow}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    po, zd = PowerOfficeSandbox(), ZendeskSandbox()
    cases = seed_sandboxes(po, zd, size=10, seed=7)
    with ExitStack() as stack:
        served = stack.enter_context(serve_sandboxes(po, zd))
        settings = load_settings(None, served.env(), state_path=tmp_path / "unused.db")
        poweroffice, zendesk = RealWiring().systems(settings, stack)
        yield Site(served, cases, tmp_path, poweroffice, zendesk)


def changes(report: dict[str, Any]) -> int:
    return sum(report["summary"][name] for name in CHANGES)


def items(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in report["items"] if item["type"] == kind]
