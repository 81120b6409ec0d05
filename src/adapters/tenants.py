"""The tenants of a PostgreSQL state database: who they are, where their secrets are, when
they are due, and how their last runs went.

A tenant is one company: its Zendesk account, its PowerOffice Go client key, its policies
(the ``[sync]`` and ``[flows.*]`` tables of ``talksync.toml``, kept as TOML text) and a cadence.
The PowerOffice application and subscription keys belong to the integration, not to a tenant:
every tenant of one deployment shares them (and their 10 requests a second).

**Secrets are references, never values.** A tenant's Zendesk token and PowerOffice client key
are stored as ``env:NAME`` (an environment variable of the process that syncs) or
``file:/path`` (a file such as a mounted container or systemd secret). So the database, its
backups and its replicas hold nothing that grants access; rotating a secret changes the secret
store, not the database; and there is no encryption key whose loss or leak decides everything.
The price: the secret must be present where the sync runs, which ``tenants show --check``
verifies.

This module is the tenants' model; ``adapters.tenant_registry`` keeps them in PostgreSQL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import attrs

OUTCOMES = ("ok", "failures", "unavailable", "credentials", "busy", "interrupted", "error")
"""How a run can end: ``ok`` resets the failure streak; ``busy`` (another run held the tenant)
and ``interrupted`` (the worker was stopped) leave it alone; every other outcome adds one."""

MAX_BACKOFF = timedelta(hours=6)


class TenantError(Exception):
    """A tenant that cannot be added, found or changed; the message names it and why."""


@attrs.frozen
class SecretRef:
    """Where a secret is: ``env:NAME`` or ``file:/absolute/path``. Never the secret itself."""

    source: Literal["env", "file"]
    name: str

    def __attrs_post_init__(self) -> None:
        if self.source == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise TenantError(f"{self.name!r} is not an environment variable name")
        if self.source == "file" and not Path(self.name).is_absolute():
            raise TenantError(f"{self.name!r}: a secret file must be named by an absolute path")

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """A reference from its text form (``env:ACME_ZENDESK_TOKEN``, ``file:/run/secrets/x``)."""
        source, sep, name = text.partition(":")
        if not sep or source not in ("env", "file"):
            # Not echoed: what was typed may be the secret itself.
            raise TenantError(
                "expected a secret reference, env:NAME or file:/path (the secret itself is"
                " never stored)"
            )
        return cls("env" if source == "env" else "file", name)

    def resolve(self, env: Mapping[str, str]) -> str:
        """The secret, read now; ``TenantError`` naming the reference when it is not there."""
        if self.source == "env":
            value = env.get(self.name, "").strip()
            if not value:
                raise TenantError(f"environment variable {self.name} is not set")
            return value
        try:
            value = Path(self.name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TenantError(f"cannot read secret file {self.name}: {exc.strerror}") from None
        if not value:
            raise TenantError(f"secret file {self.name} is empty")
        return value


def _ref(text: str | None) -> SecretRef | None:
    return None if text is None else SecretRef.parse(text)


@attrs.frozen
class Tenant:
    """One tenant: its settings (``None`` for the single-company tenant, whose settings come
    from the environment) and its schedule."""

    name: str
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    """The agent of an API token; ``None``: the token is an OAuth token."""
    zendesk_token: SecretRef | None = None
    poweroffice_client_key: SecretRef | None = None
    policies: str = ""
    """The ``[sync]`` and ``[flows.*]`` tables, as TOML text (empty: the defaults)."""
    cadence: timedelta = timedelta(minutes=5)
    paused: bool = False
    next_due: datetime | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_outcome: str | None = None
    failure_streak: int = 0

    @property
    def configured(self) -> bool:
        """Whether the tenant carries its own settings (added with ``tenants add``)."""
        return self.zendesk_url is not None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Tenant:
        """A tenant from its ``tenants`` row."""
        return cls(
            name=row["name"],
            zendesk_url=row["zendesk_url"],
            zendesk_email=row["zendesk_email"],
            zendesk_token=_ref(row["zendesk_token_ref"]),
            poweroffice_client_key=_ref(row["poweroffice_client_key_ref"]),
            policies=row["policies"],
            cadence=timedelta(seconds=row["cadence_seconds"]),
            paused=row["paused"],
            next_due=row["next_due"],
            last_started=row["last_started"],
            last_finished=row["last_finished"],
            last_outcome=row["last_outcome"],
            failure_streak=row["failure_streak"],
        )


def next_due(finished: datetime, cadence: timedelta, failure_streak: int) -> datetime:
    """When a tenant is due again: one cadence after a good run; after failures the wait
    doubles per failure in a row (at most ``MAX_BACKOFF``, never less than one cadence), so a
    failing tenant asks less of the shared budget while the others keep theirs."""
    if failure_streak <= 0:
        return finished + cadence
    backoff: timedelta = cadence * (2 ** min(failure_streak, 16))
    return finished + max(cadence, min(backoff, MAX_BACKOFF))


def secret_problems(tenant: Tenant, env: Mapping[str, str] | None = None) -> list[str]:
    """What of ``tenant``'s secrets cannot be read here and now, one line each."""
    env = os.environ if env is None else env
    problems = []
    for what, ref in (
        ("Zendesk token", tenant.zendesk_token),
        ("PowerOffice client key", tenant.poweroffice_client_key),
    ):
        if ref is None:
            continue
        try:
            ref.resolve(env)
        except TenantError as exc:
            problems.append(f"tenant {tenant.name!r}: {what} ({ref}): {exc}")
    return problems
