"""Bulk jobs: wait for a ``job_status`` to finish and line its results up with what was sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import structlog

from adapters.zendesk.errors import ZendeskError
from adapters.zendesk.transport import Reply, ZendeskHttp
from adapters.zendesk.wire import JobResultDTO, JobStatusDTO, member, structure

log = structlog.get_logger()

FINISHED = frozenset({"completed", "failed", "killed"})
SUCCEEDED = frozenset({"created", "updated", "deleted", "success"})


class JobUnfinished(ZendeskError):
    """A job was still running after the bounded number of polls."""


@attrs.define
class JobWaiter:
    """Polls ``/job_statuses/{id}`` with back-off (the sleep is injected)."""

    http: ZendeskHttp
    sleep: Callable[[float], None]
    polls: int = 30
    first_delay: float = 1.0
    max_delay: float = 10.0

    def wait(self, reply: Reply, *, poll_first: bool = False) -> JobStatusDTO:
        """The finished job the bulk call in ``reply`` started.

        ``poll_first`` asks before the first sleep: for a job queued while others were awaited,
        it has likely finished already.
        """
        job = structure(member(reply.body, "job_status"), JobStatusDTO)
        delay = self.first_delay
        for poll in range(self.polls):
            if job.status in FINISHED:
                return job
            if not (poll_first and poll == 0):
                self.sleep(delay)
                delay = min(self.max_delay, delay * 2)
            body = self.http.get(f"/api/v2/job_statuses/{job.id}.json").body
            job = structure(member(body, "job_status"), JobStatusDTO)
        if job.status in FINISHED:
            return job
        raise JobUnfinished(
            f"Zendesk job {job.id} was still {job.status} after {self.polls} polls",
            code="job_unfinished",
        )


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
        if result.index is not None and 0 <= result.index < count:
            slot = result.index
        elif result.id is not None and str(result.id) in by_id:
            slot = by_id[str(result.id)]
        else:
            slot = position
        if 0 <= slot < count and placed[slot] is None:
            placed[slot] = result
    return placed


def succeeded(result: JobResultDTO) -> bool:
    """Whether one job item was applied."""
    if result.error:
        return False
    if result.status:
        return result.status.lower() in SUCCEEDED
    return bool(result.success)
