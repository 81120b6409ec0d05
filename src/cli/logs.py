"""structlog, configured once for the CLI: console lines on a terminal, JSON lines otherwise.

Every line goes to stderr (stdout is for data). Two processors guard what leaves: secrets (the
configured values, and any field whose name says it holds one) are blanked at every level, and
e-mail addresses are masked at info level and above (debug keeps them for troubleshooting).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

_EMAIL = re.compile(r"[^@\s<>\"'(),;:\[\]]+@[^@\s<>\"'(),;:\[\]]+\.[A-Za-z]{2,}")
_SECRET_NAME = re.compile(r"token|secret|password|authorization|api_?key|client_?key", re.I)
REDACTED = "[redacted]"


def mask_email(text: str) -> str:
    """``text`` with e-mail addresses reduced to their domain (``…@example.no``)."""
    return _EMAIL.sub(lambda m: "…@" + m.group(0).rsplit("@", 1)[1], text)


class Redactor:
    """A structlog processor that blanks secrets and masks e-mails in every event."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is blanked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, value: Any, mask: bool) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return mask_email(value) if mask else value
        if isinstance(value, dict):
            return {k: self._clean(v, mask) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v, mask) for v in value]
        return value

    def __call__(
        self, logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        mask = method != "debug"
        for key, value in list(event.items()):
            if _SECRET_NAME.search(key) and value is not None:
                event[key] = REDACTED
            else:
                event[key] = self._clean(value, mask)
        return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing.

    While rich shows progress bars it swaps ``sys.stderr`` for a proxy that prints above the
    bars; a logger holding the original stream would glue its lines onto a bar instead.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_json_lines = False


def json_lines() -> bool:
    """Whether stderr is JSON lines (``--log-format json``, or not a terminal)."""
    return _json_lines


def tell(message: str, *, level: str = "error", **data: Any) -> None:
    """A message for the person on stderr: ``error: message`` on a console, a JSON log line
    (event ``cli.<level>``) under ``--log-format json``, so stderr stays parseable."""
    if _json_lines:
        getattr(structlog.get_logger(), level)(f"cli.{level}", message=message, **data)
    else:
        # An info line (a listing's count) is read as it is; errors and warnings say so.
        prefix = "" if level == "info" else f"{level}: "
        sys.stderr.write(f"{prefix}{message}\n")


def log_level(verbosity: int, *, console_on_terminal: bool) -> int:
    """The lowest level shown: a person at a terminal sees warnings (``-v`` info, ``-vv``
    debug); a log collector gets info (``-v`` debug)."""
    if console_on_terminal:
        return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG
    return logging.DEBUG if verbosity else logging.INFO


def configure_logging(
    *,
    verbose: bool = False,
    verbosity: int = 0,
    log_format: str | None = None,
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for this process (``log_format`` ``console``/``json``, else by TTY).

    ``verbosity`` is how many ``-v`` were given (``verbose`` is one ``-v`` more); see
    ``log_level``.
    """
    out: Any = stream or _CurrentStderr()
    if log_format is None:
        log_format = "console" if out.isatty() else "json"
    global _json_lines
    _json_lines = log_format == "json"
    level = log_level(
        verbosity + (2 if verbose else 0),
        console_on_terminal=log_format == "console" and out.isatty(),
    )
    renderer: Any
    if log_format == "json":
        # ensure_ascii off: names like "Tromsø" stay readable (and greppable) in the log.
        renderer = structlog.processors.JSONRenderer(sort_keys=True, ensure_ascii=False)
    else:
        # plain_traceback: the default rich traceback prints locals, and locals can hold secrets.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if log_format == "json" else _keep,
            Redactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _keep(logger: object, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event


def bind_run(run_id: str) -> None:
    """Put ``run_id`` on every log line from here on (until the next run binds its own)."""
    structlog.contextvars.bind_contextvars(run_id=run_id)
