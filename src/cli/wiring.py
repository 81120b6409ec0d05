"""The one place settings become concrete adapters.

Commands ask an ``AppContext`` for systems and a store; the context asks its ``Wiring``. The
real wiring builds the PowerOffice and Zendesk ports over httpx and the SQLite store; tests give
the context a wiring of in-memory fakes instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import attrs

from cli.config import ConfigError, Settings, load_settings
from talkcore.ports import StateStore, SystemPort


class Wiring(Protocol):
    """Builds what a command runs against."""

    def systems(self, settings: Settings, stack: ExitStack) -> tuple[SystemPort, SystemPort]:
        """The PowerOffice and Zendesk ports; resources to close go on ``stack``."""
        ...

    def store(self, settings: Settings, stack: ExitStack) -> StateStore:
        """The state store; resources to close go on ``stack``."""
        ...


@attrs.define
class RealWiring:
    """PowerOffice Go and Zendesk over HTTPS, state in SQLite.

    ``sleep`` is how the adapters wait (rate limits, retries, job polling); tests shorten it.
    """

    sleep: Callable[[float], None] = time.sleep

    def systems(self, settings: Settings, stack: ExitStack) -> tuple[SystemPort, SystemPort]:
        """Both ports, or ConfigError listing every setting still missing."""
        missing = settings.missing()
        if missing:
            raise ConfigError("\n".join(missing))
        # Imported here so commands that need no system (status, links, init) start fast.
        import httpx

        from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort, make_http_client
        from adapters.zendesk import ZendeskAuth, ZendeskPort, make_client

        po, zd = settings.poweroffice, settings.zendesk
        # missing() was empty, so every value used below is set; "" only satisfies the types.
        # One timeout for both when the user set one; each adapter's own default otherwise.
        timeout = (
            None
            if settings.http_timeout is None
            else httpx.Timeout(settings.http_timeout, connect=min(10.0, settings.http_timeout))
        )
        po_client = stack.enter_context(make_http_client(timeout))
        poweroffice = PowerOfficePort(
            po_client,
            po.base_url,
            po.token_url,
            PowerOfficeCredentials(
                po.application_key or "", po.client_key or "", po.subscription_key or ""
            ),
            sleep=self.sleep,
        )
        if zd.oauth_token:
            auth = ZendeskAuth.oauth(zd.oauth_token)
        else:
            auth = ZendeskAuth.api_token(zd.email or "", zd.api_token or "")
        zendesk = ZendeskPort(
            stack.enter_context(make_client(timeout=timeout) if timeout else make_client()),
            zd.base_url or "",
            auth,
            rate_limit_per_minute=zd.rate_limit_per_minute,
            sleep=self.sleep,
        )
        return poweroffice, zendesk

    def store(self, settings: Settings, stack: ExitStack) -> StateStore:
        """The SQLite store at the configured path."""
        from adapters.sqlite import SqliteStateStore

        return stack.enter_context(SqliteStateStore(settings.state_path))


@attrs.define
class AppContext:
    """What every command shares: global options, the environment, the wiring.

    ``wait(seconds)`` sleeps between scheduled runs and returns ``True`` when the schedule must
    stop (the CLI sets ``stop_requested`` on Ctrl-C); tests replace it to run without waiting.
    """

    wiring: Wiring = attrs.field(factory=RealWiring)
    env: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))
    wait: Callable[[float], bool] | None = None
    config_path: Path | None = None
    state_path: Path | None = None
    verbose: bool = False
    log_format: str | None = None
    stack: ExitStack = attrs.field(factory=ExitStack)
    stop_requested: bool = False
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """The settings, loaded once (ConfigError when they cannot be)."""
        if self._settings is None:
            self._settings = load_settings(self.config_path, self.env, state_path=self.state_path)
        return self._settings

    def systems(self) -> tuple[SystemPort, SystemPort]:
        """The PowerOffice and Zendesk ports."""
        return self.wiring.systems(self.settings(), self.stack)

    def store(self) -> StateStore:
        """The state store."""
        return self.wiring.store(self.settings(), self.stack)


def recent_runs(store: StateStore, limit: int = 10) -> list[Mapping[str, Any]]:
    """The last ``limit`` run reports, newest first (the run log is not part of the port)."""
    reader = getattr(store, "recent_runs", None)
    if callable(reader):
        runs: list[Mapping[str, Any]] = reader(limit)
        return runs
    kept = getattr(store, "runs", [])
    return list(reversed(kept))[:limit]
