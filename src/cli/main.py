"""The ``talksync`` command: thin Typer wrappers that parse, call the engine, and render.

The exit codes are ``EXIT_CODES`` below, listed once in ``talksync --help`` and the README.
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import attrs
import structlog
import typer
from typer._click.exceptions import ClickException
from typer.core import TyperOption

from adapters.sqlite import StateFileError
from cli import decisions, tenants, worker
from cli import demo as demo_module
from cli.config import (
    DEFAULT_CONFIG_PATH,
    SETTING,
    ConfigError,
    config_template,
    parse_duration,
)
from cli.helptext import AsJson, FullRead, OnlyFlow, WholeRead, examples
from cli.logs import bind_run, configure_logging, tell
from cli.output import (
    Names,
    ProgressObserver,
    emit_json,
    item_lines,
    pending_changes,
    plan_items,
    render_failures,
    render_plan,
    render_status,
    report_json,
    status_data,
    stdout_console,
    summary_table,
)
from cli.stopping import SignalStop
from cli.wiring import AppContext, NoState, database_secrets, lock_holder
from talkcore.dataflow import DEFAULT_DATAFLOW, checklist_data, render_checklist
from talkcore.engine import RunOptions, RunReport, plan_run, run_sync
from talkcore.ports import AlreadyRunning, StateStore, SystemUnavailable
from talkcore.records import System
from talkcore.state import SyncState

OK, FAILURES, USAGE, UNAVAILABLE, BUSY, CREDENTIALS = 0, 1, 2, 3, 4, 5
INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (OK, "done: everything applied, or nothing to do"),
    (FAILURES, "some records failed (they are listed)"),
    (USAGE, "usage, configuration or setup error (e.g. no state yet)"),
    (UNAVAILABLE, "a system could not be reached"),
    (BUSY, "another run holds the state file"),
    (CREDENTIALS, "a system refused the credentials (the message names the variable)"),
    (INTERRUPTED, "interrupted by Ctrl-C (143 for SIGTERM)"),
)
"""Every exit code and its meaning: the one table, in ``--help`` and (tested) in the README."""


def _exit_codes_epilog() -> str:
    # "\b" keeps click from rewrapping the table into one paragraph.
    rows = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    return (
        f"\b\nExit codes:\n{rows}\n"
        "  plan --detailed-exitcode: 0 nothing to do, 2 changes pending, 1 any error"
    )


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    # Typer prints "<bool>" beside every on/off flag; a flag takes no value, so show none.
    return None if self.is_flag or self.count else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


app = typer.Typer(
    name="talksync",
    help="Keep PowerOffice Go and Zendesk Support in sync, both ways.",
    epilog=examples(
        "talksync init               # write talksync.toml, list the variables to set",
        "talksync check              # can both systems be reached with these keys?",
        "talksync plan --from-empty  # what would the first sync do? (writes nothing)",
        "talksync sync --every 15m   # keep them in sync",
    )
    + "\n\n"
    + _exit_codes_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sandbox_app = typer.Typer(help="Local stand-ins for both APIs.", no_args_is_help=True)
decisions.register(app)  # links, conflicts, ambiguities, decisions
tenants.register(app)  # tenants add|list|show|remove|pause|resume
worker.register(app)  # worker
app.add_typer(sandbox_app, name="sandbox")

log = structlog.get_logger()


class LogFormat(StrEnum):
    """How log lines look."""

    CONSOLE = "console"
    JSON = "json"


class DocFormat(StrEnum):
    """Markup of the dataflow checklist."""

    RST = "rst"
    MARKDOWN = "markdown"
    JSON = "json"


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
    tell(message, exit_code=code)
    return typer.Exit(code)


def _var(key: str) -> str:
    """The environment variable of the setting ``key`` (``"zendesk.api_token"``)."""
    return SETTING[key].env


def credentials_to_fix(exc: BaseException, env: Any = None) -> str | None:
    """The variables to fix when ``exc`` is a system refusing our credentials, else ``None``."""
    from adapters.poweroffice.errors import PowerOfficeAuthError
    from adapters.zendesk.errors import ZendeskAccessDenied, ZendeskUnauthorized

    app, client, sub = (
        _var(f"poweroffice.{k}") for k in ("application_key", "client_key", "subscription_key")
    )
    if isinstance(exc, PowerOfficeAuthError):
        text = str(exc)
        if "subscription key" in text:
            return sub
        if "application key or client key" in text:
            return f"{app} and {client}"
        if "client key" in text:
            return client
        return f"{app}, {client} and {sub}"
    # A Zendesk user without the role a sync needs is fixed like refused credentials: by
    # using another user's (an admin's) token.
    if isinstance(exc, ZendeskUnauthorized | ZendeskAccessDenied):
        if env is not None and env.get(_var("zendesk.oauth_token")):
            return _var("zendesk.oauth_token")
        return f"{_var('zendesk.api_token')} and {_var('zendesk.email')}"
    return None


def unavailable(exc: SystemUnavailable, env: Any = None) -> tuple[str, int]:
    """The message and exit code for a system that stopped the run."""
    fix = credentials_to_fix(exc, env)
    if fix is not None:
        return f"{exc}\n  fix: check {fix} (or its *_file setting)", CREDENTIALS
    return f"could not reach a system: {exc}", UNAVAILABLE


@contextmanager
def failing_cleanly(env: Any = None) -> Iterator[None]:
    """Turn the errors a person can act on into a message on stderr and an exit code."""
    try:
        yield
    except (ConfigError, StateFileError, NoState) as exc:
        raise fail(str(exc), USAGE) from None
    except AlreadyRunning as exc:
        raise fail(str(exc), BUSY) from None
    except SystemUnavailable as exc:
        message, code = unavailable(exc, env)
        raise fail(message, code) from None


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
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            metavar="NAME",
            help="With TALKSYNC_DATABASE_URL: act as this tenant (talksync tenants list).",
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="More log lines: -v adds info on a terminal, -vv adds debug.",
        ),
    ] = 0,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="stderr as console lines or pure JSON lines (default: console on a terminal,"
            " json otherwise).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Keep PowerOffice Go and Zendesk Support in sync, both ways."""
    if ctx.obj is None:
        ctx.obj = AppContext()
    obj: AppContext = ctx.obj
    obj.config_path, obj.verbose = config, verbose > 0
    obj.state_path = state or obj.state_path
    obj.tenant = tenant or obj.tenant
    obj.log_format = log_format.value if log_format else None
    ctx.call_on_close(obj.stack.close)
    secrets: list[str | None] = []
    try:
        settings = obj.settings()
        po, zd = settings.poweroffice, settings.zendesk
        secrets = [po.application_key, po.client_key, po.subscription_key]
        secrets += [zd.api_token, zd.oauth_token, *database_secrets(settings.database_url)]
    except ConfigError:
        pass  # reported by the command that needs the settings (init needs none)
    configure_logging(verbosity=verbose, log_format=obj.log_format, secrets=secrets)


# -- init, check, dataflow -------------------------------------------------------------------


def unset_variables(env: Any) -> list[str]:
    """The required variables ``env`` does not set yet, one line each (alternatives joined)."""
    lines = [
        _var(key)
        for key in (
            "poweroffice.application_key",
            "poweroffice.client_key",
            "poweroffice.subscription_key",
        )
        if not env.get(_var(key))
    ]
    subdomain, base_url = _var("zendesk.subdomain"), _var("zendesk.base_url")
    if not (env.get(subdomain) or env.get(base_url)):
        lines.append(f"{subdomain} (or {base_url})")
    if not env.get(_var("zendesk.oauth_token")):
        token = [_var(k) for k in ("zendesk.email", "zendesk.api_token") if not env.get(_var(k))]
        if token:
            lines.append(" and ".join(token) + f", or {_var('zendesk.oauth_token')}")
    return lines


@app.command(epilog=examples("talksync init", "talksync --config ops/talksync.toml init --force"))
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented talksync.toml with every setting at its default."""
    path = _app(ctx).config_path or DEFAULT_CONFIG_PATH
    if path.exists() and not force:
        raise fail(f"{path} exists; use --force to overwrite it", USAGE)
    path.write_text(config_template(), encoding="utf-8")
    env = _app(ctx).env
    unset = unset_variables(env)
    if not unset:
        typer.echo(f"Wrote {path}. Every required variable is set; next: talksync check")
        return
    typer.echo(f"Wrote {path}. Set these environment variables (or the *_file settings):")
    for line in unset:
        typer.echo(f"  {line}")
    typer.echo("then: talksync check")


@app.command(epilog=examples("talksync check", "talksync check && talksync plan --from-empty"))
def check(ctx: typer.Context) -> None:
    """Check the credentials and reachability of both systems (exit 5: credentials refused)."""
    obj = _app(ctx)
    with failing_cleanly(obj.env):
        poweroffice, zendesk = obj.systems()
    codes = []
    for port in (poweroffice, zendesk):
        try:
            typer.echo(f"ok: {port.check()}")
        except Exception as exc:  # one line each; the adapters' messages hold no secrets
            fix = credentials_to_fix(exc, obj.env)
            codes.append(UNAVAILABLE if fix is None else CREDENTIALS)
            hint = "" if fix is None else f" (fix: check {fix})"
            tell(f"{port.system}: {exc}{hint}", exit_code=codes[-1])
    if codes:
        # Credentials first: it is the one the person can fix right away.
        raise typer.Exit(CREDENTIALS if CREDENTIALS in codes else UNAVAILABLE)


@app.command(
    epilog=examples(
        "talksync dataflow                  # Markdown on a terminal",
        "talksync dataflow --format json | jq '.[].id'",
        "talksync dataflow --format rst > dataflow.rst   # the commissioned layout",
    )
)
def dataflow(
    fmt: Annotated[
        DocFormat | None,
        typer.Option(
            "--format",
            help="markdown (default on a terminal), json, or rst: the commissioned checklist"
            " (default otherwise).",
        ),
    ] = None,
) -> None:
    """Print the dataflow checklist of the configured flows, with their flow ids."""
    if fmt is None:
        fmt = DocFormat.MARKDOWN if sys.stdout.isatty() else DocFormat.RST
    if fmt is DocFormat.JSON:
        emit_json(checklist_data(DEFAULT_DATAFLOW))
        return
    # Only the commissioned rst states when it was made; the people's views stay byte-identical.
    generated = datetime.now(UTC) if fmt is DocFormat.RST else None
    typer.echo(render_checklist(DEFAULT_DATAFLOW, generated=generated, markup=fmt.value), nl=False)


# -- plan and sync ---------------------------------------------------------------------------


def _new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@app.command(
    epilog=examples(
        "talksync plan",
        "talksync plan --from-empty   # before the first sync: preview it",
        "talksync plan --flow contact-persons-users --explain",
        "talksync plan --summary",
        "talksync plan --detailed-exitcode; echo $?   # 0 nothing, 2 changes, 1 error",
        "talksync plan --json | jq '.summary'",
    )
)
def plan(
    ctx: typer.Context,
    full: FullRead = False,
    whole: WholeRead = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show base and both sides per field.")
    ] = False,
    as_json: AsJson = False,
    flow: OnlyFlow = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print only the counts per flow and kind.")
    ] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 0 when there is nothing to do, 2 when changes are pending, 1 on any"
            " error (as terraform plan).",
        ),
    ] = False,
    from_empty: Annotated[
        bool,
        typer.Option(
            "--from-empty",
            help="With no state yet, preview what the first sync would do instead of refusing.",
        ),
    ] = False,
) -> None:
    """Dry run: read both systems and print what a sync would do; nothing is written.

    Creates no file and takes no lock. With no state it refuses (exit 2) unless --from-empty
    asks for a preview of the first sync.
    """
    if flow is not None:
        _check_flow(flow)
    try:
        report, names = _plan(_app(ctx), _scope(full, whole), as_json, from_empty)
    except typer.Exit as exc:
        # terraform's convention: with the flag, 2 means "changes", so every error is 1.
        raise typer.Exit(
            FAILURES if detailed_exitcode and exc.exit_code else exc.exit_code
        ) from None
    if as_json:
        emit_json(report_json(report, flow))
    else:
        if not summary:
            render_plan(report, explain=explain, flow=flow, names=names)
        stdout_console().print(summary_table(report, "Plan", flow=flow))
    if detailed_exitcode and pending_changes(plan_items(report, flow)):
        raise typer.Exit(USAGE)  # 2: changes pending


def _scope(full: bool, whole: bool) -> RunOptions:
    """What ``--full`` and ``--whole`` ask of a run (``--whole`` is a full run planned over
    both whole mirrors); the rest of the options are filled in per run."""
    return RunOptions(full=full or whole, whole_mirrors=whole)


def _plan(
    obj: AppContext, scope: RunOptions, as_json: bool, from_empty: bool
) -> tuple[RunReport, Names]:
    run_id = _new_run_id()
    bind_run(run_id)
    with failing_cleanly(obj.env):
        settings = obj.settings()
        try:
            store = obj.store(read_only=True)
        except NoState:
            # A plan against no state would show every record as new, which reads like a fault
            # to someone who expected a state here; the preview is asked for by name.
            if not from_empty:
                raise
            from adapters.memory import MemoryStateStore

            tell(
                f"no state at {settings.state_location} yet: this is what the first sync would do",
                level="warning",
            )
            store = MemoryStateStore()
        poweroffice, zendesk = obj.systems()
        with ProgressObserver.for_stderr(enabled=not as_json) as observer:
            report = plan_run(
                poweroffice,
                zendesk,
                store,
                attrs.evolve(scope, policy=settings.policy, run_id=run_id, observer=observer),
            )
        # The last sync's mirrors name the records a person knows; new ones carry their fields.
        names = Names({system: store.load_mirror(system) for system in System})
    return report, names


def _one_sync(
    obj: AppContext,
    scope: RunOptions,
    as_json: bool,
    compact: bool,
    stop: SignalStop,
    seen: set[str] | None = None,
) -> int:
    run_id = _new_run_id()
    bind_run(run_id)
    settings = obj.settings()
    poweroffice, zendesk = obj.systems()
    store = obj.store()
    log.info("sync.start", full=scope.full, whole=scope.whole_mirrors)
    with ProgressObserver.for_stderr(enabled=not as_json) as observer:
        report = run_sync(
            poweroffice,
            zendesk,
            store,
            attrs.evolve(
                scope,
                policy=settings.policy,
                run_id=run_id,
                observer=observer,
                should_stop=stop.should_stop,
            ),
        )
    log.info("sync.done", applied=len(report.applied), failed=len(report.failures))
    # On a terminal, what changed by name (from the mirrors just saved); logs get counts only.
    names = (
        Names({system: store.load_mirror(system) for system in System})
        if sys.stdout.isatty() and not as_json
        else None
    )
    _render_sync(report, as_json, compact, seen, names)
    if report.interrupted:
        tell(
            f"interrupted: {len(report.applied)} of {report.planned_writes} writes applied,"
            " state saved",
            level="info",
        )
        return stop.exit_code
    return FAILURES if report.failures else OK


def _render_sync(
    report: RunReport,
    as_json: bool,
    compact: bool,
    seen: set[str] | None = None,
    names: Names | None = None,
) -> None:
    """Print a run: JSON, or every item (``seen``: on a schedule, the ids of the unresolved
    items printed by earlier runs, which are counted instead of repeated) and the counts."""
    if as_json:
        if compact:
            import json

            typer.echo(json.dumps(report_json(report), ensure_ascii=False, default=str))
        else:
            emit_json(report_json(report))
        return
    if names is not None:
        applied = {result.item_id for result in report.applied}
        for item in report.plan:
            if item.id in applied:
                for line in item_lines(item):
                    typer.echo(names.annotate(line))
    repeated = 0
    for item in report.plan.reports():
        if seen is not None:
            if item.id in seen:
                repeated += 1
                continue
            seen.add(item.id)
        for line in item_lines(item):
            typer.echo(line)
    if repeated:
        typer.echo(
            f"{repeated} unresolved item(s) unchanged since the last run (see talksync"
            " conflicts, talksync ambiguities)"
        )
    render_failures(report)
    stdout_console().print(summary_table(report, f"Sync {report.run_id}"))


@app.command(
    epilog=examples(
        "talksync sync",
        "talksync sync --full --json > run.json",
        "talksync sync --whole   # a full reconcile planned over every record",
        "talksync --log-format json sync --every 15m 2>> talksync.log",
    )
)
def sync(
    ctx: typer.Context,
    full: FullRead = False,
    whole: WholeRead = False,
    as_json: AsJson = False,
    every: Annotated[
        str | None,
        typer.Option(
            "--every", metavar="DURATION", help="Run on a schedule (e.g. 5m) until interrupted."
        ),
    ] = None,
) -> None:
    """Sync both systems: read, plan, write, save the state (exit codes: talksync --help)."""
    obj = _app(ctx)
    with failing_cleanly():
        interval: timedelta | None = parse_duration(every, what="--every") if every else None
        obj.settings()
    stop = SignalStop()
    wait = obj.wait or stop.event.wait
    code = OK
    seen: set[str] = set()
    scope = _scope(full, whole)
    with stop, failing_cleanly(obj.env):
        while True:
            if interval is None:
                code = _one_sync(obj, scope, as_json, False, stop)
                break
            if not as_json:
                typer.echo(f"-- {_stamp(datetime.now(UTC))}: sync starts")
            try:
                code = _one_sync(obj, scope, as_json, as_json, stop, seen=seen)
            except (SystemUnavailable, AlreadyRunning) as exc:
                # On a schedule one bad run is not the end: say so and try again next time.
                if isinstance(exc, SystemUnavailable):
                    message, code = unavailable(exc, obj.env)
                else:
                    message, code = str(exc), BUSY
                tell(message, exit_code=code)
            scope = RunOptions()  # later runs on the schedule read changes
            if stop.requested:
                break
            if not as_json:
                typer.echo(f"-- next run at {_stamp(datetime.now(UTC) + interval)}")
            if wait(interval.total_seconds()) or stop.requested:
                if stop.requested:
                    tell("interrupted between runs: nothing in flight, state saved", level="info")
                break
    raise typer.Exit(stop.exit_code if stop.requested else code)


# -- status and the queues -------------------------------------------------------------------


def _check_flow(flow: str) -> None:
    if flow not in DEFAULT_DATAFLOW.ids:
        raise fail(f"no flow {flow!r}; flows are: {', '.join(DEFAULT_DATAFLOW.ids)}", USAGE)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _load(obj: AppContext) -> tuple[StateStore, SyncState]:
    # Only the listings and status load this way: they look, so nothing is created.
    store = obj.store(read_only=True)
    return store, store.load_state()


@app.command(epilog=examples("talksync status", "talksync status --json | jq .running"))
def status(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """Last runs, a run in progress, links, waiting conflicts and ambiguities, cursor ages.

    Needs a state (run talksync sync first); creates no file and takes no lock.
    """
    obj = _app(ctx)
    with failing_cleanly():
        store, state = _load(obj)
        runs = store.recent_runs(5)
        holder = lock_holder(obj.settings().state_path, store)
    now = datetime.now(UTC)
    data = status_data(state, runs, DEFAULT_DATAFLOW.ids, now) | decisions.status_extra(state)
    data["running"] = (
        None if holder is None else {"pid": holder.pid, "since": holder.since.isoformat()}
    )
    if as_json:
        emit_json(data)
    else:
        render_status(data, now)
        decisions.render_status_extra(data)


SIZE_HELP = "Customers to generate (about three contact persons per company)."
SEED_HELP = "Seed for the generated data (the same seed, the same data)."
DEFAULT_SIZE = 50
"""One word and one default for ``sandbox serve --size`` and ``demo --size``."""


@sandbox_app.command(
    "serve",
    epilog=examples(
        "talksync sandbox serve --size 1500 --port 8700",
        "talksync sandbox serve   # then paste the printed export lines in another shell",
    ),
)
def sandbox_serve(
    size: Annotated[int, typer.Option("--size", help=SIZE_HELP)] = DEFAULT_SIZE,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 1,
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
    tell("sandbox stopped", level="info")


@app.command(epilog=examples("talksync demo", "talksync demo --size 500 --seed 7"))
def demo(
    ctx: typer.Context,
    size: Annotated[int, typer.Option("--size", help=SIZE_HELP)] = DEFAULT_SIZE,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 1,
) -> None:
    """Run a sync against seeded local sandboxes and show what happened."""
    demo_module.demo(_app(ctx).state_path, size, seed)


def _stderr_is_json(argv: list[str]) -> bool:
    """Whether this run's stderr will be JSON lines, read off the arguments before parsing."""
    for i, arg in enumerate(argv):
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1] == LogFormat.JSON
        if arg == "--log-format" and i + 1 < len(argv):
            return argv[i + 1] == LogFormat.JSON
    return not sys.stderr.isatty()


def run(argv: list[str] | None = None) -> None:
    """The ``talksync`` command: ``app``, with a usage error told like every other error, so
    stderr stays JSON lines under ``--log-format json`` (and in a pipe)."""
    args = sys.argv[1:] if argv is None else argv
    # A sync allocates millions of small, acyclic objects (records, plan items, JSON); with the
    # default gen-0 threshold of 700 the cyclic collector runs through them thousands of times
    # (a third of a 70,000-record plan's time). Collected still, but 70 times less often.
    gc.set_threshold(50_000, 20, 100)
    if not _stderr_is_json(args):
        app(args=args, prog_name="talksync")
        return
    try:
        code = app(args=args, prog_name="talksync", standalone_mode=False)
    except ClickException as exc:
        configure_logging(log_format=LogFormat.JSON)
        tell(exc.format_message(), exit_code=exc.exit_code)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        configure_logging(log_format=LogFormat.JSON)
        tell("aborted", exit_code=1)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    run()
