"""Bulk jobs: poll many at once, and line a finished job's results up with what was sent.

Zendesk answers a bulk call with a ``job_status`` to poll. The writer keeps several jobs in
flight and asks after all of them in one ``GET /job_statuses/show_many?ids=`` (up to 100 ids),
so a large write costs one poll per round, not one per job. What a job's results mean for each
write is decided by pure functions (``line_up``, ``succeeded`` and the writer's ``*_results``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import attrs
import structlog

from adapters.zendesk.errors import ZendeskError
from adapters.zendesk.transport import ZendeskHttp
from adapters.zendesk.wire import JobResultDTO, JobStatusDTO, WireError, items, member, structure

log = structlog.get_logger()

FINISHED = frozenset({"completed", "failed", "killed"})
SUCCEEDED = frozenset({"created", "updated", "deleted", "success"})
BULK_SIZE = 100
"""Zendesk's limit of records (or ids) in one bulk call, and of job ids in one poll."""
STOP_SLICE = 0.25
"""Longest sleep between two looks at the stop check while waiting on jobs (seconds)."""

T = TypeVar("T")


def chunks(values: Sequence[T], size: int = BULK_SIZE) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size`` (Zendesk's bulk limit)."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


class JobUnfinished(ZendeskError):
    """A job was still running after the bounded number of polls."""


def job_of(body: Any) -> JobStatusDTO:
    """The ``job_status`` a bulk call answered (raises ``WireError`` if there is none)."""
    return structure(member(body, "job_status"), JobStatusDTO)


def finished(job: JobStatusDTO) -> bool:
    """Whether the job has stopped running (its results, if any, are final)."""
    return job.status in FINISHED


@attrs.define
class JobPoller:
    """Polls jobs in batches and paces the polls with back-off (the sleep is injected).

    ``polls`` bounds how often one job is asked after; ``pause`` sleeps in slices of at most
    ``STOP_SLICE`` so that a stop request is noticed within a fraction of a second.
    """

    http: ZendeskHttp
    sleep: Callable[[float], None]
    polls: int = 30
    first_delay: float = 1.0
    max_delay: float = 10.0

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatusDTO]:
        """The current status of the jobs ``ids``, by id (a job Zendesk did not list is left
        out: it is asked after again, within the bound)."""
        out: dict[str, JobStatusDTO] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            body = self.http.get("/api/v2/job_statuses/show_many.json", {"ids": ",".join(chunk)})
            for raw in items(body.body, "job_statuses"):
                try:
                    job = structure(raw, JobStatusDTO)
                except WireError as exc:
                    log.warning("zendesk.job.unreadable", error=str(exc))
                    continue
                out[job.id] = job
        return out

    def next_delay(self, delay: float | None) -> float:
        """The pause before the next poll: ``first_delay`` after none (or after a job
        finished), else the last one doubled, up to ``max_delay``."""
        if delay is None:
            return self.first_delay
        return min(self.max_delay, delay * 2)

    def pause(self, seconds: float, should_stop: Callable[[], bool]) -> bool:
        """Sleep ``seconds``, looking at ``should_stop`` in between; False if it answered True."""
        left = seconds
        while left > 0:
            if should_stop():
                return False
            step = min(left, STOP_SLICE)
            self.sleep(step)
            left -= step
        return not should_stop()


def line_up(
    job: JobStatusDTO, count: int, ids: Sequence[str | None] = ()
) -> list[JobResultDTO | None]:
    """The job's result for each of the ``count`` items sent, in the order sent.

    A result is placed by its ``index`` when Zendesk gives one, else by the record ``id`` (for
    updates, whose ids we know), else by its position in the list.
    """
    placed: list[JobResultDTO | None] = [None] * count
    by_id = {rid: i for i, rid in enumerate(ids) if rid is not None}
    for position, result in enumerate(job.results or []):
        slot = _slot(result, position, by_id, count)
        if 0 <= slot < count and placed[slot] is None:
            placed[slot] = result
    return placed


def _slot(result: JobResultDTO, position: int, by_id: dict[str, int], count: int) -> int:
    if result.index is not None and 0 <= result.index < count:
        return result.index
    if result.id is not None and str(result.id) in by_id:
        return by_id[str(result.id)]
    return position


def succeeded(result: JobResultDTO) -> bool:
    """Whether one job item was applied."""
    if result.error:
        return False
    if result.status:
        return result.status.lower() in SUCCEEDED
    return bool(result.success)
