"""``talksync tenants`` against a real PostgreSQL: add, list, show, pause, resume, remove; secrets
kept as references only; policies checked as talksync.toml is; a tenant's run settings; the
schedule and failure streak that ``list`` shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import structlog
from tests.report_support import run_report
from typer.testing import CliRunner, Result

from adapters.postgres import PostgresStateStore
from adapters.tenant_registry import TenantRegistry
from adapters.tenants import next_due
from cli.config import load_settings
from cli.main import app
from cli.tenants import tenant_settings
from cli.wiring import AppContext
from talkcore.policy import ConflictPolicy

pytestmark = pytest.mark.e2e

TOKEN = "zd-token-value-1234"
CLIENT_KEY = "po-client-key-5678"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "client-key").write_text(CLIENT_KEY + "\n")
    return {"TALKSYNC_DATABASE_URL": database_url, "ACME_ZD_TOKEN": TOKEN}


def run(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--log-format", "json", *args], obj=AppContext(env=env))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def add_acme(env: dict[str, str], tmp_path: Path, *extra: str) -> Result:
    return run(
        env,
        "tenants",
        "add",
        "acme",
        "--zendesk-subdomain",
        "acme",
        "--zendesk-email",
        "agent@acme.no",
        "--zendesk-token",
        "env:ACME_ZD_TOKEN",
        "--poweroffice-client-key",
        f"file:{tmp_path / 'client-key'}",
        "--every",
        "15m",
        *extra,
    )


def test_a_tenant_is_added_listed_shown_and_holds_no_secret(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    policies = tmp_path / "acme.toml"
    policies.write_text('[flows.customers-organizations]\nconflict = "zendesk"\n')
    added = add_acme(env, tmp_path, "--policies", str(policies))
    assert "Added tenant acme: syncs every 15m, due now." in added.stdout

    listed = json.loads(run(env, "tenants", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["acme"]
    (acme,) = listed
    assert acme["zendesk_url"] == "https://acme.zendesk.com"
    assert acme["zendesk_token"] == "env:ACME_ZD_TOKEN"
    assert acme["poweroffice_client_key"] == f"file:{tmp_path / 'client-key'}"
    assert acme["cadence_seconds"] == 900 and acme["failure_streak"] == 0
    assert acme["last_outcome"] is None and not acme["paused"]

    shown = run(env, "tenants", "show", "acme", "--check").stdout
    assert "zendesk_token: env:ACME_ZD_TOKEN" in shown
    assert 'conflict = "zendesk"' in shown
    assert "Both secrets of tenant acme can be read here." in shown

    # Nothing in the database holds either secret.
    with psycopg.connect(database_url) as db:
        dump = json.dumps(db.execute("SELECT * FROM tenants").fetchall(), default=str)
    assert TOKEN not in dump and CLIENT_KEY not in dump

    # The settings a run of acme gets: the deployment's, with the tenant's own.
    base = load_settings(None, {"TALKSYNC_POWEROFFICE_APPLICATION_KEY": "app", **env})
    with TenantRegistry(database_url) as registry:
        settings = tenant_settings(base, registry.get("acme"), env)
    assert settings.zendesk.base_url == "https://acme.zendesk.com"
    assert settings.zendesk.api_token == TOKEN and settings.zendesk.email == "agent@acme.no"
    assert settings.poweroffice.client_key == CLIENT_KEY
    assert settings.poweroffice.application_key == "app"
    assert settings.policy.for_flow("customers-organizations").conflict is ConflictPolicy.ZENDESK


def add_beta(env: dict[str, str], *, code: int = 2, **options: str) -> Result:
    """``tenants add beta`` with working options, ``options`` replacing some."""
    given = {
        "zendesk-subdomain": "beta",
        "zendesk-token": "env:BETA_ZD_TOKEN",
        "poweroffice-client-key": "env:BETA_CLIENT_KEY",
        **{name.replace("_", "-"): value for name, value in options.items()},
    }
    args = [arg for name, value in given.items() for arg in (f"--{name}", value)]
    return run(env, "tenants", "add", "beta", *args, code=code)


def test_what_cannot_be_a_tenant_is_refused_with_the_reason(
    env: dict[str, str], tmp_path: Path
) -> None:
    literal = add_beta(env, zendesk_token=TOKEN)
    assert "--zendesk-token: expected a secret reference, env:NAME or file:/path" in literal.stderr
    assert TOKEN not in literal.stderr  # a secret typed in by mistake is not echoed
    relative = add_beta(env, poweroffice_client_key="file:secrets/key")
    assert "a secret file must be named by an absolute path" in relative.stderr
    assert "not a subdomain" in add_beta(env, zendesk_subdomain="beta.zendesk.com").stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[zendesk]\nsubdomain = "x"\n')
    assert "[zendesk] does not belong here" in add_beta(env, policies=str(bad)).stderr
    bad.write_text('[flows.customers-organizations]\nconflict = "sometimes"\n')
    refused = add_beta(env, policies=str(bad)).stderr
    assert "flows.customers-organizations.conflict: expected one of" in refused
    assert "--every: '0m' must be longer than zero" in add_beta(env, every="0m").stderr

    add_beta(env, code=0)
    assert "tenant 'beta' exists already" in add_beta(env).stderr
    missing = run(env, "tenants", "show", "gamma", code=2)
    assert "no tenant 'gamma'" in missing.stderr and "(tenants: beta)" in missing.stderr
    # Its secrets are not set here: added all the same (the workers may have them), with a
    # warning, and show --check fails naming each.
    checked = run(env, "tenants", "show", "beta", "--check", code=2).stderr
    assert "Zendesk token (env:BETA_ZD_TOKEN): environment variable BETA_ZD_TOKEN is not set" in (
        checked
    )
    assert "PowerOffice client key (env:BETA_CLIENT_KEY)" in checked


def test_tenants_need_the_database_setting() -> None:
    result = run({}, "tenants", "list", code=2)
    assert "tenants live in PostgreSQL: set TALKSYNC_DATABASE_URL" in result.stderr


def test_listing_a_database_talksync_never_used_creates_nothing(
    env: dict[str, str], database_url: str
) -> None:
    result = run(env, "tenants", "list")
    assert result.stdout == ""
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT to_regclass('talksync_schema')").fetchone() == (None,)


def test_the_single_company_tenant_is_listed_as_not_scheduled(
    env: dict[str, str], database_url: str
) -> None:
    PostgresStateStore(database_url).close()  # what `talksync sync` makes on first use
    (line,) = run(env, "tenants", "list").stdout.splitlines()
    assert line.split("\t")[0] == "default"
    assert "not scheduled (settings from the environment" in line
    with TenantRegistry(database_url) as registry:
        assert registry.claim_due(datetime.now(UTC)) == []  # no worker runs it


def test_pause_resume_and_remove(env: dict[str, str], tmp_path: Path, database_url: str) -> None:
    add_acme(env, tmp_path)
    with PostgresStateStore(database_url, "acme") as store:
        store.record_run(run_report("r1"))
    assert "Paused tenant acme" in run(env, "tenants", "pause", "acme").stdout
    (row,) = json.loads(run(env, "tenants", "list", "--json").stdout)
    assert row["paused"] is True
    listed = run(env, "tenants", "list").stdout
    assert listed.startswith("acme\t15m\t-\t-\tpaused\t0")
    assert "due now" in run(env, "tenants", "resume", "acme").stdout
    (row,) = json.loads(run(env, "tenants", "list", "--json").stdout)
    assert row["paused"] is False

    refused = run(env, "tenants", "remove", "acme", code=2)  # no terminal, no --yes
    assert "not removed: confirm on a terminal, or add --yes" in refused.stderr
    run(env, "tenants", "remove", "acme", "--yes")
    assert json.loads(run(env, "tenants", "list", "--json").stdout) == []
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_list_shows_the_last_run_its_outcome_the_next_due_and_the_failure_streak(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    add_acme(env, tmp_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with TenantRegistry(database_url) as registry:
        registry.run_finished("acme", "unavailable", t0)
        registry.run_finished("acme", "busy", t0 + timedelta(minutes=1))  # not a failure
        tenant = registry.run_finished("acme", "credentials", t0 + timedelta(minutes=2))
    assert tenant.failure_streak == 2
    assert tenant.next_due == t0 + timedelta(minutes=2) + timedelta(minutes=15) * 4
    line = run(env, "tenants", "list").stdout.splitlines()[0].split("\t")
    stamp = "%Y-%m-%d %H:%M:%S UTC"
    last, due = t0 + timedelta(minutes=2), t0 + timedelta(minutes=62)
    assert line == ["acme", "15m", f"{last:{stamp}}", "credentials", f"{due:{stamp}}", "2"]
    with TenantRegistry(database_url) as registry:
        assert registry.run_finished("acme", "ok", t0 + timedelta(hours=2)).failure_streak == 0


def test_back_off_doubles_per_failure_within_bounds() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    five = timedelta(minutes=5)
    assert next_due(t0, five, 0) == t0 + five
    assert next_due(t0, five, 1) == t0 + 2 * five
    assert next_due(t0, five, 3) == t0 + 8 * five
    assert next_due(t0, five, 50) == t0 + timedelta(hours=6)
    assert next_due(t0, timedelta(hours=12), 3) == t0 + timedelta(hours=12)
