"""Shared helpers for the e2e proofs: sandboxes on loopback sockets, the real CLI as a child
process, edits made the way a person would make them (over each API), and state comparison.

The CLI is always run as ``python -m cli.main`` in a fresh process with a real SQLite state file;
the sandboxes are served from the test process so the test can read their counters, set faults
and hold a write's answer through the shared controller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.sandbox.faults import FaultConfig
from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.seed import seed_sandboxes
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox

CLI = (sys.executable, "-m", "cli.main")
SIZE = 40
SEED = 11


@contextmanager
def sandboxes(
    size: int = SIZE, seed: int = SEED, faults: FaultConfig | None = None
) -> Iterator[RunningSandboxes]:
    """Both sandboxes, seeded, served on loopback; Zendesk jobs finish at once (no polling
    sleeps, which would only slow the run without exercising anything here)."""
    po, zd = PowerOfficeSandbox(), ZendeskSandbox(job_polls=0)
    seed_sandboxes(po, zd, size=size, seed=seed)
    with serve_sandboxes(po, zd, faults=faults) as running:
        yield running


def cli_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The inherited environment without any TALKSYNC_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKSYNC_")}
    env.update(extra)
    return env


def cli_args(state: Path, *args: str) -> list[str]:
    """The argument vector of one CLI run on ``state``."""
    return [*CLI, "--state", str(state), "--log-format", "json", *args]


def talksync(
    env: Mapping[str, str], state: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion."""
    return subprocess.run(
        cli_args(state, *args),
        capture_output=True,
        text=True,
        env=cli_env(env),
        cwd=state.parent,
        timeout=timeout,
        check=False,
    )


def start_talksync(env: Mapping[str, str], state: Path, *args: str) -> subprocess.Popen[str]:
    """Start the CLI without waiting (its output goes to files next to the state)."""
    return subprocess.Popen(
        cli_args(state, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(env),
        cwd=state.parent,
    )


# -- edits made by people, over each API ----------------------------------------------------


def _zendesk(running: RunningSandboxes) -> httpx.Client:
    token = running.zendesk.credentials.oauth_token
    return httpx.Client(
        base_url=f"{running.zendesk_url}/api/v2", headers={"Authorization": f"Bearer {token}"}
    )


def _poweroffice(running: RunningSandboxes) -> httpx.Client:
    po = running.poweroffice
    return httpx.Client(
        base_url=f"{running.poweroffice_url}/v2",
        headers={
            "Authorization": f"Bearer {po.issue_token()}",
            "Ocp-Apim-Subscription-Key": po.credentials.subscription_key,
        },
    )


def _patch(client: httpx.Client, path: str, field: str, value: str) -> None:
    body = json.dumps([{"op": "replace", "path": f"/{field}", "value": value}])
    headers = {"Content-Type": "application/json-patch+json"}
    _check(client.patch(path, content=body, headers=headers))


def _check(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, (response.status_code, response.text)
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def linked_pairs(running: RunningSandboxes) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """(customer id, organization id) for every organization carrying a customer's origin key,
    and the contact persons whose e-mail is held by exactly one Zendesk user and no other
    contact person (so the pair is linked one-to-one)."""
    zd, po = running.zendesk.dump(), running.poweroffice.dump()
    orgs = [
        (int(o["external_id"].rsplit(":", 1)[1]), int(o["id"]))
        for o in zd["organizations"]
        if (o.get("external_id") or "").startswith("poweroffice:customer:")
    ]
    user_emails = Counter((u.get("email") or "").lower() for u in zd["users"])
    person_emails = Counter((p.get("EmailAddress") or "").lower() for p in po["contact_persons"])
    customer_emails = {(c.get("EmailAddress") or "").lower() for c in po["customers"]}
    persons = [
        p
        for p in po["contact_persons"]
        if (email := (p.get("EmailAddress") or "").lower())
        and user_emails[email] == 1
        and person_emails[email] == 1
        and email not in customer_emails
    ]
    return sorted(orgs), persons


def make_edits(
    running: RunningSandboxes, *, org_renames: int, zendesk_emails: int, poweroffice_edits: int
) -> None:
    """Edits on both sides after a first sync, so the next sync writes to both systems:
    organizations renamed and user e-mails changed in Zendesk (each a PATCH in PowerOffice),
    customers renamed and contact persons' e-mails changed in PowerOffice (Zendesk writes)."""
    orgs, persons = linked_pairs(running)
    users = {(u.get("email") or "").lower(): u for u in running.zendesk.dump()["users"]}
    assert len(orgs) >= org_renames + poweroffice_edits, "seed too small for the edits"
    assert len(persons) >= zendesk_emails + poweroffice_edits, "seed too small for the edits"
    with _zendesk(running) as zd, _poweroffice(running) as po:
        for n, (_, org_id) in enumerate(orgs[:org_renames]):
            _check(
                zd.put(
                    f"/organizations/{org_id}.json",
                    json={"organization": {"name": f"Omdøpt i Zendesk {n + 1} AS"}},
                )
            )
        for n, person in enumerate(persons[:zendesk_emails]):
            user = users[str(person["EmailAddress"]).lower()]
            added = _check(
                zd.post(
                    f"/users/{user['id']}/identities.json",
                    json={"identity": {"type": "email", "value": f"ny.adresse{n + 1}@zd.example"}},
                )
            )
            identity = added["identity"]["id"]
            _check(zd.put(f"/users/{user['id']}/identities/{identity}/make_primary.json"))
        for n, (customer_id, _) in enumerate(orgs[org_renames : org_renames + poweroffice_edits]):
            _patch(po, f"/Customers/{customer_id}", "Name", f"Omdøpt i PO {n + 1} AS")
        start = zendesk_emails
        for n, person in enumerate(persons[start : start + poweroffice_edits]):
            path = f"/ContactPersons/{person['ContactId']}/{person['Id']}"
            _patch(po, path, "EmailAddress", f"po.ny{n + 1}@po.no")


# -- comparing whole systems ----------------------------------------------------------------


def _volatile(key: str) -> bool:
    """Generated timestamps and self-links, which differ between otherwise equal runs."""
    key = key.lower()
    return key == "url" or key.endswith("_at") or "datetime" in key


def _stable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not _volatile(k)}


def comparable(po: Mapping[str, Any], zd: Mapping[str, Any]) -> dict[str, Any]:
    """Both systems' full state with generated ids and timestamps taken out: organizations are
    keyed by external id (or name), references to them by the same key, identities by value."""
    org_key = {
        int(o["id"]): o.get("external_id") or f"name:{o['name'].casefold()}"
        for o in [*zd["organizations"], *zd["deleted_organizations"]]
    }

    def org(row: Mapping[str, Any]) -> dict[str, Any]:
        return _stable({k: v for k, v in row.items() if k != "id"})

    users = {}
    for user in zd["users"]:
        row = _stable(user)
        if row.get("organization_id") is not None:
            row["organization_id"] = org_key[int(row["organization_id"])]
        users[int(user["id"])] = row
    identities = sorted(
        (int(i["user_id"]), str(i["value"]), bool(i.get("primary")), i.get("type"))
        for i in zd["identities"]
    )
    return {
        "organizations": sorted(
            ((org_key[int(o["id"])], org(o)) for o in zd["organizations"]), key=lambda t: t[0]
        ),
        "deleted_organizations": sorted(
            ((org_key[int(o["id"])], org(o)) for o in zd["deleted_organizations"]),
            key=lambda t: t[0],
        ),
        "users": users,
        "identities": identities,
        **{kind: {int(r["Id"]): _stable(r) for r in rows} for kind, rows in po.items()},
    }


def duplicated_external_ids(zd: Mapping[str, Any]) -> list[str]:
    """External ids held by more than one live organization (a create made twice)."""
    counts = Counter(o.get("external_id") for o in zd["organizations"] if o.get("external_id"))
    return sorted(str(k) for k, n in counts.items() if n > 1)
