"""Tenants on the many-account sandbox, and their run log: shared by the worker e2e tests and
``bench/tenants.py``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg

from adapters.sandbox.server import RunningAccounts
from adapters.tenant_registry import TenantRegistry
from adapters.tenants import SecretRef, Tenant


def register_tenants(
    url: str, running: RunningAccounts, names: Sequence[str], cadence: timedelta
) -> dict[str, str]:
    """Add one tenant per name, on Zendesk account ``name`` and PowerOffice client key
    ``client-<name>`` of ``running``; the environment holding the secrets their references
    name (the deployment's PowerOffice settings included)."""
    env = dict(running.poweroffice_env())
    with TenantRegistry(url) as registry:
        for n, name in enumerate(names):
            account = running.zendesk.accounts[name]
            env[f"ZD_TOKEN_{n}"] = account.credentials.api_token
            env[f"PO_CLIENT_{n}"] = f"client-{name}"
            registry.add(
                Tenant(
                    name,
                    zendesk_url=running.zendesk_account_url(name),
                    zendesk_email=account.credentials.email,
                    zendesk_token=SecretRef("env", f"ZD_TOKEN_{n}"),
                    poweroffice_client_key=SecretRef("env", f"PO_CLIENT_{n}"),
                    cadence=cadence,
                )
            )
    return env


def runs(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every tenant's run reports, oldest first."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT t.name, r.report FROM runs r JOIN tenants t ON t.id = r.tenant_id"
            " ORDER BY r.seq"
        ).fetchall()
    found: dict[str, list[dict[str, Any]]] = {}
    for name, report in rows:
        found.setdefault(name, []).append(json.loads(report))
    return found
