"""The tenants of a PostgreSQL state database (the model: ``adapters.tenants``): adding,
finding, pausing and removing them, and their schedule (claimed when due, moved on when a run
ends). A tenant's state rows go with it: every state table refers to it ``ON DELETE CASCADE``.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from adapters.postgres import connect, describe, migrate, readable
from adapters.tenants import OUTCOMES, Tenant, TenantError, next_due


class TenantRegistry:
    """The tenants of one database. ``create=False`` (the listings) migrates nothing and sees
    no tenant in a database talksync never used."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.where = describe(url)
        self._db = connect(url)
        try:
            if create:
                migrate(self._db, self.where)
                self._empty = False
            else:
                self._empty = not readable(self._db, self.where)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> TenantRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, tenant: Tenant) -> Tenant:
        """Register ``tenant`` (due at once); ``TenantError`` when the name is taken."""
        if not tenant.configured or tenant.zendesk_token is None:
            raise TenantError(f"tenant {tenant.name!r}: a Zendesk account and token are needed")
        if tenant.poweroffice_client_key is None:
            raise TenantError(f"tenant {tenant.name!r}: a PowerOffice client key is needed")
        try:
            self._db.execute(
                "INSERT INTO tenants (name, zendesk_url, zendesk_email, zendesk_token_ref,"
                " poweroffice_client_key_ref, policies, cadence_seconds, paused)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    tenant.name,
                    tenant.zendesk_url,
                    tenant.zendesk_email,
                    str(tenant.zendesk_token),
                    str(tenant.poweroffice_client_key),
                    tenant.policies,
                    int(tenant.cadence.total_seconds()),
                    tenant.paused,
                ),
            )
        except psycopg.errors.UniqueViolation:
            raise TenantError(f"tenant {tenant.name!r} exists already in {self.where}") from None
        return self.get(tenant.name)

    def all(self) -> list[Tenant]:
        """Every tenant, by name."""
        if self._empty:
            return []
        with self._db.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute("SELECT * FROM tenants ORDER BY name").fetchall()
        return [Tenant.from_row(row) for row in rows]

    def get(self, name: str) -> Tenant:
        """The tenant ``name``; ``TenantError`` naming the tenants there are when none is."""
        row = None
        if not self._empty:
            with self._db.cursor(row_factory=dict_row) as cursor:
                row = cursor.execute("SELECT * FROM tenants WHERE name = %s", (name,)).fetchone()
        if row is None:
            names = ", ".join(t.name for t in self.all()) or "none yet: talksync tenants add"
            raise TenantError(f"no tenant {name!r} in {self.where} (tenants: {names})")
        return Tenant.from_row(row)

    def remove(self, name: str) -> Tenant:
        """Delete the tenant and all its state (links, mirrors, journal, run log)."""
        tenant = self.get(name)
        self._db.execute("DELETE FROM tenants WHERE name = %s", (name,))
        return tenant

    def set_paused(self, name: str, paused: bool) -> Tenant:
        """Pause (no scheduled runs) or resume a tenant; resuming makes it due at once."""
        self.get(name)
        self._db.execute(
            "UPDATE tenants SET paused = %s,"
            " next_due = CASE WHEN %s THEN next_due ELSE least(next_due, now()) END"
            " WHERE name = %s",
            (paused, paused, name),
        )
        return self.get(name)

    def claim_due(self, now: datetime) -> list[Tenant]:
        """The tenants due at ``now`` (not paused, with settings of their own), each moved one
        cadence on at once so that the next tick does not claim it again while its run waits
        in the queue; the run's end sets the real next time (``run_finished``)."""
        with self._db.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(
                "UPDATE tenants SET next_due = %s + make_interval(secs => cadence_seconds)"
                " WHERE NOT paused AND zendesk_url IS NOT NULL AND next_due <= %s"
                " RETURNING *",
                (now, now),
            ).fetchall()
        return sorted((Tenant.from_row(row) for row in rows), key=lambda t: t.name)

    def run_started(self, name: str, when: datetime) -> None:
        """Record that a run of ``name`` started at ``when``."""
        self._db.execute("UPDATE tenants SET last_started = %s WHERE name = %s", (when, name))

    def run_finished(self, name: str, outcome: str, when: datetime) -> Tenant:
        """Record how a run of ``name`` ended and schedule the next (see ``next_due``)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._db.transaction():
            tenant = self._locked(name)
            if outcome in ("busy", "interrupted"):
                # Neither says anything about the tenant: another run had it, or the worker
                # was stopped; an interrupted run is due again at once to finish its job.
                streak = tenant.failure_streak
                due = when if outcome == "interrupted" else next_due(when, tenant.cadence, streak)
            else:
                streak = 0 if outcome == "ok" else tenant.failure_streak + 1
                due = next_due(when, tenant.cadence, streak)
            self._db.execute(
                "UPDATE tenants SET last_finished = %s, last_outcome = %s, failure_streak = %s,"
                " next_due = %s WHERE name = %s",
                (when, outcome, streak, due, name),
            )
        return self.get(name)

    def _locked(self, name: str) -> Tenant:
        with self._db.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(
                "SELECT * FROM tenants WHERE name = %s FOR UPDATE", (name,)
            ).fetchone()
        if row is None:
            raise TenantError(f"no tenant {name!r} in {self.where}")
        return Tenant.from_row(row)
