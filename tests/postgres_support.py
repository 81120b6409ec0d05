"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary directory, serve on a
loopback port, hand out one fresh database per test, stop and delete everything at the end.

The binaries are found on ``PATH``, then through ``pg_config --bindir``, then in Debian's layout
(``/usr/lib/postgresql/<major>/bin``, newest first). PostgreSQL refuses to run as root, so when
the tests run as root (CI does) the server runs as the ``postgres`` user, or ``nobody``.
``TALKSYNC_TEST_DATABASE_URL`` points the tests at an existing server instead (each test still
gets a database of its own, so the role needs ``CREATEDB``).

Nothing here skips: a server that cannot be started is an error with the reason, so a machine
without PostgreSQL fails the PostgreSQL tests loudly instead of passing them by leaving them out.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import psycopg

EXISTING_SERVER = "TALKSYNC_TEST_DATABASE_URL"
STARTUP_SECONDS = 60.0
"""How long a starting server may take before the tests give up (not a test assertion)."""

_PR_SET_PDEATHSIG = 1


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be started or reached; the message says why and what to do."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        majors = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(majors, key=lambda p: -int(p.name))]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, postgres) on PATH, via pg_config or in"
        " /usr/lib/postgresql/*/bin: install PostgreSQL (Debian: apt-get install postgresql)"
        f" or set {EXISTING_SERVER} to a server where the tests may create databases"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or ``None`` to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' account to drop to")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child


def _die_with_parent() -> None:
    # If the test process dies without stopping the server, the kernel stops it (fast shutdown).
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGINT)


@attrs.define
class PostgresServer:
    """A reachable server and a way to make a fresh, empty database on it."""

    url: str
    """The maintenance database's URL (a superuser or a role with ``CREATEDB``)."""
    _names: Iterator[int] = attrs.field(factory=itertools.count)

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return urlsplit(self.url)._replace(path=f"/{name}").geturl()

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``fresh_database`` (its connections are ended first)."""
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise PostgresUnavailable(
                f"PostgreSQL exited with {process.returncode} while starting:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(
                    f"PostgreSQL did not accept connections within {STARTUP_SECONDS:.0f} s:\n"
                    + log.read_text(errors="replace")[-3000:]
                ) from None
            time.sleep(0.05)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A server for this test session: an existing one, or a new one started here."""
    existing = os.environ.get(EXISTING_SERVER)
    if existing:
        yield PostgresServer(existing)
        return
    bindir = find_bindir()
    user = _server_user()
    ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="talksync-pg-"))
    data, log = root / "data", root / "server.log"
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        initdb = subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(data), "-U", "talksync", "-A", "trust"),
                *("-E", "UTF8", "--no-sync", "--locale=C.UTF-8"),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
            **ids,  # type: ignore[arg-type]
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        port = _free_port()
        # A test server: durability off (a crash loses only a throwaway cluster), no socket file
        # outside the temporary directory, a small footprint on a machine shared with others.
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), *options],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                preexec_fn=_die_with_parent,
                **ids,  # type: ignore[arg-type]
            )
        try:
            url = f"postgresql://talksync@127.0.0.1:{port}/postgres"
            _wait_ready(url, process, log)
            yield PostgresServer(url)
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown: end sessions, stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
