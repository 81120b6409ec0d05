"""Secrets: canary credentials never show up in output, logs, tracebacks or the state file.

Every secret setting gets a distinctive canary value, the sandboxes are made to accept exactly
those values, and the real CLI runs against them: sync with console and JSON logs, verbose, with
the Zendesk API token and with the OAuth token; then failing runs (wrong credentials, an
unreachable port). No canary (nor the base64 of Zendesk's basic-auth pair) may appear in any
run's stdout or stderr, nor in the bytes of the state file, its WAL or shared-memory file.
"""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import CLI, cli_env

from adapters.sandbox.poweroffice import PowerOfficeCredentials, PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskCredentials, ZendeskSandbox

pytestmark = pytest.mark.e2e

PO = PowerOfficeCredentials(
    application_key="CANARYpoAPPk3y0001",
    client_key="CANARYpoCLIENTk3y0002",
    subscription_key="CANARYpoSUBk3y0003",
)
ZD = ZendeskCredentials(
    email="agent@canary.example",
    api_token="CANARYzdAPItok3n0004",
    oauth_token="CANARYzdOAUTHtok3n0005",
)
WRONG = {
    "TALKSYNC_POWEROFFICE_CLIENT_KEY": "CANARYwrongCLIENT0006",
    "TALKSYNC_ZENDESK_API_TOKEN": "CANARYwrongAPI0007",
}


def _canaries() -> list[str]:
    values = [PO.application_key, PO.client_key, PO.subscription_key, ZD.api_token]
    values += [ZD.oauth_token, *WRONG.values()]
    for token in (ZD.api_token, WRONG["TALKSYNC_ZENDESK_API_TOKEN"]):
        values.append(base64.b64encode(f"{ZD.email}/token:{token}".encode()).decode())
    return values


@contextmanager
def _served() -> Iterator[RunningSandboxes]:
    po = PowerOfficeSandbox(credentials=PO)
    zd = ZendeskSandbox(credentials=ZD, job_polls=0)
    seed_sandboxes(po, zd, size=10, seed=2)
    with serve_sandboxes(po, zd) as running:
        yield running


def _run(env: Mapping[str, str], state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--state", str(state), *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        cwd=state.parent,
        timeout=120,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _leaks(text: str) -> list[str]:
    return [canary for canary in _canaries() if canary in text]


def test_no_canary_in_output_logs_tracebacks_or_state(tmp_path: Path) -> None:
    state = tmp_path / "talksync.db"
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    with _served() as running:
        env = running.env()
        assert env["TALKSYNC_ZENDESK_API_TOKEN"] == ZD.api_token
        oauth = {k: v for k, v in env.items() if k != "TALKSYNC_ZENDESK_API_TOKEN"}
        oauth["TALKSYNC_ZENDESK_OAUTH_TOKEN"] = ZD.oauth_token
        runs = {
            "sync console verbose": (env, ("--log-format", "console", "-v", "sync")),
            "sync json verbose": (env, ("--log-format", "json", "-v", "sync", "--json")),
            "sync oauth json verbose": (oauth, ("--log-format", "json", "--verbose", "sync")),
            "plan verbose": (env, ("--log-format", "json", "-v", "plan")),
            "status": (env, ("status",)),
            "wrong credentials": (
                {**env, **WRONG},
                ("--log-format", "json", "-v", "sync"),
            ),
            "wrong credentials console": ({**env, **WRONG}, ("--log-format", "console", "sync")),
        }
        for name, (run_env, args) in runs.items():
            outputs[name] = _run(run_env, state, *args)
    port = _closed_port()
    unreachable = {
        **env,
        "TALKSYNC_POWEROFFICE_BASE_URL": f"http://127.0.0.1:{port}/v2",
        "TALKSYNC_POWEROFFICE_TOKEN_URL": f"http://127.0.0.1:{port}/OAuth/Token",
        "TALKSYNC_ZENDESK_BASE_URL": f"http://127.0.0.1:{port}/api/v2",
    }
    outputs["unreachable"] = _run(unreachable, state, "--log-format", "json", "-v", "sync")
    outputs["unreachable console"] = _run(unreachable, state, "--log-format", "console", "sync")

    assert outputs["sync console verbose"].returncode == 0, outputs["sync console verbose"].stderr
    assert outputs["sync oauth json verbose"].returncode == 0
    for name in ("wrong credentials", "unreachable"):
        assert outputs[name].returncode != 0, f"{name} did not fail"
    # The failing runs must have said something, or the check below proves nothing.
    assert outputs["unreachable"].stderr.strip()
    assert outputs["wrong credentials"].stderr.strip()

    leaks = {
        f"{name} {stream}": found
        for name, result in outputs.items()
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr))
        if (found := _leaks(text))
    }
    files = [p for p in tmp_path.iterdir() if p.name.startswith(state.name)]
    assert state in files
    for path in files:
        data = path.read_bytes().decode("latin-1")
        if found := _leaks(data):
            leaks[path.name] = found
    assert leaks == {}
