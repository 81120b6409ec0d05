"""The one place settings become concrete adapters.

Commands ask an ``AppContext`` for systems and a store; the context asks its ``Wiring``. The
real wiring builds the PowerOffice and Zendesk ports over httpx and the state store (SQLite, or
PostgreSQL when ``TALKSYNC_DATABASE_URL`` is set); tests give
the context a wiring of in-memory fakes instead.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import attrs

from cli.config import ConfigError, Settings, load_settings
from talkcore.engine import RunReport
from talkcore.ports import StateStore, SystemPort, SystemUnavailable, WriteRequest, WriteResult
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import SyncState

if TYPE_CHECKING:
    from adapters.poweroffice.limiter import Limiter


class NoState(Exception):
    """A read-only command found no state file; the message says how to make one."""


class HostNotFound(SystemUnavailable):
    """A configured host name does not resolve; retrying would not help."""


class Wiring(Protocol):
    """Builds what a command runs against."""

    def systems(self, settings: Settings, stack: ExitStack) -> tuple[SystemPort, SystemPort]:
        """The PowerOffice and Zendesk ports; resources to close go on ``stack``."""
        ...

    def store(self, settings: Settings, stack: ExitStack) -> StateStore:
        """The state store; resources to close go on ``stack``.

        A wiring may also have ``read_only_store(settings, stack)`` for the commands that only
        look (status, plan, the listings): it must create no state file and no lock file, and
        raise ``NoState`` when there is no state yet. Without it they get ``store`` wrapped in
        ``ReadOnlyStore``.
        """
        ...


def open_store(settings: Settings, stack: ExitStack, *, read_only: bool = False) -> StateStore:
    """The configured store: PostgreSQL when ``TALKSYNC_DATABASE_URL`` is set, else the SQLite
    file; see ``Wiring.store`` for ``read_only``."""
    if settings.database_url:
        return open_postgres(
            settings.database_url, stack, tenant=settings.tenant, read_only=read_only
        )
    return open_sqlite(settings, stack, read_only=read_only)


def open_postgres(
    url: str, stack: ExitStack, *, tenant: str | None = None, read_only: bool = False
) -> StateStore:
    """The PostgreSQL store of ``tenant`` (default: the single-company tenant); read-only opens
    migrate nothing and create no tenant (``NoState`` when there is nothing yet)."""
    from adapters.postgres import DEFAULT_TENANT, NothingStored, PostgresStateStore

    try:
        store = stack.enter_context(
            PostgresStateStore(url, tenant or DEFAULT_TENANT, create=not read_only)
        )
    except NothingStored as exc:
        raise NoState(f"{exc}: run `talksync sync` first") from None
    return ReadOnlyStore(store) if read_only else store


def settings_of_tenant(base: Settings, tenant: str, env: Mapping[str, str]) -> Settings:
    """``base`` (the deployment's settings) as tenant ``tenant`` of the database runs it;
    ConfigError naming the tenant when it cannot be (no database, no such tenant, a secret
    its reference does not find)."""
    from adapters.tenant_registry import TenantRegistry
    from adapters.tenants import TenantError
    from cli.tenants import tenant_settings

    if not base.database_url:
        raise ConfigError("--tenant needs the PostgreSQL store: set TALKSYNC_DATABASE_URL")
    try:
        with TenantRegistry(base.database_url, create=False) as registry:
            found = registry.get(tenant)
        return attrs.evolve(tenant_settings(base, found, env), tenant=tenant)
    except TenantError as exc:
        raise ConfigError(str(exc)) from None


def database_secrets(url: str | None) -> list[str]:
    """What of a database URL must never be logged: its password, if it carries one (the rest
    names the server, which messages show as ``describe`` gives it)."""
    password = urlsplit(url).password if url else None
    return [password] if password else []


def open_sqlite(settings: Settings, stack: ExitStack, *, read_only: bool = False) -> StateStore:
    """The SQLite store at the configured path; see ``Wiring.store`` for ``read_only``."""
    from adapters.sqlite import SqliteStateStore

    if read_only and not settings.state_path.exists():
        raise NoState(f"no state at {settings.state_path}: run `talksync sync` first")
    store = stack.enter_context(SqliteStateStore(settings.state_path))
    return ReadOnlyStore(store) if read_only else store


@attrs.define
class ReadOnlyStore:
    """A store that can be read but not written or locked (plan, status, the listings).

    ``lock`` does nothing, so a dry run creates no lock file and never waits for a running
    sync (SQLite's WAL mode gives the reader a consistent snapshot); writing is a bug.
    """

    inner: StateStore

    def lock(self) -> AbstractContextManager[None]:
        """No lock: nothing will be written."""
        return _no_lock()

    def load_state(self) -> SyncState:
        """The saved state."""
        return self.inner.load_state()

    def load_mirror(self, system: System) -> Snapshot:
        """The saved mirror of ``system``."""
        return self.inner.load_mirror(system)

    def open_intents(self) -> list[WriteRequest]:
        """Journaled writes not yet closed."""
        return self.inner.open_intents()

    def records(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, Record]:
        """The mirrored records of ``keys``."""
        return self.inner.records(keys)

    def mirror_ids(self, kind: Kind) -> Iterator[str]:
        """The ids of the mirrored records of ``kind``."""
        return self.inner.mirror_ids(kind)

    def save(self, state: SyncState, mirrors: Sequence[Snapshot]) -> None:
        """Refused: a read-only command saves nothing."""
        raise AssertionError("a read-only command tried to save the state")

    def journal_intents(self, run_id: str, writes: Sequence[WriteRequest]) -> None:
        """Refused: a read-only command journals nothing."""
        raise AssertionError("a read-only command tried to journal writes")

    def journal_results(self, run_id: str, results: Sequence[WriteResult]) -> None:
        """Refused: a read-only command journals nothing."""
        raise AssertionError("a read-only command tried to journal results")

    def close_intents(self, item_ids: Sequence[str]) -> None:
        """Refused: a read-only command journals nothing."""
        raise AssertionError("a read-only command tried to close intents")

    def record_run(self, report: RunReport) -> None:
        """Refused: a dry run is not recorded."""
        raise AssertionError("a read-only command tried to record a run")

    def recent_runs(self, limit: int = 10) -> Sequence[Mapping[str, Any]]:
        """The run log, read from the store underneath."""
        return self.inner.recent_runs(limit)

    def __getattr__(self, name: str) -> Any:
        # Optional reads the port does not name (find_records) pass through.
        if name.startswith(("save", "journal", "record_", "close")):
            raise AttributeError(name)
        return getattr(self.inner, name)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


@attrs.frozen
class LockHolder:
    """The run that holds the state file's lock: its process id and since when."""

    pid: int | None
    since: datetime


def lock_holder(state_path: Path, store: StateStore | None = None) -> LockHolder | None:
    """Who holds the run lock on ``state_path``, or on ``store`` when it can say itself (the
    PostgreSQL store); ``None`` when no run does.

    Reads the ``<state>.lock`` sidecar the SQLite store writes its pid into, without creating
    it: a shared lock that cannot be had means a run holds it; the file's mtime is when it
    took it (the holder truncates and writes its pid on taking the lock).
    """
    holder = getattr(store, "run_holder", None)
    if callable(holder):
        found: tuple[int | None, datetime] | None = holder()
        return None if found is None else LockHolder(*found)
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            since = datetime.fromtimestamp(os.fstat(fd).st_mtime, UTC)
            return LockHolder(int(text) if text.isdigit() else None, since)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_hosts(settings: Settings) -> None:
    """Fail at once, naming the setting, when a configured host name does not resolve.

    The adapters retry transport errors with back-off (right for a dropped connection); a
    name that does not resolve will not start resolving in eleven seconds.
    """
    po, zd = settings.poweroffice, settings.zendesk
    for setting, url in (
        ("TALKSYNC_POWEROFFICE_BASE_URL (poweroffice.base_url)", po.base_url),
        ("TALKSYNC_POWEROFFICE_TOKEN_URL (poweroffice.token_url)", po.token_url),
        ("TALKSYNC_ZENDESK_SUBDOMAIN or TALKSYNC_ZENDESK_BASE_URL", zd.base_url),
    ):
        host = urlsplit(url or "").hostname
        if not host:
            continue
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            raise HostNotFound(
                f"host name {host} does not resolve ({exc.strerror}): check {setting}"
            ) from None


SHARED_POWEROFFICE_RATE = 9.5
"""Requests a second all processes sharing a PostgreSQL database book per subscription key.

Below PowerOffice's 10: slots exactly 0.1 s apart put 11 requests into one second as soon as one
of them leaves late (a thread woken late, a slow connection); at 9.5 a request must be more
than 50 ms late for that, and 95% of the budget is still used."""


def poweroffice_limiter(settings: Settings, key_id: str) -> Limiter | None:
    """With PostgreSQL, the budget every worker and CLI run shares through it; without, ``None``
    (the port then uses its process-wide limiter, enough for one company on one machine)."""
    if not settings.database_url:
        return None
    from adapters.postgres_budget import shared_budget

    return shared_budget(settings.database_url, key_id, SHARED_POWEROFFICE_RATE)


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
        check_hosts(settings)
        # Imported here so commands that need no system (status, links, init) start fast.
        import httpx

        from adapters import poweroffice as po_adapter
        from adapters import zendesk as zd_adapter
        from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort
        from adapters.zendesk import ZendeskAuth, ZendeskPort

        po, zd = settings.poweroffice, settings.zendesk
        # missing() was empty, so every value used below is set; "" only satisfies the types.
        # One timeout for both when the user set one; each adapter's own default otherwise.
        timeout = (
            None
            if settings.http_timeout is None
            else httpx.Timeout(settings.http_timeout, connect=min(10.0, settings.http_timeout))
        )
        po_client = stack.enter_context(po_adapter.make_client(timeout))
        creds = PowerOfficeCredentials(
            po.application_key or "", po.client_key or "", po.subscription_key or ""
        )
        poweroffice = PowerOfficePort(
            po_client,
            po.base_url,
            po.token_url,
            creds,
            sleep=self.sleep,
            limiter=poweroffice_limiter(settings, creds.limiter_id()),
        )
        if zd.oauth_token:
            auth = ZendeskAuth.oauth(zd.oauth_token)
        else:
            auth = ZendeskAuth.api_token(zd.email or "", zd.api_token or "")
        zendesk = ZendeskPort(
            stack.enter_context(zd_adapter.make_client(timeout)),
            zd.base_url or "",
            auth,
            rate_limit_per_minute=zd.rate_limit_per_minute,
            sleep=self.sleep,
            remove_old_emails=zd.remove_old_emails,
        )
        return poweroffice, zendesk

    def store(self, settings: Settings, stack: ExitStack) -> StateStore:
        """The configured store: PostgreSQL, or SQLite at the configured path."""
        return open_store(settings, stack)

    def read_only_store(self, settings: Settings, stack: ExitStack) -> StateStore:
        """The store for a command that only looks; ``NoState`` when there is none."""
        return open_store(settings, stack, read_only=True)


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
    tenant: str | None = None
    """``--tenant``: run as this tenant of the PostgreSQL database (its account, secrets,
    policies and state) instead of the single company the environment describes."""
    verbose: bool = False
    log_format: str | None = None
    stack: ExitStack = attrs.field(factory=ExitStack)
    stop_requested: bool = False
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """The settings, loaded once (ConfigError when they cannot be)."""
        if self._settings is None:
            settings = load_settings(self.config_path, self.env, state_path=self.state_path)
            if self.tenant is not None:
                settings = settings_of_tenant(settings, self.tenant, self.env)
            self._settings = settings
        return self._settings

    def systems(self) -> tuple[SystemPort, SystemPort]:
        """The PowerOffice and Zendesk ports."""
        return self.wiring.systems(self.settings(), self.stack)

    def store(self, *, read_only: bool = False) -> StateStore:
        """The state store (``read_only``: for commands that only look; see ``Wiring.store``)."""
        if not read_only:
            return self.wiring.store(self.settings(), self.stack)
        opener = getattr(self.wiring, "read_only_store", None)
        if callable(opener):
            store: StateStore = opener(self.settings(), self.stack)
            return store
        return ReadOnlyStore(self.wiring.store(self.settings(), self.stack))
