"""``talksync worker``: sync the tenants of a PostgreSQL database as they fall due.

The tasks live in ``cli.jobs`` (procrastinate, imported only when a worker starts, so the
other commands start as fast as before).
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import structlog
import typer

from cli.config import ConfigError
from cli.helptext import examples
from cli.wiring import AppContext

log = structlog.get_logger()


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Tenants this worker syncs at once.")
    ] = 1,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=1.0,
            metavar="SECONDS",
            help="A worker silent this long counts as dead; its tenants run again elsewhere.",
        ),
    ] = 30.0,
) -> None:
    """Sync the tenants of the PostgreSQL database as they fall due, until SIGTERM or Ctrl-C.

    Start as many workers as you like, on any machines that reach the database: they share
    the queue, and one tenant never runs twice at once.
    """
    from cli.main import failing_cleanly

    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    with failing_cleanly(obj.env):
        settings = obj.settings()
        url = settings.database_url
        if not url:
            raise ConfigError(
                "the worker runs the tenants of a PostgreSQL database: set TALKSYNC_DATABASE_URL"
            )
        from cli import jobs

        name = f"talksync {os.getpid()}@{socket.gethostname()}"
        log.info("worker.start", name=name, concurrency=concurrency)
        jobs.serve(url, settings, obj.env, name, concurrency, stalled_after)
    log.info("worker.stop", name=name)


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to ``app``."""
    app.command(
        "worker",
        epilog=examples(
            "talksync worker",
            "talksync --log-format json worker --concurrency 4",
        ),
    )(worker)
