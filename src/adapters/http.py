"""What both vendor adapters' HTTP layers share: the answer type, the in-doubt error and the
client factory, so one job has one name on either side."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx


@attrs.frozen
class Reply:
    """A final answer: status, parsed JSON body (``None`` when empty), headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


class InDoubt(Exception):
    """A call that changes data failed in transit: it may or may not have been applied.

    It is never re-sent blindly; the caller reconciles by origin key instead. Each adapter
    raises its own subclass, so its error hierarchy still holds it.
    """


def make_client(timeout: httpx.Timeout) -> httpx.Client:
    """An ``httpx.Client`` fit for a vendor API: TLS verified, ``timeout`` set, redirects not
    followed (credentials go only to the configured host)."""
    return httpx.Client(verify=True, timeout=timeout, follow_redirects=False)


def utc_now() -> datetime:
    """Both ports' default clock: aware UTC wall time (``now`` in their constructors)."""
    return datetime.now(UTC)
