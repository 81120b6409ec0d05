"""What a Zendesk bulk job's results mean for each write: the writer's pure functions, and its
job loop driven by scripted calls (no HTTP)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.zendesk.errors import ZendeskError
from adapters.zendesk.jobs import JobPoller, line_up
from adapters.zendesk.wire import JobResultDTO, JobStatusDTO
from adapters.zendesk.writing import (
    JOB_WINDOW,
    Chunk,
    Step,
    _Calls,
    _JobLoop,
    created_results,
    deleted_results,
    reconciled,
    updated_results,
)
from talkcore.ports import ApplyHooks, WriteOp, WriteRequest, WriteResult
from talkcore.records import Kind, Record, RecordKey

ORG = Kind.ORGANIZATION


def create(n: int, name: str = "") -> WriteRequest:
    return WriteRequest(
        f"c{n}",
        WriteOp.CREATE,
        ORG,
        None,
        {"name": name or f"Org {n}"},
        f"poweroffice:customer:{n}",
    )


def update(n: int, **fields: str) -> WriteRequest:
    return WriteRequest(f"u{n}", WriteOp.UPDATE, ORG, str(n), fields or {"name": f"Org {n}"})


def job(*results: JobResultDTO, status: str = "completed") -> JobStatusDTO:
    return JobStatusDTO("J", status, results=list(results))


def test_a_created_record_is_derived_from_the_job_result_and_what_was_sent() -> None:
    writes = [create(1, "  Acme AS "), create(2), create(3)]
    done = job(
        JobResultDTO(status="Created", id=601, index=0),
        JobResultDTO(status="Failed", index=1, error="DuplicateValue", details="Name: taken"),
    )
    results, unknown = created_results(ORG, writes, done)
    first = results["c1"].record
    assert first is not None
    assert first.key == RecordKey.of(ORG, 601)
    assert first.fields == {"name": "Acme AS", "external_id": "poweroffice:customer:1"}
    assert first.modified is None
    error = results["c2"].error
    assert error is not None and (error.code, error.field) == ("duplicate_value", "name")
    assert unknown == [writes[2]]  # the job said nothing of it: looked up by origin key


def test_an_update_without_a_result_in_a_failed_job_is_a_retryable_failure() -> None:
    writes = [update(1), update(2)]
    stored = {"1": Record(RecordKey.of(ORG, 1), {"name": "Org 1"})}
    done = job(JobResultDTO(status="Updated", id=1), status="failed")
    results = updated_results(ORG, writes, done, stored)
    assert results["u1"].record == stored["1"]
    error = results["u2"].error
    assert error is not None and error.code == "job_failed" and error.retryable


def test_a_delete_is_done_when_gone_and_failed_only_when_still_there() -> None:
    writes = [WriteRequest(f"d{n}", WriteOp.DELETE, ORG, str(n)) for n in (1, 2, 3, 4)]
    done = job(
        JobResultDTO(status="Deleted", id=1),
        JobResultDTO(status="Failed", id=2, error="RecordNotFound"),
    )
    lined = line_up(done, 4, [w.id for w in writes])
    results = deleted_results(ORG, writes, done, lined, present={"4"})
    assert [results[f"d{n}"].ok for n in (1, 2, 3, 4)] == [True, True, True, False]


@given(
    found=st.sets(st.integers(0, 5)),
    rounds=st.integers(0, 2),
)
def test_reconciling_settles_what_is_found_and_sends_the_rest_again_while_rounds_last(
    found: set[int], rounds: int
) -> None:
    writes = tuple(create(n) for n in range(6))
    records = {
        f"poweroffice:customer:{n}": Record(RecordKey.of(ORG, 700 + n), {"name": f"Org {n}"})
        for n in found
    }
    step = reconciled(ORG, Chunk(writes, rounds), records, ZendeskError("lost", code="x"))
    again = [w for chunk in step.again for w in chunk.writes]
    # Every write is settled or sent again, never both, and never again without a round left.
    assert set(step.results) | {w.item_id for w in again} == {w.item_id for w in writes}
    assert not set(step.results) & {w.item_id for w in again}
    assert all(chunk.rounds == rounds - 1 >= 0 for chunk in step.again)
    for write in writes:
        n = int(write.item_id[1:])
        result = step.results.get(write.item_id)
        if n in found:
            assert result is not None and result.ok
        elif rounds == 0:
            assert result is not None and result.error is not None
            assert result.error.code == "in_doubt"


# -- the loop, with scripted calls ----------------------------------------------------------


class Jobs(JobPoller):
    """A poller whose jobs finish after ``rounds`` polls; it never sleeps."""

    def __init__(self, rounds: int) -> None:
        super().__init__(http=None, sleep=lambda _: None)  # type: ignore[arg-type]
        self.rounds = rounds
        self.polled: list[list[str]] = []

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatusDTO]:
        self.polled.append(list(ids))
        status = "completed" if len(self.polled) >= self.rounds else "working"
        return {i: JobStatusDTO(i, status) for i in ids}


def _calls(started: list[Chunk]) -> _Calls:
    def start(kind: Kind, chunk: Chunk) -> Step:
        started.append(chunk)
        return Step(job=JobStatusDTO(f"J{len(started)}", "queued"))

    def finish(kind: Kind, chunk: Chunk, done: JobStatusDTO) -> Step:
        return Step({w.item_id: WriteResult(w.item_id) for w in chunk.writes})

    def lost(kind: Kind, chunk: Chunk, cause: ZendeskError) -> Step:
        raise AssertionError("no job is lost here")

    return _Calls(start, finish, lost)


def test_the_loop_keeps_a_window_of_jobs_and_polls_them_in_one_call() -> None:
    started: list[Chunk] = []
    jobs = Jobs(rounds=2)
    chunks = deque(Chunk((create(n),)) for n in range(JOB_WINDOW + 3))
    settled: list[int] = []
    out = _JobLoop(ORG, _calls(started), jobs, ApplyHooks(settled=settled.append), chunks).run()
    assert len(out) == JOB_WINDOW + 3
    # The window's jobs finish on the second poll; the three sent after them on the next.
    assert [len(ids) for ids in jobs.polled] == [JOB_WINDOW, JOB_WINDOW, 3]
    assert sum(settled) == JOB_WINDOW + 3


@pytest.mark.parametrize("stop_after_polls", [0, 1])
def test_a_stop_sends_nothing_more_and_leaves_unfinished_jobs_in_doubt(
    stop_after_polls: int,
) -> None:
    started: list[Chunk] = []
    jobs = Jobs(rounds=100)
    chunks = deque(Chunk((create(n),)) for n in range(JOB_WINDOW + 3))
    hooks = ApplyHooks(should_stop=lambda: len(jobs.polled) > stop_after_polls)
    out = _JobLoop(ORG, _calls(started), jobs, hooks, chunks).run()
    assert len(started) == JOB_WINDOW  # the queued chunks were never sent: no result
    assert set(out) == {w.item_id for chunk in started for w in chunk.writes}
    assert all(r.error is not None and r.error.code == "in_doubt" for r in out.values())
    # The polls until the stop was asked (the first comes before it), one last look, no more.
    assert len(jobs.polled) == stop_after_polls + 2
