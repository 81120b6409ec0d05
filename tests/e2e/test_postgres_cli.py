"""The real `talksync` CLI, as a subprocess, against both sandboxes on loopback sockets, with its
state in PostgreSQL (``TALKSYNC_DATABASE_URL``): the read-only commands before any state, a first
sync, edits flowing across, the fixpoint, a second run refused while one holds the tenant, and
the very same end state as the same work on the SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
from e2e_support import comparable, make_edits, sandboxes, talksync
from site_support import Site, changes

from adapters.postgres import NothingStored, PostgresStateStore
from adapters.tenant_registry import TenantRegistry
from adapters.tenants import SecretRef, Tenant
from talkcore.records import Kind

pytestmark = pytest.mark.e2e


def test_a_sync_with_its_state_in_postgresql_reaches_the_fixpoint(
    site: Site, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The site's CLI inherits it; the test server trusts loopback, so any password will do.
    with_password = database_url.replace("talksync@", "talksync:hunter2@")
    monkeypatch.setenv("TALKSYNC_DATABASE_URL", with_password)

    # Looking creates nothing: no tables, and the message names the database, not a file, and
    # never the password.
    said = site.cli("-vv", "status", expect=2).stderr
    assert "no talksync state in postgresql://talksync@127.0.0.1:" in said
    assert "hunter2" not in said
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT to_regclass('talksync_schema')").fetchone() == (None,)

    first = site.sync()
    assert changes(first) > 10 and first["summary"]["failed"] == 0
    assert changes(site.sync()) == 0

    customer = str(site.cases.customer_ids[0])
    org = site.link("customers-organizations", customer)
    site.edit(site.poweroffice, Kind.CUSTOMER, customer, Name="Omdøpt i Postgres AS")
    edited = site.sync()
    assert edited["summary"]["update"] == 1 and edited["summary"]["failed"] == 0
    names = {str(o["id"]): o["name"] for o in site.served.zendesk.dump()["organizations"]}
    assert names[org] == "Omdøpt i Postgres AS"
    assert changes(site.sync()) == 0
    assert changes(json.loads(site.cli("plan", "--json").stdout)) == 0

    status = json.loads(site.cli("status", "--json").stdout)
    assert status["running"] is None
    assert not (site.folder / "state.db").exists()  # the SQLite file was never made
    with PostgresStateStore(database_url) as store:
        assert len(store.recent_runs()) == 4

        # While a run holds the tenant, a second refuses at once (exit 4) and status says who.
        with store.lock():
            busy = site.cli("sync", expect=4)
            assert "is syncing tenant 'default'" in busy.stderr
            running = json.loads(site.cli("status", "--json").stdout)["running"]
            assert running is not None and isinstance(running["pid"], int)


def test_postgresql_and_sqlite_give_the_same_end_state(tmp_path: Path, database_url: str) -> None:
    """The same seed and the same edits, synced with each store: both systems end equal."""
    ends = []
    for store in ("sqlite", "postgres"):
        folder = tmp_path / store
        folder.mkdir()
        state = folder / "state.db"
        with sandboxes() as running:
            env = running.env()
            if store == "postgres":
                env["TALKSYNC_DATABASE_URL"] = database_url
            for round_ in range(3):
                done = talksync(env, state, "sync", "--json")
                assert done.returncode == 0, done.stderr[-2000:]
                if round_ == 0:
                    make_edits(running, org_renames=2, zendesk_emails=2, poweroffice_edits=2)
            assert changes(json.loads(done.stdout)) == 0
            ends.append(comparable(running.poweroffice.dump(), running.zendesk.dump()))
        assert state.exists() == (store == "sqlite")
    assert ends[0] == ends[1]


def test_the_cli_acts_as_a_tenant_with_its_own_account_secrets_and_state(
    site: Site, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = site.served
    # The deployment's environment only: no Zendesk account and no client key of its own.
    for name in list(os.environ):
        if name.startswith("TALKSYNC_"):
            monkeypatch.delenv(name)
    deployment = {
        k: v
        for k, v in served.env().items()
        if k.startswith("TALKSYNC_POWEROFFICE_") and not k.endswith("CLIENT_KEY")
    }
    monkeypatch.setattr(Site, "env", lambda self: {**os.environ, **deployment})
    monkeypatch.setenv("TALKSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("ACME_TOKEN", served.zendesk.credentials.oauth_token)
    with TenantRegistry(database_url) as registry:
        registry.add(
            Tenant(
                "acme",
                zendesk_url=served.zendesk_url,
                zendesk_token=SecretRef("env", "ACME_TOKEN"),
                poweroffice_client_key=SecretRef("env", "ACME_CLIENT_KEY"),
            )
        )

    missing = site.cli("--tenant", "acme", "sync", expect=2).stderr
    assert "PowerOffice client key (env:ACME_CLIENT_KEY)" in missing
    assert "no tenant 'nope'" in site.cli("--tenant", "nope", "status", expect=2).stderr

    monkeypatch.setenv("ACME_CLIENT_KEY", served.poweroffice.credentials.client_key)
    first = json.loads(site.cli("--tenant", "acme", "sync", "--json").stdout)
    assert changes(first) > 10 and first["summary"]["failed"] == 0
    again = json.loads(site.cli("--tenant", "acme", "sync", "--json").stdout)
    assert changes(again) == 0
    listed = json.loads(site.cli("--tenant", "acme", "links", "list", "--json").stdout)
    assert len(listed) > 5
    with PostgresStateStore(database_url, "acme", create=False) as store:
        assert [r["run_id"] for r in store.recent_runs()] == [again["run_id"], first["run_id"]]
        with store.lock():  # as a worker would hold it
            busy = site.cli("--tenant", "acme", "sync", expect=4).stderr
            assert "is syncing tenant 'acme'" in busy
    # The single-company tenant saw none of it.
    with pytest.raises(NothingStored):
        PostgresStateStore(database_url, create=False)
