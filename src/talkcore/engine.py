"""The engine: the one orchestrator. read → fold into the mirrors → plan → journal → apply → record.

It touches the world only through the ports it is given, so an embedding program can run it
against any systems and any state store.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from talkcore.dataflow import DEFAULT_DATAFLOW, Dataflow, Flow
from talkcore.plan import (
    Create,
    Delete,
    FieldChange,
    PendingId,
    Plan,
    PlanItem,
    Write,
    describe,
)
from talkcore.planning import plan_changes
from talkcore.policy import SyncPolicy
from talkcore.ports import StateStore, SystemPort, WriteError, WriteOp, WriteRequest, WriteResult
from talkcore.records import (
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

NOT_FOUND_CODES = frozenset({"not_found", "record_not_found"})
"""Write error codes meaning the target record no longer exists (PowerOffice, Zendesk)."""


class RunObserver(Protocol):
    """Receives progress events of a run (for progress bars and logs)."""

    def event(self, name: str, data: Mapping[str, object]) -> None:
        """One event: ``read.start``, ``read.done``, ``plan.done``, ``apply.start``, …"""
        ...


StopCheck = Callable[[], bool]
"""Asked between write batches whether the run must stop (a cancellation port)."""


def _never() -> bool:
    return False


class _Silent:
    def event(self, name: str, data: Mapping[str, object]) -> None:
        return None


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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready report: summary counts, every plan item, failures and read problems."""
        return {
            "run_id": self.run_id,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "full": self.full,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "summary": {
                **self.plan.summary(),
                "applied": len(self.applied),
                "failed": len(self.failures),
                "writes": self.planned_writes,
                "read_problems": len(self.problems),
            },
            "items": [describe(item) for item in self.plan],
            "failures": [
                {"item": r.item_id, "error": attrs.asdict(r.error) if r.error else None}
                for r in self.failures
            ],
            "problems": [attrs.asdict(p) for p in self.problems],
            "reconciled": list(self.reconciled),
        }


def run_sync(
    poweroffice: SystemPort,
    zendesk: SystemPort,
    store: StateStore,
    *,
    dataflow: Dataflow = DEFAULT_DATAFLOW,
    policy: SyncPolicy | None = None,
    full: bool = False,
    now: datetime | None = None,
    run_id: str | None = None,
    observer: RunObserver | None = None,
    should_stop: StopCheck | None = None,
) -> RunReport:
    """Run one sync: read both systems, plan, apply the plan and record the new state.

    ``should_stop`` is asked before each batch of writes (and once before planning): when it
    answers ``True`` the run sends nothing more, saves what the writes sent so far did, keeps
    the old cursors (so the next run reads those changes again and finishes the job) and
    returns a report marked ``interrupted``. The caller decides what asks it to stop (a
    signal, a deadline); the engine only checks.
    """
    return _Run(
        poweroffice,
        zendesk,
        store,
        dataflow,
        policy or SyncPolicy(),
        observer or _Silent(),
        should_stop or _never,
    ).run(full=full, dry_run=False, now=now, run_id=run_id)


def plan_run(
    poweroffice: SystemPort,
    zendesk: SystemPort,
    store: StateStore,
    *,
    dataflow: Dataflow = DEFAULT_DATAFLOW,
    policy: SyncPolicy | None = None,
    full: bool = False,
    now: datetime | None = None,
    run_id: str | None = None,
    observer: RunObserver | None = None,
) -> RunReport:
    """Read both systems and plan, writing nothing to either system and saving nothing."""
    return _Run(
        poweroffice, zendesk, store, dataflow, policy or SyncPolicy(), observer or _Silent()
    ).run(full=full, dry_run=True, now=now, run_id=run_id)


def incremental_focus(reads: Iterable[ReadResult], state: SyncState) -> set[RecordKey]:
    """What an incremental plan must look at: records read as changed, and the last run's
    reported and failed records (``state.retry``)."""
    return {record.key for read in reads for record in read.records} | state.retry


def kinds_read(dataflow: Dataflow, system: System) -> frozenset[Kind]:
    """The kinds a run reads from ``system`` for ``dataflow``."""
    kinds: set[Kind] = set()
    for flow in dataflow:
        kinds.add(flow.kind_in(system))
        if system is System.POWEROFFICE and any(p.is_reference for p in flow.properties):
            kinds.add(Kind.SUPPLIER)  # to say "this party is a supplier" in reference problems
    return frozenset(kinds)


@attrs.define
class _Run:
    poweroffice: SystemPort
    zendesk: SystemPort
    store: StateStore
    dataflow: Dataflow
    policy: SyncPolicy
    observer: RunObserver
    should_stop: StopCheck = _never
    stopped: bool = False

    def port(self, system: System) -> SystemPort:
        return self.poweroffice if system is System.POWEROFFICE else self.zendesk

    def run(
        self, *, full: bool, dry_run: bool, now: datetime | None, run_id: str | None
    ) -> RunReport:
        started = now or datetime.now(UTC)
        run_id = run_id or uuid.uuid4().hex[:12]
        with self.store.lock():
            state = self.store.load_state()
            mirrors = {s: self.store.load_mirror(s) for s in System}
            reconciled: list[str] = []
            if not dry_run:
                state, mirrors, reconciled = self._reconcile_intents(state, mirrors)
            full_read = full or self._full_due(state, mirrors, started)
            reads: dict[System, ReadResult] = {}
            for system in System:
                self.observer.event("read.start", {"system": str(system), "full": full_read})
                read = self.port(system).read(
                    kinds_read(self.dataflow, system), None if full_read else state.cursors
                )
                reads[system] = read
                mirrors[system] = fold_read(mirrors[system], read)
                self.observer.event(
                    "read.done",
                    {"system": str(system), "count": len(read.records), "full": read.full},
                )
            problems = tuple(p for read in reads.values() for p in read.problems)
            if not dry_run and self.should_stop():
                # Nothing written yet: leave the state as it was (the reads are read again).
                report = RunReport(
                    run_id,
                    started,
                    datetime.now(UTC),
                    full_read,
                    False,
                    Plan(()),
                    (),
                    problems,
                    tuple(reconciled),
                    interrupted=True,
                )
                if reconciled:
                    self.store.save(state, list(mirrors.values()))
                self.store.record_run(report.to_json())
                return report
            focus = None if full_read else incremental_focus(reads.values(), state)
            plan = plan_changes(
                mirrors[System.POWEROFFICE],
                mirrors[System.ZENDESK],
                state,
                self.dataflow,
                self.policy,
                focus=focus,
            )
            self.observer.event("plan.done", {"summary": plan.summary()})
            if dry_run:
                return RunReport(
                    run_id, started, datetime.now(UTC), full_read, True, plan, (), problems
                )
            applied_plan, results = self._apply(run_id, plan, mirrors)
            if not self.stopped:
                # An interrupted run keeps the old cursors and full-sync time: the next run
                # reads the same changes again and plans what this one did not send.
                for read in reads.values():
                    state = attrs.evolve(state, cursors={**state.cursors, **read.cursors})
            state = fold_results(state, applied_plan, results, self.dataflow)
            if full_read and not self.stopped:
                state = attrs.evolve(state, last_full_sync=started)
            report = RunReport(
                run_id,
                started,
                datetime.now(UTC),
                full_read,
                False,
                applied_plan,
                tuple(results),
                problems,
                tuple(reconciled),
                interrupted=self.stopped,
                planned_writes=len(plan.writes()),
            )
            self.store.save(state, list(mirrors.values()))
            self.store.record_run(report.to_json())
            self.observer.event(
                "run.done", {"applied": len(report.applied), "failed": len(report.failures)}
            )
            return report

    def _full_due(
        self, state: SyncState, mirrors: Mapping[System, Snapshot], now: datetime
    ) -> bool:
        if state.last_full_sync is None or not all(len(m) for m in mirrors.values()):
            return True
        return now - state.last_full_sync >= self.policy.full_reconcile_every

    # -- crash recovery -----------------------------------------------------------------

    def _reconcile_intents(
        self, state: SyncState, mirrors: dict[System, Snapshot]
    ) -> tuple[SyncState, dict[System, Snapshot], list[str]]:
        """Find records that an interrupted run created, and link them instead of re-creating."""
        intents = self.store.open_intents()
        if not intents:
            return state, mirrors, []
        creates = [w for w in intents if w.op is WriteOp.CREATE and w.origin_key]
        reconciled: list[str] = []
        by_kind: dict[Kind, list[WriteRequest]] = {}
        for write in creates:
            by_kind.setdefault(write.kind, []).append(write)
        for kind, writes in by_kind.items():
            keys = [w.origin_key for w in writes if w.origin_key]
            found = self.port(kind.system).find_by_origin(kind, keys)
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
        return state, mirrors, reconciled

    def _link_for_intent(self, write: WriteRequest, record: Record | None) -> Link | None:
        if record is None or write.source is None or write.flow not in self.dataflow.ids:
            return None
        return created_link(self.dataflow.flow(write.flow), write.source, record)

    # -- applying -----------------------------------------------------------------------

    def _apply(
        self, run_id: str, plan: Plan, mirrors: dict[System, Snapshot]
    ) -> tuple[Plan, list[WriteResult]]:
        """Apply the plan's writes: organization flows first, then the flows referring to them."""
        created: dict[str, str] = {}
        results: list[WriteResult] = []
        rewritten: dict[str, PlanItem] = {}
        for phase in self._phases():
            for system in System:
                if self.stopped:
                    break  # asked to stop: later writes are not even prepared
                writes = [w for w in plan.writes(system) if self.dataflow.flow(w.flow) in phase]
                if not writes:
                    continue
                requests: list[WriteRequest] = []
                for write in writes:
                    resolved, request, failure = self._request(write, created, mirrors)
                    if failure is not None:
                        results.append(failure)
                        continue
                    if resolved is not write:
                        rewritten[write.id] = resolved
                    if request is not None:
                        requests.append(request)
                if not requests:
                    continue
                self.observer.event("apply.start", {"system": str(system), "total": len(requests)})
                # Sent in batches so progress shows and results are journaled as they come;
                # ordered so deletes and renames precede creates (they free unique names).
                requests.sort(key=_send_order)
                outcome = []
                for batch in _batches(requests, system):
                    if self.stopped or self.should_stop():
                        self.stopped = True
                        break
                    self.store.journal_intents(run_id, batch)
                    answered = self.port(system).apply(batch)
                    self.store.journal_results(run_id, answered)
                    outcome.extend(answered)
                    self.observer.event(
                        "apply.progress",
                        {"system": str(system), "done": len(outcome), "total": len(requests)},
                    )
                stored = [r.record for r in outcome if r.ok and r.record is not None]
                stored += self._gone(requests, outcome, mirrors[system])
                mirrors[system] = upsert(mirrors[system], stored)
                creates = {r.item_id for r in requests if r.op is WriteOp.CREATE}
                for result in outcome:
                    if result.ok and result.record is not None and result.item_id in creates:
                        created[result.item_id] = result.record.id
                results.extend(outcome)
                self.observer.event(
                    "apply.done",
                    {
                        "system": str(system),
                        "applied": sum(1 for r in outcome if r.ok),
                        "failed": sum(1 for r in outcome if not r.ok),
                    },
                )
        items = tuple(rewritten.get(item.id, item) for item in plan)
        return Plan(items), results

    @staticmethod
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

    def _phases(self) -> list[set[Flow]]:
        """Flows whose writes others refer to go first; the rest after."""
        referenced = {
            p.reference_flow for flow in self.dataflow for p in flow.properties if p.reference_flow
        }
        first = {flow for flow in self.dataflow if flow.id in referenced}
        return [first, {flow for flow in self.dataflow if flow not in first}]

    def _request(
        self, write: Write, created: Mapping[str, str], mirrors: Mapping[System, Snapshot]
    ) -> tuple[Write, WriteRequest | None, WriteResult | None]:
        """The write with pending ids filled in, its request, or why it cannot be sent."""
        if isinstance(write, Create):
            fields = {name: _filled(value, created) for name, value in write.fields.items()}
            return (
                write,
                WriteRequest(
                    write.id,
                    WriteOp.CREATE,
                    write.kind,
                    None,
                    fields,
                    write.origin_key,
                    flow=write.flow,
                    source=write.source,
                ),
                None,
            )
        current = mirrors[write.target.system].get(write.target)
        current_fields = dict(current.fields) if current is not None else {}
        if isinstance(write, Delete):
            return (
                write,
                WriteRequest(
                    write.id,
                    WriteOp.DELETE,
                    write.target.kind,
                    write.target.id,
                    current=current_fields,
                ),
                None,
            )
        kept: list[FieldChange] = []
        for change in write.changes:
            if isinstance(change.value, PendingId) and change.value.item_id not in created:
                continue  # the record it refers to was not created; the next run retries
            kept.append(attrs.evolve(change, value=_filled(change.value, created)))
        if not kept:
            error = WriteError(
                "dependency_failed",
                "the organization this record refers to could not be created",
                str(write.target),
            )
            return write, None, WriteResult(write.id, error=error)
        resolved = attrs.evolve(write, changes=tuple(kept))
        fields = {c.property: _filled(c.value, created) for c in kept}
        return (
            resolved,
            WriteRequest(
                write.id,
                WriteOp.UPDATE,
                write.target.kind,
                write.target.id,
                fields,
                current=current_fields,
            ),
            None,
        )


APPLY_BATCH = 1000
"""Writes handed to a port per call (a multiple of Zendesk's bulk size of 100). A stop request
is honoured between batches, so one batch must finish in a few seconds: a window of ten
Zendesk bulk jobs does; PowerOffice, which has no bulk calls, gets a tenth of it."""

_OP_ORDER = {WriteOp.DELETE: 0, WriteOp.UPDATE: 1, WriteOp.CREATE: 2}


def _send_order(request: WriteRequest) -> tuple[int, int]:
    return (0 if request.kind is Kind.ORGANIZATION else 1, _OP_ORDER[request.op])


def _batches(requests: list[WriteRequest], system: System) -> Iterator[list[WriteRequest]]:
    """Sorted requests in batches of one kind and operation (so bulk calls stay full)."""
    size = APPLY_BATCH if system is System.ZENDESK else max(1, APPLY_BATCH // 10)
    for _, group in itertools.groupby(requests, key=lambda r: (r.kind, r.op)):
        same = list(group)
        for start in range(0, len(same), size):
            yield same[start : start + size]


def _filled(value: object, created: Mapping[str, str]) -> str | None:
    if isinstance(value, PendingId):
        return created.get(value.item_id)
    return value if isinstance(value, str) else None


__all__ = ["RunObserver", "RunReport", "StopCheck", "kinds_read", "plan_run", "run_sync"]
