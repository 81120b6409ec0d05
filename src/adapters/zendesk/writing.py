"""Writing to Zendesk: bulk jobs where the API allows, single calls where it must.

Organizations are created with ``create_many`` carrying ``external_id`` = the write's origin key
and updated with ``update_many``; users are updated with ``update_many`` (falling back to single
calls, for the rest of the run, where a 403 says bulk import is off; any other 403 refuses that
kind's updates for the run, with one clear error), and their primary e-mail is changed through
identities. Deletes go by ``destroy_many``, 100 ids a job.

The writer is one bounded loop (``_JobLoop``) over a shell that only sends: it keeps up to
``JOB_WINDOW`` bulk jobs in flight, polls them together, and hands each finished job to pure
functions (``created_results``, ``updated_results``, ``deleted_results``) that decide what its
results mean for each write. Work that must be sent again (one by one, or the missing part of
a create that failed in transit) goes back into the loop's queue with one round fewer, so the
loop ends. Between calls, and while waiting on jobs, it asks the engine's stop check: once
asked to stop it sends nothing new, and a job whose end it has not seen is in doubt.

The order of writes (deletes and renames before creates) is the engine's (``send_stages``):
the writer sends the groups of one kind and operation in the order it is given them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog

from adapters.zendesk.errors import (
    ZendeskError,
    ZendeskForbidden,
    ZendeskInDoubt,
    ZendeskInvalid,
    describe,
    per_item,
)
from adapters.zendesk.jobs import (
    BULK_SIZE,
    JobPoller,
    JobUnfinished,
    chunks,
    finished,
    job_of,
    line_up,
    succeeded,
)
from adapters.zendesk.mapping import (
    ORIGIN_FIELD,
    WRITABLE,
    created_record,
    record_label,
    to_record,
    wire_fields,
    write_error,
)
from adapters.zendesk.transport import ZendeskHttp
from adapters.zendesk.user_changes import UserChanges
from adapters.zendesk.wire import JobResultDTO, JobStatusDTO, WireError, items, member
from talkcore.ports import (
    NO_HOOKS,
    ApplyHooks,
    WriteError,
    WriteOp,
    WriteRequest,
    WriteResult,
)
from talkcore.records import Kind, Record, RecordKey

log = structlog.get_logger()

RECONCILE_ROUNDS = 2
"""How often a create that failed in transit is reconciled and the missing part re-sent."""
JOB_WINDOW = 30
"""Bulk jobs in flight at once: as many as Zendesk queues per account (30; ``TooManyJobs``
beyond), so a large write waits out the fewest poll rounds (issue 13: 405 jobs in 14 rounds,
not 41). Another client's queued jobs only earn a ``TooManyJobs``, which the transport waits
out and resends (the job was not queued)."""
STORED_AS_SENT = frozenset({"organization_id"})
"""Fields Zendesk stores exactly as written (ids), so their updates need no read-back."""

_PLURAL = {Kind.USER: "users", Kind.ORGANIZATION: "organizations"}
_SINGULAR = {Kind.USER: "user", Kind.ORGANIZATION: "organization"}

__all__ = ["BULK_SIZE", "JOB_WINDOW", "ZendeskWriter", "chunks", "to_record"]


# -- what flows through the loop ------------------------------------------------------------


@attrs.frozen
class Chunk:
    """Writes sent together: one bulk call, or (``single``) one call per write.

    ``rounds`` is how often a create among them may still be sent again after it was lost in
    transit and not found by its origin key.
    """

    writes: tuple[WriteRequest, ...]
    rounds: int = RECONCILE_ROUNDS
    single: bool = False


@attrs.frozen
class Step:
    """What one call (or one finished job) settled: results, chunks to send again (each with
    fewer rounds or as single calls), and the job the call started, if it did."""

    results: Mapping[str, WriteResult] = attrs.field(factory=dict)
    again: tuple[Chunk, ...] = ()
    job: JobStatusDTO | None = None


@attrs.define
class _InFlight:
    """A bulk call whose job has not been seen to finish: its job as last seen, polls spent."""

    chunk: Chunk
    job: JobStatusDTO
    polls: int = 0


@attrs.frozen
class _Calls:
    """One operation as the loop drives it: ``start`` sends a chunk, ``finish`` reads a
    finished job, ``lost`` settles a job whose end could not be learnt."""

    start: Callable[[Kind, Chunk], Step]
    finish: Callable[[Kind, Chunk, JobStatusDTO], Step]
    lost: Callable[[Kind, Chunk, ZendeskError], Step]


# -- the loop -------------------------------------------------------------------------------


@attrs.define
class _JobLoop:
    """Sends the chunks of one kind and operation, up to ``JOB_WINDOW`` jobs in flight at once.

    Each turn fills the window, settles the jobs seen to finish, and otherwise sleeps (with
    back-off, looking at the stop check) and polls every job in flight in one call. It ends:
    a chunk is sent again only with fewer rounds or split into single calls, and each job is
    polled at most ``JobPoller.polls`` times.
    """

    kind: Kind
    calls: _Calls
    jobs: JobPoller
    hooks: ApplyHooks
    todo: deque[Chunk]
    flight: dict[str, _InFlight] = attrs.Factory(dict)
    out: dict[str, WriteResult] = attrs.Factory(dict)

    def run(self) -> dict[str, WriteResult]:
        delay: float | None = None
        while (self.todo or self.flight) and not self.hooks.should_stop():
            self._fill()
            if self._settle():
                delay = None  # a job finished: the others have had that time too
            elif self.flight:
                delay = self.jobs.next_delay(delay)
                if self.jobs.pause(delay, self.hooks.should_stop):
                    self._poll()
        if self.flight:
            self._stop()
        return self.out

    def _fill(self) -> None:
        while self.todo and len(self.flight) < JOB_WINDOW and not self.hooks.should_stop():
            chunk = self.todo.popleft()
            step = self.calls.start(self.kind, chunk)
            self._take(step)
            if step.job is not None:
                self.flight[step.job.id] = _InFlight(chunk, step.job)

    def _settle(self) -> bool:
        """Settle the jobs seen to finish (or polled too often); whether any was."""
        settled = False
        for job_id, sent in list(self.flight.items()):
            if finished(sent.job):
                step = self.calls.finish(self.kind, sent.chunk, sent.job)
            elif sent.polls >= self.jobs.polls:
                step = self.calls.lost(self.kind, sent.chunk, _unfinished(sent))
            else:
                continue
            del self.flight[job_id]
            self._take(step)
            settled = True
        return settled

    def _poll(self) -> None:
        """Ask after every job in flight at once."""
        try:
            seen = self.jobs.poll(list(self.flight))
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            for sent in self.flight.values():
                self._take(self.calls.lost(self.kind, sent.chunk, exc))
            self.flight.clear()
            return
        for job_id, sent in self.flight.items():
            sent.polls += 1
            sent.job = seen.get(job_id, sent.job)

    def _stop(self) -> None:
        """Asked to stop: one last look at the jobs in flight (a read; nothing new is sent),
        then what has not finished is in doubt. Writes still queued get no result."""
        try:
            self._poll()
        except ZendeskError as exc:
            # Only a courtesy: without it every job in flight is in doubt, which is safe.
            log.warning("zendesk.job.last_poll_failed", error=exc.message)
        self._settle()
        for sent in self.flight.values():
            self._take(Step({w.item_id: stopped_result(w, sent.job) for w in sent.chunk.writes}))
        self.flight.clear()

    def _take(self, step: Step) -> None:
        self.out.update(step.results)
        if step.results:
            self.hooks.settled(len(step.results))
        self.todo.extend(step.again)


def _unfinished(sent: _InFlight) -> JobUnfinished:
    return JobUnfinished(
        f"Zendesk job {sent.job.id} was still {sent.job.status} after {sent.polls} polls",
        code="job_unfinished",
    )


def _one_by_one(chunk: Chunk) -> Step:
    """``chunk`` again as one single-call chunk per write."""
    return Step(again=tuple(attrs.evolve(chunk, writes=(w,), single=True) for w in chunk.writes))


# -- the writer -----------------------------------------------------------------------------


class ZendeskWriter:
    """Applies write requests; remembers for the run whether bulk user calls are allowed and
    which kinds the token may not update at all."""

    def __init__(
        self,
        http: ZendeskHttp,
        *,
        sleep: Callable[[float], None],
        remove_old_emails: bool = False,
    ) -> None:
        self.http = http
        self.jobs = JobPoller(http, sleep)
        self.users = UserChanges(http, remove_old_emails=remove_old_emails)
        self.bulk_users = True
        self.refused: dict[Kind, ZendeskForbidden] = {}
        """Kinds whose updates Zendesk refused with a permission 403 in this run."""
        self._creates = _Calls(self._start_create, self._finish_create, self._lost_create)
        self._updates = _Calls(self._start_update, self._finish_update, self._lost_write)
        self._deletes = _Calls(self._start_delete, self._finish_delete, self._lost_write)

    # -- entry point ------------------------------------------------------------------------

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """One result per write sent, in the order given (see ``ApplyHooks`` for a stop)."""
        results: dict[str, WriteResult] = {}
        groups: dict[tuple[Kind, WriteOp], list[WriteRequest]] = {}
        for write in writes:
            problem = refusal(write)
            if problem is not None:
                results[write.item_id] = WriteResult(write.item_id, error=problem)
            else:
                groups.setdefault((write.kind, write.op), []).append(write)
        if results:
            hooks.settled(len(results))
        for (kind, op), group in groups.items():
            if hooks.should_stop():
                break
            results.update(self._write(kind, op, group, hooks))
        return [results[w.item_id] for w in writes if w.item_id in results]

    def _write(
        self, kind: Kind, op: WriteOp, writes: Sequence[WriteRequest], hooks: ApplyHooks
    ) -> dict[str, WriteResult]:
        if op is WriteOp.UPDATE and kind is Kind.USER:
            return self._update_users(writes, hooks)
        calls = {
            WriteOp.CREATE: self._creates,
            WriteOp.UPDATE: self._updates,
            WriteOp.DELETE: self._deletes,
        }[op]
        return self._run(kind, calls, writes, hooks)

    def _run(
        self, kind: Kind, calls: _Calls, writes: Sequence[WriteRequest], hooks: ApplyHooks
    ) -> dict[str, WriteResult]:
        todo = deque(Chunk(tuple(c)) for c in chunks(writes))
        return _JobLoop(kind, calls, self.jobs, hooks, todo).run()

    # -- creates ----------------------------------------------------------------------------

    def _start_create(self, kind: Kind, chunk: Chunk) -> Step:
        """Send one ``create_many`` (organizations), or one create per write.

        Users are created one by one: bulk user import is off on most accounts, and the
        dataflow creates no users in its defaults.
        """
        if chunk.single or kind is Kind.USER:
            return self._create_one(kind, chunk) if len(chunk.writes) == 1 else _one_by_one(chunk)
        payload = {"organizations": [create_payload(kind, w) for w in chunk.writes]}
        try:
            reply = self.http.request(
                "POST", "/api/v2/organizations/create_many.json", json_body=payload
            )
            return Step(job=job_of(reply.body))
        except ZendeskInDoubt as exc:
            log.warning("zendesk.create.in_doubt", kind=str(kind), count=len(chunk.writes))
            return self._reconcile(kind, chunk, exc)
        except WireError as exc:
            # Answered, but not with a job: whether it was queued is unknown; never re-sent.
            return self._reconcile(kind, attrs.evolve(chunk, rounds=0), _bad_response(exc))
        except ZendeskInvalid as exc:
            if len(chunk.writes) == 1:
                return Step(failures(chunk.writes, exc))
            # One bad record spoils the whole call (nothing was queued): send them singly so
            # each error names its own record.
            return _one_by_one(chunk)
        except ZendeskError as exc:
            return Step(failures(chunk.writes, exc))

    def _create_one(self, kind: Kind, chunk: Chunk) -> Step:
        (write,) = chunk.writes
        body = {_SINGULAR[kind]: create_payload(kind, write)}
        try:
            reply = self.http.request("POST", f"/api/v2/{_PLURAL[kind]}.json", json_body=body)
            record = to_record(kind, member(reply.body, _SINGULAR[kind]))
        except ZendeskInDoubt as exc:
            return self._reconcile(kind, chunk, exc)
        except WireError as exc:
            return self._reconcile(kind, attrs.evolve(chunk, rounds=0), _bad_response(exc))
        except ZendeskError as exc:
            return Step(failures(chunk.writes, exc))
        return Step({write.item_id: WriteResult(write.item_id, record)})

    def _finish_create(self, kind: Kind, chunk: Chunk, job: JobStatusDTO) -> Step:
        """A finished ``create_many``: its results, and a look by origin key for the writes it
        said nothing about and for those refused as taken (see ``taken_by_own_create``)."""
        results, unknown = created_results(kind, chunk.writes, job)
        taken = [w for w in chunk.writes if taken_by_own_create(w, results.get(w.item_id))]
        if not unknown and not taken:
            return Step(results)
        keys = [w.origin_key or "" for w in (*unknown, *taken)]
        found = self.find_by_origin(kind, keys)
        for write in taken:
            record = found.get(write.origin_key or "")
            if record is not None:
                log.info("zendesk.create.found_earlier", kind=str(kind), record=record.id)
                results[write.item_id] = WriteResult(write.item_id, record)
        if unknown:
            cause = ZendeskError(
                f"job {job.id} ended {job.status} without a result for this record",
                code="no_result",
            )
            results.update(reconciled(kind, Chunk(tuple(unknown), rounds=0), found, cause).results)
        return Step(results)

    def _lost_create(self, kind: Kind, chunk: Chunk, cause: ZendeskError) -> Step:
        return self._reconcile(kind, attrs.evolve(chunk, rounds=0), cause)

    def _reconcile(self, kind: Kind, chunk: Chunk, cause: ZendeskError) -> Step:
        """Creates whose fate is unknown: looked up by origin key (see ``reconciled``)."""
        keys = [w.origin_key for w in chunk.writes if w.origin_key]
        found = self.find_by_origin(kind, keys) if keys else {}
        return reconciled(kind, chunk, found, cause)

    # -- updates ----------------------------------------------------------------------------

    def _start_update(self, kind: Kind, chunk: Chunk) -> Step:
        """Send one ``update_many``, or one update per write (bulk off, or a bad record)."""
        if kind in self.refused:
            return Step({w.item_id: self._refused(w) for w in chunk.writes})
        if chunk.single or (kind is Kind.USER and not self.bulk_users):
            if len(chunk.writes) > 1:
                return _one_by_one(chunk)
            (write,) = chunk.writes
            return Step({write.item_id: self._update_single(kind, write)})
        payload = {
            _PLURAL[kind]: [
                {"id": int(w.id or 0), **wire_fields(kind, w.fields)} for w in chunk.writes
            ]
        }
        try:
            reply = self.http.request(
                "PUT", f"/api/v2/{_PLURAL[kind]}/update_many.json", json_body=payload
            )
            return Step(job=job_of(reply.body))
        except ZendeskForbidden as exc:
            return self._bulk_forbidden(kind, chunk, exc)
        except ZendeskInvalid:
            # One bad record spoils the whole call: singly, each error names its own record.
            return _one_by_one(chunk)
        except WireError as exc:
            return Step(failures(chunk.writes, _bad_response(exc), retryable=True))
        except ZendeskError as exc:
            return Step(failures(chunk.writes, exc, retryable=True))

    def _bulk_forbidden(self, kind: Kind, chunk: Chunk, exc: ZendeskForbidden) -> Step:
        if kind is Kind.USER and says_bulk_disabled(exc):
            log.info("zendesk.users.bulk_disabled", fallback="single calls")
            self.bulk_users = False
            return _one_by_one(chunk)
        # Not the bulk switch: the token may not update these records, one by one or in
        # bulk, so N single calls would only fail N times.
        self._forbid(kind, exc)
        return Step({w.item_id: self._refused(w) for w in chunk.writes})

    def _finish_update(self, kind: Kind, chunk: Chunk, job: JobStatusDTO) -> Step:
        """A finished ``update_many``: each write answered with the record as stored."""
        return Step(updated_results(kind, chunk.writes, job, self._stored(kind, chunk.writes)))

    def _stored(self, kind: Kind, writes: Sequence[WriteRequest]) -> dict[str, Record]:
        """The updated records as Zendesk stored them, by id.

        Ids are stored exactly as sent, so a batch that only moves users between organizations
        needs no re-read (it would cost a call per 100 users); any other value may be
        normalised by Zendesk, so it is read back (the core's bases must be what is stored).
        """
        if all(set(w.fields) <= STORED_AS_SENT for w in writes):
            return {w.id or "": as_written(w) for w in writes}
        return self._show_many(kind, [w.id or "" for w in writes])

    def _lost_write(self, kind: Kind, chunk: Chunk, cause: ZendeskError) -> Step:
        # An update or delete can be sent again safely: the next run retries what failed here.
        return Step(failures(chunk.writes, cause, retryable=True))

    def _update_single(self, kind: Kind, write: WriteRequest) -> WriteResult:
        if kind in self.refused:
            return self._refused(write)
        path = f"/api/v2/{_PLURAL[kind]}/{write.id}.json"
        try:
            reply = self.http.request(
                "PUT", path, json_body={_SINGULAR[kind]: wire_fields(kind, write.fields)}
            )
            return WriteResult(write.item_id, to_record(kind, member(reply.body, _SINGULAR[kind])))
        except WireError:
            stored = self._show_many(kind, [write.id or ""])
            return WriteResult(write.item_id, stored.get(write.id or ""))
        except ZendeskForbidden as exc:
            self._forbid(kind, exc)
            return self._refused(write)
        except ZendeskError as exc:
            return failures([write], exc)[write.item_id]

    def _update_users(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks
    ) -> dict[str, WriteResult]:
        """User updates: plain fields in bulk (or singly), then, one user at a time, primary
        e-mail changes and moves to another organization (see ``user_changes``)."""
        plain = {w.item_id: _plain(w) for w in writes}
        steps = {w.item_id: self._user_steps(w, plain[w.item_id]) for w in writes}
        bulk = [p for p in plain.values() if p.fields]
        # Progress is told per user once all of a user's calls are made.
        out = self._run(Kind.USER, self._updates, bulk, ApplyHooks(should_stop=hooks.should_stop))
        hooks.settled(sum(1 for w in writes if w.item_id in out and not steps[w.item_id]))
        stepped: list[WriteRequest] = []
        for write in writes:
            if not steps[write.item_id]:
                continue
            if plain[write.item_id].fields and write.item_id not in out:
                continue  # its bulk part was never sent (asked to stop): no result
            if not out.get(write.item_id, _OK).ok:
                continue
            if hooks.should_stop():
                if write.item_id in out:
                    out[write.item_id] = WriteResult(write.item_id, error=_steps_not_sent(write))
                continue
            error = self._user_steps_run(write, steps[write.item_id])
            if error is not None:
                out[write.item_id] = WriteResult(write.item_id, error=error)
                hooks.settled(1)
            else:
                stepped.append(write)
        return {**out, **self._read_back_users(stepped, hooks)}

    def _read_back_users(
        self, stepped: Sequence[WriteRequest], hooks: ApplyHooks
    ) -> dict[str, WriteResult]:
        """Users changed one call at a time, as Zendesk stored them after all the calls."""
        if not stepped:
            return {}
        stored = self._show_many(Kind.USER, [w.id or "" for w in stepped])
        hooks.settled(len(stepped))
        return {w.item_id: WriteResult(w.item_id, stored.get(w.id or "")) for w in stepped}

    def _user_steps(
        self, write: WriteRequest, sent: WriteRequest
    ) -> list[Callable[[], WriteError | None]]:
        """The per-user steps of ``write`` beyond the fields ``sent`` in bulk, in order."""
        steps: list[Callable[[], WriteError | None]] = []
        if "email" in write.fields:
            steps.append(lambda: self._change_email(write, write.fields.get("email")))
        moved_to = write.fields.get("organization_id")
        if moved_to and "organization_id" not in sent.fields:
            steps.append(lambda: self.users.move(write, moved_to))
        return steps

    def _user_steps_run(
        self, write: WriteRequest, steps: Sequence[Callable[[], WriteError | None]]
    ) -> WriteError | None:
        """The first error of ``write``'s per-user steps, run in order (none: all done)."""
        return next((e for step in steps if (e := self._user_step(write, step))), None)

    def _change_email(self, write: WriteRequest, email: str | None) -> WriteError | None:
        """Make ``email`` the user's primary address (see ``UserChanges.change_email``)."""
        if not email:
            label = record_label(Kind.USER, write.id)
            return WriteError("invalid_value", "a user's e-mail cannot be emptied", label, "email")
        return self.users.change_email(write, email)

    def _user_step(
        self, write: WriteRequest, step: Callable[[], WriteError | None]
    ) -> WriteError | None:
        """Run one per-user step, mapping Zendesk's refusals to this write's error."""
        if Kind.USER in self.refused:
            return self._refused(write).error
        try:
            return step()
        except ZendeskForbidden as exc:
            self._forbid(Kind.USER, exc)
            return self._refused(write).error
        except ZendeskError as exc:
            return failures([write], exc)[write.item_id].error

    # -- deletes ----------------------------------------------------------------------------

    def _start_delete(self, kind: Kind, chunk: Chunk) -> Step:
        """Send one ``destroy_many`` of up to 100 ids."""
        ids = ",".join(w.id or "" for w in chunk.writes)
        try:
            reply = self.http.request(
                "DELETE", f"/api/v2/{_PLURAL[kind]}/destroy_many.json", params={"ids": ids}
            )
            return Step(job=job_of(reply.body))
        except WireError as exc:
            return self._lost_write(kind, chunk, _bad_response(exc))
        except ZendeskError as exc:
            return self._lost_write(kind, chunk, exc)

    def _finish_delete(self, kind: Kind, chunk: Chunk, job: JobStatusDTO) -> Step:
        """A finished ``destroy_many``; where it said nothing of a record, whether the record
        is gone is read, not assumed."""
        lined = line_up(job, len(chunk.writes), [w.id for w in chunk.writes])
        unknown = [w.id or "" for w, r in zip(chunk.writes, lined, strict=True) if r is None]
        present = self._still_there(kind, unknown) if unknown else set()
        return Step(deleted_results(kind, chunk.writes, job, lined, present))

    def _still_there(self, kind: Kind, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` still exist (a deleted user is kept, inactive)."""
        return {rid for rid, record in self._show_many(kind, ids).items() if record.active}

    # -- reading back -----------------------------------------------------------------------

    def _show_many(self, kind: Kind, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records with ``ids`` (100 a call)."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        out: dict[str, Record] = {}
        for chunk in chunks(wanted):
            body = self.http.get(
                f"/api/v2/{_PLURAL[kind]}/show_many.json", {"ids": ",".join(chunk)}
            ).body
            for record in _records(kind, items(body, _PLURAL[kind])):
                out[record.id] = record
        return out

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> dict[str, Record]:
        """The records of ``kind`` whose ``external_id`` is one of ``origin_keys``."""
        wanted = {key.casefold(): key for key in origin_keys if key}
        raws: list[Any] = []
        if kind is Kind.ORGANIZATION:
            for key in wanted.values():
                body = self.http.get("/api/v2/organizations/search.json", {"external_id": key}).body
                raws.extend(items(body, "organizations"))
        elif kind is Kind.USER:
            for chunk in chunks(list(wanted.values())):
                body = self.http.get(
                    "/api/v2/users/show_many.json", {"external_ids": ",".join(chunk)}
                ).body
                raws.extend(items(body, "users"))
        found: dict[str, Record] = {}
        for record in _records(kind, raws):
            origin = (record.get(ORIGIN_FIELD) or "").casefold()
            if origin in wanted:
                found[wanted[origin]] = record
        return found

    # -- refusals ---------------------------------------------------------------------------

    def _forbid(self, kind: Kind, exc: ZendeskForbidden) -> None:
        """Remember for the run that the token may not update ``kind`` (said once, in the log)."""
        if kind not in self.refused:
            log.error("zendesk.update.forbidden", kind=str(kind), error=exc.message)
        self.refused[kind] = exc

    def _refused(self, write: WriteRequest) -> WriteResult:
        """The failure of a write of a kind the token may not update (no call is sent)."""
        exc = self.refused[write.kind]
        plural = _PLURAL[write.kind]
        error = WriteError(
            "forbidden",
            f"Zendesk refuses the token's user permission to update {plural} ({exc.message});"
            f" give it a role that may edit {plural} (an admin can)",
            record_label(write.kind, write.id),
        )
        return WriteResult(write.item_id, error=error)


# -- what a job's results mean (pure) ---------------------------------------------------------


def created_results(
    kind: Kind, writes: Sequence[WriteRequest], job: JobStatusDTO
) -> tuple[dict[str, WriteResult], list[WriteRequest]]:
    """A finished ``create_many``'s results per write, and the writes it said nothing of.

    A created record is known from the job result (its id) and what was sent
    (``created_record``), so it is not read back: a sync creating thousands of organizations
    would otherwise spend a call per hundred on reading them.
    """
    out: dict[str, WriteResult] = {}
    unknown: list[WriteRequest] = []
    for write, result in zip(writes, line_up(job, len(writes)), strict=True):
        if result is not None and not succeeded(result):
            out[write.item_id] = job_failure(write, result)
        elif result is not None and result.id is not None:
            sent = {
                **write.fields,
                **({ORIGIN_FIELD: write.origin_key} if write.origin_key else {}),
            }
            out[write.item_id] = WriteResult(
                write.item_id, created_record(kind, str(result.id), sent)
            )
        else:
            unknown.append(write)
    return out, unknown


def updated_results(
    kind: Kind, writes: Sequence[WriteRequest], job: JobStatusDTO, stored: Mapping[str, Record]
) -> dict[str, WriteResult]:
    """A finished ``update_many``'s results per write; ``stored`` holds the records by id."""
    out: dict[str, WriteResult] = {}
    lined = line_up(job, len(writes), [w.id for w in writes])
    for write, result in zip(writes, lined, strict=True):
        if result is not None and not succeeded(result):
            out[write.item_id] = job_failure(write, result)
        elif result is None and job.status != "completed":
            out[write.item_id] = WriteResult(write.item_id, error=_job_ended(kind, write, job))
        else:
            out[write.item_id] = WriteResult(write.item_id, stored.get(write.id or ""))
    return out


def deleted_results(
    kind: Kind,
    writes: Sequence[WriteRequest],
    job: JobStatusDTO,
    lined: Sequence[JobResultDTO | None],
    present: set[str],
) -> dict[str, WriteResult]:
    """A finished ``destroy_many``'s results per write; ``present`` holds the ids the job said
    nothing of that still exist. A record not found is gone already: the intent holds."""
    out: dict[str, WriteResult] = {}
    for write, result in zip(writes, lined, strict=True):
        if result is None and write.id in present:
            out[write.item_id] = WriteResult(write.item_id, error=_job_ended(kind, write, job))
        elif result is None or succeeded(result) or _not_found(result):
            out[write.item_id] = WriteResult(write.item_id)
        else:
            out[write.item_id] = job_failure(write, result)
    return out


def reconciled(kind: Kind, chunk: Chunk, found: Mapping[str, Record], cause: ZendeskError) -> Step:
    """Creates whose fate was unknown, after a look by origin key: found → done; missing with
    rounds left → sent again (one round fewer); else in doubt."""
    out: dict[str, WriteResult] = {}
    missing: list[WriteRequest] = []
    for write in chunk.writes:
        record = found.get(write.origin_key or "")
        if record is not None:
            log.info("zendesk.create.reconciled", kind=str(kind), record=record.id)
            out[write.item_id] = WriteResult(write.item_id, record)
        elif write.origin_key and chunk.rounds > 0:
            missing.append(write)
        else:
            error = WriteError(
                "in_doubt",
                f"the create may not have been applied: {cause.message}",
                record_label(kind, write.origin_key),
                None,
                retryable=True,
            )
            out[write.item_id] = WriteResult(write.item_id, error=error)
    again = Chunk(tuple(missing), chunk.rounds - 1, chunk.single)
    return Step(out, (again,) if missing else ())


def taken_by_own_create(write: WriteRequest, result: WriteResult | None) -> bool:
    """Whether a create refused because its name or key is taken may have been refused for
    our own earlier create of the same record: a run that stopped left its job in doubt, and
    the job ran on while this run planned the create again. Only a record carrying this
    write's origin key can be that one, so the writer looks it up by that key."""
    error = result.error if result is not None else None
    return bool(write.origin_key) and error is not None and error.code == "duplicate_value"


def stopped_result(write: WriteRequest, job: JobStatusDTO) -> WriteResult:
    """A write whose job had not finished when the run was asked to stop: in doubt. The job
    runs on at Zendesk; the next run reads what it did (a create by its origin key)."""
    error = WriteError(
        "in_doubt",
        f"the run stopped before Zendesk's job {job.id} finished ({job.status})",
        record_label(write.kind, write.id or write.origin_key),
        retryable=True,
    )
    return WriteResult(write.item_id, error=error)


def refusal(write: WriteRequest) -> WriteError | None:
    """Why ``write`` cannot be sent to Zendesk at all, if it cannot."""
    label = record_label(write.kind, write.id or write.origin_key)
    if write.kind not in WRITABLE:
        return WriteError("unsupported_kind", f"Zendesk has no {write.kind}", label)
    unknown = sorted(set(write.fields) - WRITABLE[write.kind])
    if unknown and write.op is not WriteOp.DELETE:
        return WriteError(
            "unsupported_field", "this field is not written to Zendesk", label, unknown[0]
        )
    if write.op is not WriteOp.CREATE and not (write.id and write.id.isdigit()):
        return WriteError("missing_id", "an update or delete needs the record's id", label)
    return None


def failures(
    writes: Sequence[WriteRequest], exc: ZendeskError, *, retryable: bool = False
) -> dict[str, WriteResult]:
    """Each of ``writes`` failed with ``exc``; re-raised when it concerns the whole system."""
    if not per_item(exc):
        raise exc
    code, description = describe({"error": exc.code, "description": exc.message}, 0)
    return {
        w.item_id: WriteResult(
            w.item_id,
            error=write_error(
                w.kind,
                w.id or w.origin_key,
                error=code,
                description=description,
                details=exc.details,
                retryable=retryable,
            ),
        )
        for w in writes
    }


def job_failure(write: WriteRequest, result: JobResultDTO) -> WriteResult:
    """The failure of one item of a bulk job, naming the record and field."""
    error = write_error(
        write.kind,
        write.id or write.origin_key,
        error=result.error,
        description=None,
        details=result.details,
    )
    return WriteResult(write.item_id, error=error)


def create_payload(kind: Kind, write: WriteRequest) -> dict[str, Any]:
    """A create's JSON: the fields, the origin key as ``external_id``."""
    payload = wire_fields(kind, write.fields)
    if write.origin_key:
        payload[ORIGIN_FIELD] = write.origin_key
    if kind is Kind.USER and payload.get("email"):
        # As for a new identity: without it Zendesk mails the address a verification link.
        payload["skip_verify_email"] = True
    return payload


def says_bulk_disabled(exc: ZendeskForbidden) -> bool:
    """Whether a 403 says the account's bulk user import is off (rather than "not allowed").

    Zendesk documents that meaning for ``create_many``/``create_or_update_many`` only and gives
    no text for it, so on ``update_many`` a 403 is taken for it only when the answer says so.
    """
    return "bulk" in f"{exc.code} {exc.message}".casefold()


def as_written(write: WriteRequest) -> Record:
    """The record as last seen with the written fields applied."""
    return Record(RecordKey.of(write.kind, write.id or ""), {**write.current, **write.fields})


def _job_ended(kind: Kind, write: WriteRequest, job: JobStatusDTO) -> WriteError:
    return WriteError(
        "job_failed",
        f"Zendesk job {job.id} ended {job.status} without this record: "
        f"{job.message or 'no message'}",
        record_label(kind, write.id),
        retryable=True,
    )


def _steps_not_sent(write: WriteRequest) -> WriteError:
    return WriteError(
        "interrupted",
        "the run stopped before this user's e-mail or organization change was sent",
        record_label(Kind.USER, write.id),
        retryable=True,
    )


def _bad_response(exc: WireError) -> ZendeskError:
    return ZendeskError(str(exc), code="bad_response")


def _not_found(result: JobResultDTO) -> bool:
    """Whether a job item failed only because the record does not exist."""
    return (result.error or "").replace("_", "").casefold() == "recordnotfound"


def _records(kind: Kind, raws: Sequence[Any]) -> list[Record]:
    """The wire objects that map to records (a misfit is logged and left out)."""
    out = []
    for raw in raws:
        try:
            out.append(to_record(kind, raw))
        except WireError as exc:
            log.warning("zendesk.record.unreadable", kind=str(kind), error=str(exc))
    return out


def _plain(write: WriteRequest) -> WriteRequest:
    """The part of a user update that ``update_many`` can send: all but the e-mail, and but
    a move from one organization to another (both need per-user calls)."""
    moving = (
        bool(write.fields.get("organization_id"))
        and bool(write.current.get("organization_id"))
        and write.fields.get("organization_id") != write.current.get("organization_id")
    )
    held_back = {"email", "organization_id"} if moving else {"email"}
    return attrs.evolve(write, fields={k: v for k, v in write.fields.items() if k not in held_back})


_OK = WriteResult("")
