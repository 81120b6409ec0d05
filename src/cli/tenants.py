"""``talksync tenants``: the companies one PostgreSQL database syncs.

Each tenant has its Zendesk account, references to its two secrets (its Zendesk token and its
PowerOffice client key, as ``env:NAME`` or ``file:/path``: the database never holds a secret;
see ``adapters.tenants``), its policies (the ``[sync]`` and ``[flows.*]`` tables of
``talksync.toml``) and a cadence. The PowerOffice application and subscription keys, and both
systems' base URLs, are the deployment's: they come from the environment as without tenants.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import attrs
import typer

from adapters.tenants import SecretRef, Tenant, TenantError, secret_problems
from cli.config import (
    ConfigError,
    Settings,
    ZendeskSettings,
    parse_duration,
    read_policies,
    zendesk_account_url,
)
from cli.decisions import Listing, show
from cli.helptext import AsJson, examples
from cli.logs import tell
from cli.output import emit_json
from cli.wiring import AppContext

if TYPE_CHECKING:
    from adapters.tenant_registry import TenantRegistry

USAGE = 2  # the CLI's exit code for a usage error (cli.main documents them all)

tenants_app = typer.Typer(
    help="The companies one PostgreSQL database syncs (needs TALKSYNC_DATABASE_URL).",
    no_args_is_help=True,
)


def _app(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


@contextmanager
def _guarded() -> Iterator[None]:
    """The CLI's error translation (cli.main, looked up late: main registers these commands),
    plus a tenant that cannot be found or changed: exit 2 with the reason."""
    from cli.main import failing_cleanly

    with failing_cleanly():
        try:
            yield
        except TenantError as exc:
            tell(str(exc), exit_code=USAGE)
            raise typer.Exit(USAGE) from None


def _registry(obj: AppContext, *, create: bool = False) -> TenantRegistry:
    """The registry of the configured database (``create``: migrate it first)."""
    from adapters.tenant_registry import TenantRegistry  # psycopg only for these commands

    url = obj.settings().database_url
    if not url:
        raise ConfigError(
            "tenants live in PostgreSQL: set TALKSYNC_DATABASE_URL (or state.database_url_file"
            " in the config)"
        )
    return obj.stack.enter_context(TenantRegistry(url, create=create))


def _secret_ref(text: str, option: str) -> SecretRef:
    try:
        return SecretRef.parse(text)
    except TenantError as exc:
        raise TenantError(f"{option}: {exc}") from None


# -- a tenant's settings for a run ------------------------------------------------------------


def tenant_settings(base: Settings, tenant: Tenant, env: Mapping[str, str]) -> Settings:
    """The settings a run of ``tenant`` uses: the deployment's (``base``: PowerOffice keys and
    URLs, timeouts, the database) with the tenant's account, secrets and policies. The
    single-company tenant has none of its own and runs on ``base`` as it is."""
    if not tenant.configured:
        return base
    where = f"tenant {tenant.name!r}"
    problems = secret_problems(tenant, env)
    if problems:
        raise TenantError("; ".join(problems))
    token = tenant.zendesk_token.resolve(env) if tenant.zendesk_token else None
    client_key = (
        tenant.poweroffice_client_key.resolve(env) if tenant.poweroffice_client_key else None
    )
    zendesk = ZendeskSettings(
        base_url=tenant.zendesk_url,
        email=tenant.zendesk_email,
        api_token=token if tenant.zendesk_email else None,
        oauth_token=None if tenant.zendesk_email else token,
        rate_limit_per_minute=base.zendesk.rate_limit_per_minute,
    )
    return attrs.evolve(
        base,
        zendesk=zendesk,
        poweroffice=attrs.evolve(base.poweroffice, client_key=client_key),
        policy=read_policies(tenant.policies, f"{where} policies"),
    )


# -- the commands ------------------------------------------------------------------------------


@tenants_app.command(
    "add",
    epilog=examples(
        "talksync tenants add acme --zendesk-subdomain acme --zendesk-email agent@acme.no \\",
        "    --zendesk-token env:ACME_ZENDESK_TOKEN \\",
        "    --poweroffice-client-key file:/run/secrets/acme-client-key \\",
        "    --policies acme-policies.toml --every 5m",
    ),
)
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tenant's name (unique).")],
    zendesk_token: Annotated[
        str,
        typer.Option(
            "--zendesk-token",
            metavar="REF",
            help="Where the Zendesk API token (with --zendesk-email) or OAuth token is:"
            " env:NAME or file:/path. Never the token itself.",
        ),
    ],
    poweroffice_client_key: Annotated[
        str,
        typer.Option(
            "--poweroffice-client-key",
            metavar="REF",
            help="Where the tenant's PowerOffice Go client key is: env:NAME or file:/path.",
        ),
    ],
    zendesk_subdomain: Annotated[
        str | None, typer.Option("--zendesk-subdomain", help="acme for acme.zendesk.com.")
    ] = None,
    zendesk_url: Annotated[
        str | None, typer.Option("--zendesk-url", help="The account's URL, instead.")
    ] = None,
    zendesk_email: Annotated[
        str | None,
        typer.Option("--zendesk-email", help="The agent of an API token (none: OAuth token)."),
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            metavar="FILE",
            help="TOML holding the sync and flows.* tables of talksync.toml (default: the"
            " defaults).",
        ),
    ] = None,
    every: Annotated[
        str, typer.Option("--every", metavar="DURATION", help="How often to sync it.")
    ] = "5m",
) -> None:
    """Add a tenant; it is due at once."""
    obj = _app(ctx)
    with _guarded():
        url = zendesk_account_url(zendesk_subdomain, zendesk_url, "--zendesk-subdomain")
        if url is None:
            raise ConfigError(
                "give the tenant's Zendesk account: --zendesk-subdomain or --zendesk-url"
            )
        text = ""
        if policies is not None:
            try:
                text = policies.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"--policies: cannot read {policies}: {exc.strerror}") from None
            read_policies(text, str(policies))  # refuse what a run would refuse, now
        tenant = Tenant(
            name=name,
            zendesk_url=url,
            zendesk_email=zendesk_email,
            zendesk_token=_secret_ref(zendesk_token, "--zendesk-token"),
            poweroffice_client_key=_secret_ref(poweroffice_client_key, "--poweroffice-client-key"),
            policies=text,
            cadence=parse_duration(every, what="--every"),
        )
        added = _registry(obj, create=True).add(tenant)
    typer.echo(f"Added tenant {added.name}: syncs every {_duration(added.cadence)}, due now.")
    for problem in secret_problems(added, obj.env):
        tell(f"{problem} (here; it must be readable where the workers run)", level="warning")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _next(tenant: Tenant) -> str:
    if not tenant.configured:
        return "not scheduled (settings from the environment: talksync sync)"
    if tenant.paused:
        return "paused"
    if tenant.next_due is not None and tenant.next_due <= datetime.now(UTC):
        return "due now"
    return _when(tenant.next_due)


def tenant_data(tenant: Tenant) -> dict[str, Any]:
    """One tenant as JSON-ready data: settings, secret references (never values), schedule."""
    return {
        "name": tenant.name,
        "zendesk_url": tenant.zendesk_url,
        "zendesk_email": tenant.zendesk_email,
        "zendesk_token": None if tenant.zendesk_token is None else str(tenant.zendesk_token),
        "poweroffice_client_key": None
        if tenant.poweroffice_client_key is None
        else str(tenant.poweroffice_client_key),
        "policies": tenant.policies,
        "cadence_seconds": int(tenant.cadence.total_seconds()),
        "paused": tenant.paused,
        "next_due": None if tenant.next_due is None else tenant.next_due.isoformat(),
        "last_started": None if tenant.last_started is None else tenant.last_started.isoformat(),
        "last_finished": None if tenant.last_finished is None else tenant.last_finished.isoformat(),
        "last_outcome": tenant.last_outcome,
        "failure_streak": tenant.failure_streak,
    }


@tenants_app.command(
    "list", epilog=examples("talksync tenants list", "talksync tenants list --json | jq '.[].name'")
)
def list_tenants(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """Every tenant: its cadence, last run and outcome, when it is next due, failures in a row."""
    with _guarded():
        tenants = _registry(_app(ctx)).all()
    show(
        Listing(
            "Tenants",
            ("tenant", "every", "last run", "outcome", "next due", "failures in a row"),
            [
                (
                    t.name,
                    _duration(t.cadence),
                    _when(t.last_finished),
                    t.last_outcome or "-",
                    _next(t),
                    str(t.failure_streak),
                )
                for t in tenants
            ],
            [tenant_data(t) for t in tenants],
            "tenant(s)",
            "Details: talksync tenants show NAME",
        ),
        as_json=as_json,
    )


@tenants_app.command(
    "show", epilog=examples("talksync tenants show acme", "talksync tenants show acme --check")
)
def show_tenant(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tenant.")],
    as_json: AsJson = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Also check that its secrets can be read here (exit 2 if not)."
        ),
    ] = False,
) -> None:
    """One tenant: account, secret references (never the secrets), policies, schedule."""
    obj = _app(ctx)
    with _guarded():
        tenant = _registry(obj).get(name)
    data = tenant_data(tenant)
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            if key == "policies":
                continue
            typer.echo(f"{key}: {'-' if value is None else value}")
        policies = tenant.policies.rstrip()
        typer.echo(f"policies:\n{policies}" if policies else "policies: (defaults)")
    if check and not tenant.configured:
        typer.echo(f"Tenant {name} takes its settings from the environment (talksync check).")
    elif check:
        problems = secret_problems(tenant, obj.env)
        for problem in problems:
            tell(problem, exit_code=USAGE)
        if problems:
            raise typer.Exit(USAGE)
        typer.echo(f"Both secrets of tenant {name} can be read here.")


@tenants_app.command(
    "remove", epilog=examples("talksync tenants remove acme", "talksync tenants remove acme --yes")
)
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tenant.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove without asking (for scripts).")
    ] = False,
) -> None:
    """Remove a tenant and all its state (links, mirrors, journal, run log).

    Nothing in PowerOffice or Zendesk is touched. On a terminal you are asked to confirm,
    elsewhere --yes is required.
    """
    obj = _app(ctx)
    with _guarded():
        registry = _registry(obj)
        registry.get(name)
        if not yes:
            if not sys.stdin.isatty():
                raise TenantError(
                    f"tenant {name!r} not removed: confirm on a terminal, or add --yes"
                )
            if not typer.confirm(f"Remove tenant {name} and all its state?", default=False):
                raise TenantError(f"tenant {name!r} not removed")
        registry.remove(name)
    typer.echo(f"Removed tenant {name} and its state.")


@tenants_app.command("pause", epilog=examples("talksync tenants pause acme"))
def pause(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """Stop scheduling a tenant's syncs (a run in progress finishes)."""
    with _guarded():
        _registry(_app(ctx)).set_paused(name, True)
    typer.echo(f"Paused tenant {name}: no scheduled syncs until `talksync tenants resume {name}`.")


@tenants_app.command("resume", epilog=examples("talksync tenants resume acme"))
def resume(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """Schedule a paused tenant again; it is due at once."""
    with _guarded():
        _registry(_app(ctx)).set_paused(name, False)
    typer.echo(f"Resumed tenant {name}: due now.")


def register(app: typer.Typer) -> None:
    """Add the ``tenants`` commands to ``app``."""
    app.add_typer(tenants_app, name="tenants")
