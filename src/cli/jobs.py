"""The tasks of ``talksync worker`` (``cli.worker``): tenants' syncs on procrastinate.

Two tasks, kept by procrastinate in the same database as the state:

- ``defer_due`` runs every few seconds on one worker (a procrastinate periodic task): it claims
  the tenants that are due (``TenantRegistry.claim_due``), defers one ``sync_tenant`` job for
  each with a little jitter, and puts back the jobs of workers that died (stalled: no heartbeat
  for ``STALLED_AFTER`` seconds).
- ``sync_tenant`` runs one tenant's sync with its settings (``cli.tenants.tenant_settings``).
  Its job carries the tenant as procrastinate ``lock`` (jobs of one tenant run one after
  another) and ``queueing_lock`` (at most one waits in the queue), and the run itself holds
  the state store's per-tenant advisory lock, which a CLI run of the same tenant takes too: a
  tenant never runs twice at once. A failing tenant records its outcome and backs off
  (``adapters.tenants.next_due``); the job itself succeeds, so no failure blocks another
  tenant or fills the queue with retries.

``defer_sync`` is the outside trigger: it defers one tenant's sync now, ahead of its schedule
(a webhook, or a person). SIGTERM or Ctrl-C stops a worker gracefully: it takes no new job, and
a running sync sends nothing new, waits for its batch in flight and saves its state.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import structlog
from procrastinate import JobContext
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager

from adapters.postgres import (
    LOCK_SPACE,
    MIGRATION_LOCK,
    PostgresStateStore,
    connect,
    describe,
    migrate,
)
from adapters.staterows import StateFileError
from adapters.tenant_registry import TenantRegistry
from adapters.tenants import TenantError
from cli.config import ConfigError, Settings
from cli.wiring import RealWiring, settings_of_tenant
from talkcore.engine import RunOptions, run_sync
from talkcore.ports import AlreadyRunning, SystemUnavailable

TICK_CRON = "* * * * * */5"
"""How often ``defer_due`` looks for due tenants: every 5 seconds (the 6th field is seconds)."""
STALLED_AFTER = 30.0
"""Seconds without a heartbeat after which a worker counts as dead and its jobs run again (a
worker beats every third of that)."""
MAX_JITTER = 30.0
"""At most this many seconds (and a tenth of its cadence) of random delay per deferred sync,
so tenants added together do not stay in step."""

log = structlog.get_logger()
tasks = procrastinate.App(connector=procrastinate.PsycopgConnector())
"""talksync's tasks; ``queue_app`` points them at a database (the URL is known at run time)."""


@contextmanager
def queue_app(url: str) -> Iterator[procrastinate.App]:
    """The procrastinate app with talksync's tasks on the database at ``url``."""
    with tasks.replace_connector(procrastinate.PsycopgConnector(conninfo=url)) as app:
        yield app


def ensure_schema(url: str, where: str) -> None:
    """talksync's tables (migrated) and procrastinate's (created once), under one advisory
    lock so workers starting together do it once."""
    with connect(url) as db:
        migrate(db, where)
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))
            row = db.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
            if not row or not row[0]:
                db.execute(SchemaManager.get_schema().encode())


def jitter(cadence: timedelta) -> float:
    """Seconds to delay one deferred sync (see ``MAX_JITTER``)."""
    return random.uniform(0.0, min(MAX_JITTER, cadence.total_seconds() / 10))


def _tenant_lock(name: str) -> str:
    return f"talksync-tenant:{name}"


def _sync_job(tenant: str, delay: float) -> Any:
    return sync_tenant.configure(
        lock=_tenant_lock(tenant),
        queueing_lock=_tenant_lock(tenant),
        schedule_in={"milliseconds": round(delay * 1000)},
    )


def defer_sync(url: str, tenant: str, *, delay: float = 0.0) -> bool:
    """Defer one sync of ``tenant`` now (``delay`` seconds from now), ahead of its schedule;
    ``False`` when one is already waiting in the queue (it will do). The outside trigger: a
    webhook or a person calls this; any running worker picks the job up."""
    ensure_schema(url, describe(url))  # the queue may not exist yet when no worker ran
    with queue_app(url) as app, app.open():
        try:
            _sync_job(tenant, delay).defer(tenant=tenant)
        except AlreadyEnqueued:
            return False
        return True


async def _defer_sync_async(tenant: str, delay: float) -> bool:
    try:
        await _sync_job(tenant, delay).defer_async(tenant=tenant)
    except AlreadyEnqueued:
        return False
    return True


@tasks.periodic(cron=TICK_CRON)
@tasks.task(name="defer_due", pass_context=True, queueing_lock="talksync-defer-due")
async def defer_due(context: JobContext, timestamp: int) -> int:
    """Defer a sync of every due tenant and put back the jobs of dead workers."""
    import asyncio

    url: str = context.additional_context["url"]

    def claim() -> list[tuple[str, timedelta]]:
        with TenantRegistry(url) as registry:
            return [(t.name, t.cadence) for t in registry.claim_due(datetime.now(UTC))]

    deferred = 0
    for name, cadence in await asyncio.to_thread(claim):
        deferred += await _defer_sync_async(name, jitter(cadence))
    await _recover_stalled(context.app, context.additional_context["stalled_after"])
    return deferred


async def _recover_stalled(app: procrastinate.App, stalled_after: float) -> None:
    """Put back the jobs of workers that stopped beating (killed, or their machine lost):
    the tenant's sync runs again on a live worker (the journal makes a run cut short safe to
    run again). When a newer job of the same tenant already waits, that one will do."""
    manager = app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        log.warning("worker.stalled_job", job=job.id, task=job.task_name, kwargs=job.task_kwargs)
        try:
            await manager.retry_job(job)
        except ConnectorException:  # the queueing lock: another job of it waits already
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)


@tasks.task(name="sync_tenant", pass_context=True)
def sync_tenant(context: JobContext, tenant: str) -> str:
    """Sync one tenant; the outcome is recorded on the tenant and returned."""
    extra = context.additional_context
    return run_tenant(extra["url"], tenant, extra["base"], extra["env"], context.should_abort)


def run_tenant(
    url: str,
    name: str,
    base: Settings,
    env: Mapping[str, str],
    should_stop: Callable[[], bool],
) -> str:
    """One run of tenant ``name``: its outcome (``adapters.tenants.OUTCOMES``) is recorded on
    the tenant, which schedules the next; nothing raised here stops the worker. A tenant
    removed or paused since its job was deferred is left alone."""
    run_id = uuid.uuid4().hex[:12]
    bound = log.bind(tenant=name, run_id=run_id)
    with TenantRegistry(url) as registry:
        try:
            tenant = registry.get(name)
        except TenantError:
            bound.info("worker.tenant_gone")
            return "removed"
        if tenant.paused:
            return "paused"
        registry.run_started(name, datetime.now(UTC))
        with ExitStack() as stack:
            outcome = _sync_one(url, name, base, env, should_stop, run_id, bound, stack)
        registry.run_finished(name, outcome, datetime.now(UTC))
        return outcome


def _sync_one(
    url: str,
    name: str,
    base: Settings,
    env: Mapping[str, str],
    should_stop: Callable[[], bool],
    run_id: str,
    bound: Any,
    stack: ExitStack,
) -> str:
    from cli.main import credentials_to_fix

    try:
        settings = settings_of_tenant(base, name, env)
        poweroffice, zendesk = RealWiring().systems(settings, stack)
        store = stack.enter_context(PostgresStateStore(url, name))
        bound.info("worker.sync_start")
        report = run_sync(
            poweroffice,
            zendesk,
            store,
            RunOptions(policy=settings.policy, run_id=run_id, should_stop=should_stop),
        )
    except AlreadyRunning as exc:
        bound.info("worker.busy", message=str(exc))
        return "busy"
    except SystemUnavailable as exc:
        credentials = credentials_to_fix(exc, env) is not None
        bound.warning("worker.unavailable", message=str(exc), credentials=credentials)
        return "credentials" if credentials else "unavailable"
    except (TenantError, ConfigError, StateFileError) as exc:
        bound.error("worker.setup_error", message=str(exc))
        return "error"
    except Exception as exc:  # one tenant's bug must not end the worker or block the others
        bound.exception("worker.sync_error", message=str(exc))
        return "error"
    outcome = "interrupted" if report.interrupted else "failures" if report.failures else "ok"
    bound.info(
        "worker.sync_done",
        outcome=outcome,
        applied=len(report.applied),
        failed=len(report.failures),
    )
    return outcome


class _ToStructlog(logging.Handler):
    """procrastinate logs through the standard library; its warnings and errors join talksync's
    own lines (JSON under --log-format json, secrets redacted) instead of a second format."""

    def emit(self, record: logging.LogRecord) -> None:
        log.log(
            record.levelno,
            "worker.procrastinate",
            logger=record.name,
            message=record.getMessage(),
            action=getattr(record, "action", None),
        )


def _forward_procrastinate_logs() -> None:
    logger = logging.getLogger("procrastinate")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    if not any(isinstance(h, _ToStructlog) for h in logger.handlers):
        logger.addHandler(_ToStructlog())


def serve(
    url: str,
    base: Settings,
    env: Mapping[str, str],
    name: str,
    concurrency: int,
    stalled_after: float = STALLED_AFTER,
) -> None:
    """Run a worker on the database at ``url`` until SIGTERM or Ctrl-C. ``stalled_after``:
    seconds without a heartbeat after which a worker counts as dead (its lease)."""
    ensure_schema(url, base.state_location)
    _forward_procrastinate_logs()
    context = {"url": url, "base": base, "env": dict(env), "stalled_after": stalled_after}
    with queue_app(url) as app:
        app.run_worker(
            name=name,
            concurrency=concurrency,
            additional_context=context,
            update_heartbeat_interval=stalled_after / 3,
            # SIGTERM: no new job; running syncs are asked to stop at once (should_abort) and
            # stop the way the CLI does: nothing new sent, the batch in flight waited for,
            # state saved; the worker then ends.
            shutdown_graceful_timeout=0,
            stalled_worker_timeout=stalled_after,
            delete_jobs="successful",
        )
