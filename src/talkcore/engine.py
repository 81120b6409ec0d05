"""The engine: the one orchestrator. read → fold into the mirrors → plan → journal → apply → record.

It touches the world only through the ports it is given, so an embedding program can run it
against any systems and any state store.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import attrs

from talkcore.dataflow import DEFAULT_DATAFLOW, Dataflow
from talkcore.plan import (
    Create,
    Delete,
    PendingId,
    Plan,
    PlanItem,
    Write,
    WriteValue,
)
from talkcore.planning import plan_changes
from talkcore.policy import SyncPolicy
from talkcore.ports import (
    ApplyHooks,
    StateStore,
    SystemPort,
    WriteError,
    WriteOp,
    WriteRequest,
    WriteResult,
)
from talkcore.records import (
    FieldValue,
    Kind,
    ReadResult,
    Record,
    RecordKey,
    RecordProblem,
    Snapshot,
    System,
    fold_read,
    upsert,
)
from talkcore.state import Link, SyncState, created_link, fold_results
from talkcore.streaming import StreamedRead, fold_streamed, plan_basis, stream_full_read
from talkcore.view import working_set

NOT_FOUND_CODES = frozenset({"not_found", "record_not_found"})
"""Write error codes meaning the target record no longer exists (PowerOffice, Zendesk)."""


class RunObserver(Protocol):
    """Receives progress events of a run (for progress bars and logs)."""

    def event(self, name: str, data: Mapping[str, object]) -> None:
        """One event: ``read.start``, ``read.done``, ``plan.done``, ``apply.start``, …"""
        ...


StopCheck = Callable[[], bool]
"""Asked between write calls whether the run must stop (a cancellation port)."""


def _never() -> bool:
    return False


class _Silent:
    def event(self, name: str, data: Mapping[str, object]) -> None:
        return None


_SILENT = _Silent()


@attrs.frozen
class RunReport:
    """What one run read, planned and did."""

    run_id: str
    started: datetime
    finished: datetime
    full: bool
    dry_run: bool
    plan: Plan
    results: tuple[WriteResult, ...] = ()
    problems: tuple[RecordProblem, ...] = ()
    reconciled: tuple[str, ...] = ()
    """Journaled creates from an interrupted run that were found again and linked."""
    interrupted: bool = False
    """The run was asked to stop (``should_stop``) and sent no further writes after that."""
    planned_writes: int = 0
    """The writes the plan held, sent or not (the M of "N of M writes applied")."""

    @property
    def failures(self) -> list[WriteResult]:
        """The writes that failed."""
        return [r for r in self.results if not r.ok]

    @property
    def applied(self) -> list[WriteResult]:
        """The writes that were applied."""
        return [r for r in self.results if r.ok]


@attrs.frozen
class RunOptions:
    """What the caller decides about one run; ``run_sync`` and ``plan_run`` take the same.

    ``should_stop`` is asked before each batch of writes (and once before planning), and the
    ports ask it between their calls: when it answers ``True`` the run sends nothing more
    (see ``run_sync``). A dry run never asks it.
    """

    dataflow: Dataflow = DEFAULT_DATAFLOW
    policy: SyncPolicy = attrs.field(factory=SyncPolicy)
    full: bool = False
    """Read and plan everything, not just what changed since the cursors."""
    whole_mirrors: bool = False
    """Plan over both whole mirrors loaded from the store, as before the mirror view (issue
    13): an incremental run, or a full run that reads both systems whole and plans every
    record. Kept to measure the view against (``bench/cold_start.py``) and as the full
    reconcile's safety net (``talksync sync --whole``)."""
    now: datetime | None = None
    """When the run starts (``None``: the clock's time); decides whether a full read is due."""
    run_id: str | None = None
    observer: RunObserver = attrs.field(factory=lambda: _SILENT)
    should_stop: StopCheck = _never


def run_sync(
    poweroffice: SystemPort,
    zendesk: SystemPort,
    store: StateStore,
    options: RunOptions | None = None,
) -> RunReport:
    """Run one sync: read both systems, plan, apply the plan and record the new state.

    When ``options.should_stop`` answers ``True`` the run sends nothing more, saves what the
    writes sent so far did, keeps the old cursors (so the next run reads those changes again and
    finishes the job) and returns a report marked ``interrupted``. The caller decides what asks
    it to stop (a signal, a deadline); the engine only checks.
    """
    return _Run(poweroffice, zendesk, store, options or RunOptions()).run(dry_run=False)


def plan_run(
    poweroffice: SystemPort,
    zendesk: SystemPort,
    store: StateStore,
    options: RunOptions | None = None,
) -> RunReport:
    """Read both systems and plan, writing nothing to either system and saving nothing."""
    return _Run(poweroffice, zendesk, store, options or RunOptions()).run(dry_run=True)


def incremental_focus(reads: Iterable[ReadResult], state: SyncState) -> set[RecordKey]:
    """What an incremental plan must look at: records read as changed, and the last run's
    reported and failed records (``state.retry``)."""
    return {record.key for read in reads for record in read.records} | state.retry


def kinds_read(dataflow: Dataflow, system: System) -> frozenset[Kind]:
    """The kinds a run reads from ``system`` for ``dataflow`` (``Dataflow.kinds``)."""
    return dataflow.kinds(system)


@attrs.define
class _Run:
    """One run: the ports, the caller's options, and whether it was asked to stop."""

    poweroffice: SystemPort
    zendesk: SystemPort
    store: StateStore
    options: RunOptions
    stopped: bool = False

    @property
    def dataflow(self) -> Dataflow:
        return self.options.dataflow

    @property
    def observer(self) -> RunObserver:
        return self.options.observer

    def port(self, system: System) -> SystemPort:
        return self.poweroffice if system is System.POWEROFFICE else self.zendesk

    def run(self, *, dry_run: bool) -> RunReport:
        started = self.options.now or datetime.now(UTC)
        report = _Reporter(self.options.run_id or uuid.uuid4().hex[:12], started)
        with self.store.lock():
            viewed = self._over_view(started, dry_run=dry_run)
            since: tuple[SyncState, list[Snapshot]] | None = None
            counts: Mapping[str, int] | None = None
            if isinstance(viewed, _Viewed):
                state, mirrors, reads = viewed.state, viewed.mirrors, viewed.reads
                since, counts = viewed.since, viewed.link_counts
                report.full = viewed.full
                focus: set[RecordKey] | None = viewed.focus
            else:
                state = self.store.load_state()
                mirrors = {s: self.store.load_mirror(s) for s in System}
                if viewed is not None:
                    # A port answered a change read with a full one: fold it as read.
                    reads = viewed
                    for system, read in reads.items():
                        mirrors[system] = fold_read(mirrors[system], read)
                else:
                    if not dry_run:
                        state, mirrors, report.reconciled = self._reconcile_intents(state, mirrors)
                    empty = not all(len(m) for m in mirrors.values())
                    report.full = self.options.full or self._full_due(state, empty, started)
                    reads = self._read(state, mirrors, full=report.full)
                focus = None if report.full else incremental_focus(reads.values(), state)
            report.problems = tuple(p for read in reads.values() for p in read.problems)
            if not dry_run and self.options.should_stop():
                return self._stopped_before_planning(report, state, mirrors)
            plan = plan_changes(
                mirrors[System.POWEROFFICE],
                mirrors[System.ZENDESK],
                state,
                self.dataflow,
                self.options.policy,
                focus=focus,
                link_counts=counts,
            )
            self.observer.event("plan.done", {"summary": plan.summary()})
            if dry_run:
                return report.done(plan, dry_run=True)
            applied_plan, results = self._apply(report.run_id, plan, mirrors)
            state = self._record(state, reads, applied_plan, results, started, report.full)
            done = report.done(
                applied_plan,
                results=tuple(results),
                interrupted=self.stopped,
                planned_writes=len(plan.writes()),
            )
            if since is None:
                self.store.save(state, list(mirrors.values()))
            else:
                self.store.save_partial(state, list(mirrors.values()), since)
            self.store.record_run(done)
            self.observer.event(
                "run.done", {"applied": len(done.applied), "failed": len(done.failures)}
            )
            return done

    def _over_view(
        self, started: datetime, *, dry_run: bool
    ) -> _Viewed | dict[System, ReadResult] | None:
        """A run's reads and working set, read through the store's mirror view (issue 13):
        what the changes touch, never both whole mirrors.

        An incremental run reads the changes since the cursors. A full run (asked for, or the
        periodic one) streams its read and keeps what differs from the mirror
        (``talkcore.streaming``), as long as the last full plan was made under this dataflow
        and policy and no run stopped since.

        ``None`` when the run needs the whole mirrors: the first run (a mirror empty), a full
        run under a new dataflow or policy, open intents to reconcile after a crash, or
        ``whole_mirrors``. The reads alone when a port answered a change read with a full read
        (its absences mean deletes: the whole mirror is folded).
        """
        if self.options.whole_mirrors:
            return None
        if not dry_run and self.store.open_intents():
            return None
        head = self.store.load_state_except_links()
        if not all(self.store.mirror_holds_records(system) for system in System):
            return None
        full = self.options.full or self._full_due(head, False, started)
        streamed: dict[System, StreamedRead] = {}
        removed: frozenset[RecordKey] = frozenset()
        if full:
            if head.full_plan_basis != plan_basis(self.dataflow, self.options.policy):
                return None
            streamed = self._read_streamed()
            reads = {system: streamed[system].read for system in System}
            removed = frozenset().union(*(streamed[system].removed for system in System))
        else:
            reads = self._read_changes(head.cursors)
            if any(read.full for read in reads.values()):
                return reads
        focus = incremental_focus(reads.values(), head) | removed
        working = working_set(
            self.store,
            self.dataflow,
            head,
            (record for read in reads.values() for record in read.records),
            focus,
            removed,
        )
        if streamed:
            mirrors = {s: fold_streamed(working.mirrors[s], streamed[s]) for s in System}
        else:
            mirrors = {s: fold_read(working.mirrors[s], reads[s]) for s in System}
        since = (working.state, [working.mirrors[system] for system in System])
        return _Viewed(working.state, mirrors, reads, since, working.link_counts, focus, full)

    def _read_streamed(self) -> dict[System, StreamedRead]:
        """Read both systems whole, page by page, keeping what differs from the mirror."""
        streamed: dict[System, StreamedRead] = {}
        for system in System:
            self.observer.event("read.start", {"system": str(system), "full": True})
            pages = self.port(system).read_pages(kinds_read(self.dataflow, system), None)
            streamed[system] = stream_full_read(self.store, pages)
            self.observer.event(
                "read.done",
                {
                    "system": str(system),
                    "count": streamed[system].count,
                    "full": True,
                    "differ": len(streamed[system].read.records),
                    "removed": len(streamed[system].removed),
                },
            )
        return streamed

    def _full_due(self, state: SyncState, empty: bool, now: datetime) -> bool:
        """Whether this run reads everything: first run, a mirror empty, or the periodic
        full reconcile due."""
        if state.last_full_sync is None or empty:
            return True
        return now - state.last_full_sync >= self.options.policy.full_reconcile_every

    def _read_changes(self, cursors: Mapping[str, str] | None) -> dict[System, ReadResult]:
        """Read both systems: everything (``cursors`` ``None``) or the changes since them."""
        reads: dict[System, ReadResult] = {}
        for system in System:
            self.observer.event("read.start", {"system": str(system), "full": cursors is None})
            read = self.port(system).read(kinds_read(self.dataflow, system), cursors)
            reads[system] = read
            self.observer.event(
                "read.done", {"system": str(system), "count": len(read.records), "full": read.full}
            )
        return reads

    def _read(
        self, state: SyncState, mirrors: dict[System, Snapshot], *, full: bool
    ) -> dict[System, ReadResult]:
        """Read both systems (all, or changes since the cursors) and fold into the mirrors."""
        reads = self._read_changes(None if full else state.cursors)
        for system, read in reads.items():
            mirrors[system] = fold_read(mirrors[system], read)
        return reads

    def _stopped_before_planning(
        self, report: _Reporter, state: SyncState, mirrors: Mapping[System, Snapshot]
    ) -> RunReport:
        """Nothing written yet: leave the state as it was (the reads are read again)."""
        done = report.done(Plan(()), interrupted=True)
        if report.reconciled:
            # The mirrors saved hold this run's reads, which were never planned.
            self.store.save(attrs.evolve(state, full_plan_basis=None), list(mirrors.values()))
        self.store.record_run(done)
        return done

    def _record(
        self,
        state: SyncState,
        reads: Mapping[System, ReadResult],
        plan: Plan,
        results: Sequence[WriteResult],
        started: datetime,
        full: bool,
    ) -> SyncState:
        """The state after the run: cursors moved on (unless stopped), the results folded in."""
        if not self.stopped:
            # An interrupted run keeps the old cursors and full-sync time: the next run
            # reads the same changes again and plans what this one did not send.
            for read in reads.values():
                state = attrs.evolve(state, cursors={**state.cursors, **read.cursors})
        state = fold_results(state, plan, results, self.dataflow)
        if self.stopped:
            # What this run read is in the mirror but was not all planned: the next full run
            # must plan every record again, not only what differs from the mirror.
            state = attrs.evolve(state, full_plan_basis=None)
        elif full:
            basis = plan_basis(self.dataflow, self.options.policy)
            state = attrs.evolve(state, last_full_sync=started, full_plan_basis=basis)
        return state

    # -- crash recovery -----------------------------------------------------------------

    def _reconcile_intents(
        self, state: SyncState, mirrors: dict[System, Snapshot]
    ) -> tuple[SyncState, dict[System, Snapshot], tuple[str, ...]]:
        """Find records that an interrupted run created, and link them instead of re-creating."""
        intents = self.store.open_intents()
        if not intents:
            return state, mirrors, ()
        reconciled: list[str] = []
        by_kind: dict[Kind, list[WriteRequest]] = {}
        for write in intents:
            if write.op is WriteOp.CREATE and write.origin_key:
                by_kind.setdefault(write.kind, []).append(write)
        for kind, writes in by_kind.items():
            found = self.port(kind.system).find_by_origin(
                kind, [w.origin_key or "" for w in writes]
            )
            for write in writes:
                record = found.get(write.origin_key or "")
                link = self._link_for_intent(write, record)
                if record is None or link is None:
                    continue
                mirrors[kind.system] = upsert(mirrors[kind.system], [record])
                table = state.table(link.flow)
                if table.for_poweroffice(link.poweroffice_id) is None:
                    state = state.with_links(link.flow, [*table, link])
                    # Planned again this run, so the recovered pair merges.
                    state = attrs.evolve(state, retry=state.retry | {record.key})
                    reconciled.append(write.item_id)
        self.store.close_intents([w.item_id for w in intents])
        self.observer.event("reconcile.done", {"open": len(intents), "linked": len(reconciled)})
        return state, mirrors, tuple(reconciled)

    def _link_for_intent(self, write: WriteRequest, record: Record | None) -> Link | None:
        if record is None or write.source is None or write.flow not in self.dataflow.ids:
            return None
        return created_link(self.dataflow.flow(write.flow), write.source, record)

    # -- applying -----------------------------------------------------------------------

    def _apply(
        self, run_id: str, plan: Plan, mirrors: dict[System, Snapshot]
    ) -> tuple[Plan, list[WriteResult]]:
        """Apply the plan's writes stage by stage (``send_stages``), each system in turn.

        Returns the plan as applied (updates whose pending ids were filled in, or left out when
        the record they refer to was not created) and one result per write attempted.
        """
        applying = _Applying(mirrors)
        for stage in send_stages(plan.writes()):
            for system in System:
                if self.stopped:
                    break  # asked to stop: later writes are not even prepared
                requests = applying.prepare([w for w in stage if w.system is system])
                if requests:
                    outcome = self._send(run_id, system, requests)
                    applying.settle(system, requests, outcome)
                    self.observer.event(
                        "apply.done",
                        {
                            "system": str(system),
                            "applied": sum(1 for r in outcome if r.ok),
                            "failed": sum(1 for r in outcome if not r.ok),
                        },
                    )
        items = tuple(applying.rewritten.get(item.id, item) for item in plan)
        return Plan(items), applying.results

    def _send(self, run_id: str, system: System, requests: list[WriteRequest]) -> list[WriteResult]:
        """Send ``requests`` in batches, journaled; stop as soon as asked to.

        In batches so results are journaled as they come; progress moves with every call the
        port makes (``ApplyHooks.settled``), and the port itself asks ``should_stop`` between
        its calls, so a stop waits only for the requests in flight.
        """
        self.observer.event("apply.start", {"system": str(system), "total": len(requests)})
        outcome: list[WriteResult] = []
        progress = _Progress(self.observer, system, len(requests))
        hooks = ApplyHooks(settled=progress.settled, should_stop=self._should_stop)
        for batch in _batches(requests, system):
            if self._should_stop():
                break
            self.store.journal_intents(run_id, batch)
            answered = self.port(system).apply(batch, hooks)
            self.store.journal_results(run_id, answered)
            outcome.extend(answered)
            unsent = _unanswered(batch, answered)
            if unsent:
                # The port stopped before sending these: nothing of them can have landed.
                self.stopped = True
                self.store.close_intents(unsent)
            progress.reached(len(outcome))
        return outcome

    def _should_stop(self) -> bool:
        """Whether the run must send nothing more (asked once, remembered)."""
        if not self.stopped and self.options.should_stop():
            self.stopped = True
        return self.stopped


@attrs.frozen
class _Viewed:
    """An incremental run's start over the mirror view: the working set with the reads folded
    in, the reads, and what the working set was as read (the partial save's baseline)."""

    state: SyncState
    mirrors: dict[System, Snapshot]
    reads: dict[System, ReadResult]
    since: tuple[SyncState, list[Snapshot]]
    link_counts: Mapping[str, int]
    focus: set[RecordKey]
    full: bool
    """A full run whose read was streamed (``talkcore.streaming``)."""


@attrs.define
class _Progress:
    """``apply.progress`` events for one system's writes, moved by the port's calls."""

    observer: RunObserver
    system: System
    total: int
    done: int = 0

    def settled(self, count: int) -> None:
        """The port learnt the outcome of ``count`` more writes."""
        self.reached(min(self.total, self.done + count))

    def reached(self, done: int) -> None:
        """``done`` writes have their outcome (a batch's results correct the port's count)."""
        if done != self.done:
            self.done = done
            self.observer.event(
                "apply.progress", {"system": str(self.system), "done": done, "total": self.total}
            )


def _unanswered(batch: Sequence[WriteRequest], answered: Sequence[WriteResult]) -> list[str]:
    """The item ids in ``batch`` that got no result (the port stopped before sending them)."""
    got = {result.item_id for result in answered}
    return [write.item_id for write in batch if write.item_id not in got]


@attrs.define
class _Reporter:
    """What a run has learnt for its report before the plan is known."""

    run_id: str
    started: datetime
    full: bool = False
    problems: tuple[RecordProblem, ...] = ()
    reconciled: tuple[str, ...] = ()

    def done(
        self,
        plan: Plan,
        *,
        dry_run: bool = False,
        results: tuple[WriteResult, ...] = (),
        interrupted: bool = False,
        planned_writes: int = 0,
    ) -> RunReport:
        return RunReport(
            self.run_id,
            self.started,
            datetime.now(UTC),
            self.full,
            dry_run,
            plan,
            results,
            self.problems,
            self.reconciled,
            interrupted=interrupted,
            planned_writes=planned_writes,
        )


@attrs.define
class _Applying:
    """The writes of one run as they are sent: ids of created records, results, mirrors."""

    mirrors: dict[System, Snapshot]
    created: dict[str, str] = attrs.Factory(dict)
    """Ids of records created so far, by the create's item id (fills ``PendingId``s)."""
    results: list[WriteResult] = attrs.Factory(list)
    rewritten: dict[str, PlanItem] = attrs.Factory(dict)

    def prepare(self, writes: Sequence[Write]) -> list[WriteRequest]:
        """The requests for ``writes``, sorted for sending; writes that cannot go fail here."""
        requests: list[WriteRequest] = []
        for write in writes:
            prepared = self._request(write)
            if isinstance(prepared, WriteResult):
                self.results.append(prepared)
                continue
            resolved, request = prepared
            if resolved is not write:
                self.rewritten[write.id] = resolved
            requests.append(request)
        requests.sort(key=_send_order)
        return requests

    def settle(
        self, system: System, requests: Sequence[WriteRequest], outcome: Sequence[WriteResult]
    ) -> None:
        """Take what the system answered: stored records into its mirror, ids of creates."""
        stored = [r.record for r in outcome if r.ok and r.record is not None]
        stored += _gone(requests, outcome, self.mirrors[system])
        self.mirrors[system] = upsert(self.mirrors[system], stored)
        creates = {r.item_id for r in requests if r.op is WriteOp.CREATE}
        for result in outcome:
            if result.ok and result.record is not None and result.item_id in creates:
                self.created[result.item_id] = result.record.id
        self.results.extend(outcome)

    def _request(self, write: Write) -> tuple[Write, WriteRequest] | WriteResult:
        """The write with pending ids filled in and its request, or why it cannot be sent."""
        if isinstance(write, Create):
            fields = {
                name: _as_field(_filled(value, self.created))
                for name, value in write.fields.items()
            }
            return write, WriteRequest(
                write.id,
                WriteOp.CREATE,
                write.kind,
                None,
                fields,
                write.origin_key,
                flow=write.flow,
                source=write.source,
            )
        current = self.mirrors[write.target.system].get(write.target)
        current_fields = dict(current.fields) if current is not None else {}
        kind, rid = write.target.kind, write.target.id
        if isinstance(write, Delete):
            request = WriteRequest(
                write.id, WriteOp.DELETE, kind, rid, current=current_fields, flow=write.flow
            )
            return write, request
        kept = [
            attrs.evolve(change, value=_filled(change.value, self.created))
            for change in write.changes
            # A change referring to a record that was not created waits for the next run.
            if not isinstance(change.value, PendingId) or change.value.item_id in self.created
        ]
        if not kept:
            error = WriteError(
                "dependency_failed",
                "the organization this record refers to could not be created",
                str(write.target),
            )
            return WriteResult(write.id, error=error)
        fields = {c.property: _as_field(c.value) for c in kept}
        request = WriteRequest(
            write.id,
            WriteOp.UPDATE,
            kind,
            rid,
            fields,
            current=current_fields,
            flow=write.flow,
            releases={c.property: c.releases for c in kept if c.releases is not None},
        )
        return attrs.evolve(write, changes=tuple(kept)), request


def send_stages(writes: Sequence[Write]) -> list[list[Write]]:
    """The plan's writes in the order they must be sent: the one place that order is decided.

    A write that refers to a record created in this run (a ``PendingId``) needs that record's
    id, so it goes in a later stage than the create: stage *n* holds the writes whose
    references reach back *n* creates. Within a stage (and a system) deletes come first, then
    updates, then creates (``_send_order``): deletes and renames free the unique names and
    e-mails that creates may take.
    """
    creates = {w.id: w for w in writes if isinstance(w, Create)}
    depth: dict[str, int] = {}

    def depth_of(write: Write) -> int:
        if write.id not in depth:
            refs = [creates[p.item_id] for p in _pending(write) if p.item_id in creates]
            depth[write.id] = 1 + max((depth_of(ref) for ref in refs), default=-1)
        return depth[write.id]

    stages: dict[int, list[Write]] = {}
    for write in writes:
        stages.setdefault(depth_of(write), []).append(write)
    return [stages[n] for n in sorted(stages)]


def _pending(write: Write) -> list[PendingId]:
    """The records created in this run that ``write`` refers to."""
    if isinstance(write, Create):
        values: Iterable[object] = write.fields.values()
    elif isinstance(write, Delete):
        values = ()
    else:
        values = (change.value for change in write.changes)
    return [value for value in values if isinstance(value, PendingId)]


def _gone(
    requests: Sequence[WriteRequest], outcome: Sequence[WriteResult], mirror: Snapshot
) -> list[Record]:
    """Records a write found missing (404): marked inactive so the next plan ends the link."""
    missing = {
        r.item_id for r in outcome if r.error is not None and r.error.code in NOT_FOUND_CODES
    }
    gone = []
    for request in requests:
        if request.item_id in missing and request.id is not None:
            current = mirror.get(RecordKey.of(request.kind, request.id))
            if current is not None:
                gone.append(attrs.evolve(current, active=False))
    return gone


APPLY_BATCH = 3000
"""Writes handed to a port per call: their results are journaled together. For Zendesk that is
30 bulk jobs of 100, as many as it queues per account, so one batch is one wave of jobs and
one status poll (issue 13: the request floor). PowerOffice, which has no bulk calls, gets
``APPLY_BATCH_ONE_BY_ONE``. A stop is honoured inside a batch too (the port asks
``should_stop`` between its calls)."""
APPLY_BATCH_ONE_BY_ONE = 100
"""Writes handed per call to a port that sends one call per write (PowerOffice)."""

_OP_ORDER = {WriteOp.DELETE: 0, WriteOp.UPDATE: 1, WriteOp.CREATE: 2}


def _send_order(request: WriteRequest) -> tuple[int, str]:
    """Deletes, then updates, then creates; one kind together, so bulk calls stay full."""
    return (_OP_ORDER[request.op], request.kind.value)


def _batches(requests: list[WriteRequest], system: System) -> Iterator[list[WriteRequest]]:
    """Sorted requests in batches of one kind and operation (so bulk calls stay full)."""
    size = APPLY_BATCH if system is System.ZENDESK else min(APPLY_BATCH, APPLY_BATCH_ONE_BY_ONE)
    for _, group in itertools.groupby(requests, key=lambda r: (r.kind, r.op)):
        same = list(group)
        for start in range(0, len(same), size):
            yield same[start : start + size]


def _filled(value: WriteValue, created: Mapping[str, str]) -> WriteValue:
    """``value`` with a pending id replaced by the created record's id, once known."""
    if isinstance(value, PendingId):
        return created.get(value.item_id, value)
    return value


def _as_field(value: WriteValue) -> FieldValue:
    return value if isinstance(value, str) else None


__all__ = [
    "RunObserver",
    "RunOptions",
    "RunReport",
    "StopCheck",
    "kinds_read",
    "plan_run",
    "run_sync",
    "send_stages",
]
