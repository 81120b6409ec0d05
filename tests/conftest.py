"""Hypothesis profiles: reproducible in CI, exploring on request.

- ``ci`` (the default): derandomized, so a given commit draws the same examples on every
  machine and a red run always means a real regression, never an unlucky seed.
- ``explore`` (``make explore``, or ``HYPOTHESIS_PROFILE=explore pytest tests/unit``): random
  seeds and many more examples, to find what ``ci`` does not draw. Every failure it finds goes
  back beside its property as an explicit ``@example``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres_support import PostgresServer, postgres_server

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=int(os.environ.get("TALKSYNC_EXPLORE_EXAMPLES", "2000")),
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- PostgreSQL: one throwaway server per test session, one fresh database per test ----------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use; see ``tests/postgres_support``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of an empty database of this test's own, dropped afterwards (a second or so:
    for tests about the whole database; most tests share ``shared_database`` instead)."""
    url = postgres.fresh_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(scope="session")
def shared_database(postgres: PostgresServer) -> str:
    """One database for the session; tests keep apart in it by tenant (``tenant_name``)."""
    return postgres.fresh_database("shared")


@pytest.fixture
def tenant_name(request: pytest.FixtureRequest) -> str:
    """A tenant name no other test uses."""
    return f"{request.node.nodeid}#{next(_TENANTS)}"


_TENANTS = itertools.count()
