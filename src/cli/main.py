"""The ``talksync`` command: thin Typer wrappers that parse, call the engine, and render.

Exit codes: 0 everything applied; 1 some records failed (they are listed); 2 usage or
configuration error; 3 a system could not be reached (or refused the credentials); 4 another
run holds the state file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated

import structlog
import typer

from adapters.sqlite import StateFileError
from cli import decisions
from cli import demo as demo_module
from cli.config import DEFAULT_CONFIG_PATH, ConfigError, config_template, parse_duration
from cli.logs import bind_run, configure_logging
from cli.output import (
    ProgressObserver,
    emit_json,
    item_lines,
    render_failures,
    render_plan,
    render_status,
    report_json,
    status_data,
    stdout_console,
    summary_table,
)
from cli.stopping import SignalStop
from cli.wiring import AppContext, recent_runs
from talkcore.dataflow import DEFAULT_DATAFLOW, render_checklist
from talkcore.engine import RunReport, plan_run, run_sync
from talkcore.ports import AlreadyRunning, StateStore, SystemUnavailable
from talkcore.state import SyncState

OK, FAILURES, USAGE, UNAVAILABLE, BUSY = 0, 1, 2, 3, 4

EXIT_CODES = """Exit codes: 0 all applied; 1 some records failed (listed); 2 usage or
configuration error; 3 a system could not be reached; 4 another run holds the state."""

app = typer.Typer(
    name="talksync",
    help=f"Keep PowerOffice Go and Zendesk Support in sync, both ways.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(help="Local stand-ins for both APIs.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
decisions.register(app)  # links, conflicts, ambiguities, decisions

log = structlog.get_logger()


class LogFormat(StrEnum):
    """How log lines look."""

    CONSOLE = "console"
    JSON = "json"


class DocFormat(StrEnum):
    """Markup of the dataflow checklist."""

    RST = "rst"
    MARKDOWN = "markdown"


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("talksync")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
            version = "unknown"
        typer.echo(f"talksync {version}")
        raise typer.Exit(OK)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def failing_cleanly() -> Iterator[None]:
    """Turn the errors a person can act on into a message on stderr and an exit code."""
    try:
        yield
    except (ConfigError, StateFileError) as exc:
        raise fail(str(exc), USAGE) from None
    except AlreadyRunning as exc:
        raise fail(str(exc), BUSY) from None
    except SystemUnavailable as exc:
        raise fail(f"could not reach a system: {exc}", UNAVAILABLE) from None


def _app(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default: ./talksync.toml).")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="State file (default: ./talksync.db; env TALKSYNC_STATE)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format", help="Log lines as console or json (default: console on a terminal)."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Keep PowerOffice Go and Zendesk Support in sync, both ways."""
    if ctx.obj is None:
        ctx.obj = AppContext()
    obj: AppContext = ctx.obj
    obj.config_path, obj.verbose = config, verbose
    obj.state_path = state or obj.state_path
    obj.log_format = log_format.value if log_format else None
    ctx.call_on_close(obj.stack.close)
    secrets: list[str | None] = []
    try:
        settings = obj.settings()
        po, zd = settings.poweroffice, settings.zendesk
        secrets = [po.application_key, po.client_key, po.subscription_key]
        secrets += [zd.api_token, zd.oauth_token]
    except ConfigError:
        pass  # reported by the command that needs the settings (init needs none)
    configure_logging(verbose=verbose, log_format=obj.log_format, secrets=secrets)


# -- init, check, dataflow -------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented talksync.toml with every setting at its default."""
    path = _app(ctx).config_path or DEFAULT_CONFIG_PATH
    if path.exists() and not force:
        raise fail(f"{path} exists; use --force to overwrite it", USAGE)
    path.write_text(config_template(), encoding="utf-8")
    typer.echo(f"Wrote {path}. Set these environment variables (or the *_file settings):")
    for name in (
        "TALKSYNC_POWEROFFICE_APPLICATION_KEY",
        "TALKSYNC_POWEROFFICE_CLIENT_KEY",
        "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY",
        "TALKSYNC_ZENDESK_SUBDOMAIN",
        "TALKSYNC_ZENDESK_EMAIL and TALKSYNC_ZENDESK_API_TOKEN, or TALKSYNC_ZENDESK_OAUTH_TOKEN",
    ):
        typer.echo(f"  {name}")


@app.command()
def check(ctx: typer.Context) -> None:
    """Check the credentials and reachability of both systems."""
    with failing_cleanly():
        poweroffice, zendesk = _app(ctx).systems()
    broken = 0
    for port in (poweroffice, zendesk):
        checker = getattr(port, "check", None)
        try:
            text = checker() if callable(checker) else f"{port.system}: no check available"
            typer.echo(f"ok: {text}")
        except (
            Exception
        ) as exc:  # every failure is one line; the adapters' messages hold no secrets
            broken += 1
            typer.echo(f"error: {port.system}: {exc}", err=True)
    if broken:
        raise typer.Exit(UNAVAILABLE)


@app.command()
def dataflow(
    fmt: Annotated[DocFormat, typer.Option("--format", help="Markup.")] = DocFormat.RST,
) -> None:
    """Print the dataflow checklist of the configured flows."""
    typer.echo(
        render_checklist(DEFAULT_DATAFLOW, generated=datetime.now(UTC), markup=fmt.value), nl=False
    )


# -- plan and sync ---------------------------------------------------------------------------


def _new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@app.command()
def plan(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Read everything, not changes.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show base and both sides per field.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Dry run: read both systems and print what a sync would do; nothing is written."""
    obj = _app(ctx)
    run_id = _new_run_id()
    bind_run(run_id)
    with failing_cleanly():
        settings = obj.settings()
        poweroffice, zendesk = obj.systems()
        store = obj.store()
        with ProgressObserver.for_stderr(enabled=not as_json) as observer:
            report = plan_run(
                poweroffice,
                zendesk,
                store,
                policy=settings.policy,
                full=full,
                run_id=run_id,
                observer=observer,
            )
    if as_json:
        emit_json(report_json(report, dry_run=True))
        return
    render_plan(report, explain=explain)
    stdout_console().print(summary_table(report, "Plan"))


def _one_sync(obj: AppContext, full: bool, as_json: bool, compact: bool, stop: SignalStop) -> int:
    run_id = _new_run_id()
    bind_run(run_id)
    settings = obj.settings()
    poweroffice, zendesk = obj.systems()
    store = obj.store()
    log.info("sync.start", full=full)
    with ProgressObserver.for_stderr(enabled=not as_json) as observer:
        report = run_sync(
            poweroffice,
            zendesk,
            store,
            policy=settings.policy,
            full=full,
            run_id=run_id,
            observer=observer,
            should_stop=stop.should_stop,
        )
    log.info("sync.done", applied=len(report.applied), failed=len(report.failures))
    _render_sync(report, as_json, compact)
    if report.interrupted:
        typer.echo(
            f"interrupted: {len(report.applied)} of {report.planned_writes} writes applied,"
            " state saved",
            err=True,
        )
        return stop.exit_code
    return FAILURES if report.failures else OK


def _render_sync(report: RunReport, as_json: bool, compact: bool) -> None:
    if as_json:
        if compact:
            import json

            typer.echo(
                json.dumps(report_json(report, dry_run=False), ensure_ascii=False, default=str)
            )
        else:
            emit_json(report_json(report, dry_run=False))
        return
    for item in report.plan.reports():
        for line in item_lines(item):
            typer.echo(line)
    render_failures(report)
    stdout_console().print(summary_table(report, f"Sync {report.run_id}"))


@app.command()
def sync(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Force a full reconcile.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Run on a schedule (e.g. 5m) until interrupted."),
    ] = None,
) -> None:
    """Sync both systems. Ctrl-C (or SIGTERM) sends nothing new, waits for the writes in
    flight, saves the state and exits 130 (143); a second Ctrl-C exits at once.

    Exit codes: 0 all applied; 1 some records failed (listed); 2 usage or configuration
    error; 3 a system could not be reached; 4 another run holds the state.
    """
    obj = _app(ctx)
    with failing_cleanly():
        interval: timedelta | None = parse_duration(every, what="--every") if every else None
        obj.settings()
    stop = SignalStop()
    wait = obj.wait or stop.event.wait
    code = OK
    with stop, failing_cleanly():
        while True:
            if interval is None:
                code = _one_sync(obj, full, as_json, False, stop)
                break
            try:
                code = _one_sync(obj, full, as_json, as_json, stop)
            except (SystemUnavailable, AlreadyRunning) as exc:
                # On a schedule one bad run is not the end: say so and try again next time.
                code = UNAVAILABLE if isinstance(exc, SystemUnavailable) else BUSY
                typer.echo(f"error: {exc}", err=True)
            full = False
            if stop.requested:
                break
            if wait(interval.total_seconds()) or stop.requested:
                if stop.requested:
                    typer.echo("interrupted between runs: nothing in flight, state saved", err=True)
                break
    raise typer.Exit(stop.exit_code if stop.requested else code)


# -- status and the queues -------------------------------------------------------------------


def _load(obj: AppContext) -> tuple[StateStore, SyncState]:
    store = obj.store()
    return store, store.load_state()


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Last runs, links per flow, waiting conflicts and ambiguities, cursor ages."""
    with failing_cleanly():
        store, state = _load(_app(ctx))
        runs = recent_runs(store, 5)
    now = datetime.now(UTC)
    data = status_data(state, runs, DEFAULT_DATAFLOW.ids, now) | decisions.status_extra(state)
    if as_json:
        emit_json(data)
    else:
        render_status(data, now)
        decisions.render_status_extra(data)


# -- sandbox and demo ------------------------------------------------------------------------


@sandbox_app.command("serve")
def sandbox_serve(
    size: Annotated[int, typer.Option("--size", help="Customers to generate.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the generated data.")] = 1,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="PowerOffice port (Zendesk takes the next; 0: any).")
    ] = 0,
    zendesk_rate_limit: Annotated[
        int | None, typer.Option("--zendesk-rate-limit", help="Requests per minute.")
    ] = None,
) -> None:
    """Serve both sandboxes until Ctrl-C, printing `export NAME=value` lines to use them."""
    from adapters.sandbox.server import serve_forever

    serve_forever(size, seed, host=host, port=port, zendesk_rate_limit=zendesk_rate_limit)
    typer.echo("sandbox stopped", err=True)


@app.command()
def demo(
    ctx: typer.Context,
    size: Annotated[int, typer.Option("--size", help="Records per kind to seed.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the data.")] = 1,
) -> None:
    """Run a sync against seeded local sandboxes and show what happened."""
    demo_module.demo(_app(ctx).state_path, size, seed)


if __name__ == "__main__":  # pragma: no cover
    app()
