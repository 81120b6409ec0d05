"""The full reconcile, streamed (issue 13): when it streams, what it keeps, and what it finds.

The law that a streamed full plan is the whole full plan is a hypothesis property
(``test_properties.check_streamed_full_plan_equals_the_whole_one``); these tests pin the
rules around it: the basis it needs, what a stopped run does to it, and the read's diff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import attrs

from adapters.memory import MemoryStateStore
from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS
from talkcore.engine import RunReport, run_sync
from talkcore.plan import EndLink
from talkcore.policy import ConflictPolicy, FlowPolicy, SyncPolicy
from talkcore.records import (
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordKey,
    RecordProblem,
    Snapshot,
    System,
)
from talkcore.state import SyncState
from talkcore.streaming import plan_basis, stream_full_read

from .test_properties import Heard
from .world import World, linked_contact

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def synced_full(world: World, policy: SyncPolicy | None = None) -> tuple[Heard, RunReport]:
    """A full sync of ``world`` (under ``policy`` when given), and what it was heard doing."""
    heard = Heard()
    options = world.options(full=True, observer=heard)
    if policy is not None:
        options = attrs.evolve(options, policy=policy)
    return heard, run_sync(world.po, world.zd, world.store, options)


def test_a_full_run_after_the_first_streams_and_finds_what_changed() -> None:
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Norge AS")
    heard, _ = synced_full(world)
    assert heard.streamed()
    reads = [data for name, data in heard.events if name == "read.done"]
    # Only the renamed customer differs from the mirror; the rest was read and let go.
    assert {(d["system"], d["differ"], d["removed"]) for d in reads} == {
        ("poweroffice", 1, 0),
        ("zendesk", 0, 0),
    }
    organization = world.org_of(CUSTOMERS, "1")
    assert world.zd.records[Kind.ORGANIZATION][organization].get("name") == "Acme Norge AS"
    # Sync twice: the second full run plans nothing.
    heard, again = synced_full(world)
    assert heard.streamed()
    assert len(again.plan) == 0


def test_a_record_deleted_outright_is_found_by_the_streamed_full_read() -> None:
    """A hard delete no change read can see: the full read's absence ends the link."""
    world = World()
    linked_contact(world)
    world.zd.remove(Kind.USER, "500")
    heard, report = synced_full(world)
    assert heard.streamed()
    ended = [i for i in report.plan if isinstance(i, EndLink)]
    assert [(i.flow, i.poweroffice.id, i.rule) for i in ended] == [
        (CONTACT_PERSONS, "100", "deleted")
    ]
    assert RecordKey.of(Kind.USER, "500") not in world.store.records(
        [RecordKey.of(Kind.USER, "500")]
    )
    assert world.store.state.table(CONTACT_PERSONS).for_poweroffice("100") is None


def test_a_changed_policy_plans_the_whole_mirrors_once_then_streams_again() -> None:
    world = World()
    linked_contact(world)
    assert world.store.state.full_plan_basis == plan_basis(world.dataflow, world.policy)
    manual = SyncPolicy(default=FlowPolicy(conflict=ConflictPolicy.MANUAL))
    heard, _ = synced_full(world, manual)
    assert not heard.streamed()  # every record is planned under the new policy
    assert world.store.state.full_plan_basis == plan_basis(world.dataflow, manual)
    heard, _ = synced_full(world, manual)
    assert heard.streamed()


def test_the_basis_ignores_how_often_the_full_reconcile_runs() -> None:
    world = World()
    hourly = SyncPolicy(full_reconcile_every=timedelta(hours=1))
    assert plan_basis(world.dataflow, hourly) == plan_basis(world.dataflow, SyncPolicy())
    moves = SyncPolicy(flows={CONTACT_PERSONS: FlowPolicy(allow_moves=True)})
    assert plan_basis(world.dataflow, moves) != plan_basis(world.dataflow, SyncPolicy())


def test_a_stopped_run_makes_the_next_full_run_plan_every_record() -> None:
    """A stopped run's reads are in the mirror but were not all planned: a streamed read
    would find them equal to the mirror and never plan them."""
    world = World()
    linked_contact(world)
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Norge AS")
    asked = iter([False])  # not before planning: at the first write
    stopped = run_sync(
        world.po,
        world.zd,
        world.store,
        world.options(full=True, should_stop=lambda: next(asked, True)),
    )
    assert stopped.interrupted and not stopped.applied
    # The rename was read and saved in the mirror, but its write was never sent.
    saved = world.store.records([RecordKey.of(Kind.CUSTOMER, "1")])
    assert saved[RecordKey.of(Kind.CUSTOMER, "1")].get("Name") == "Acme Norge AS"
    assert world.store.state.full_plan_basis is None
    heard, _ = synced_full(world)
    assert not heard.streamed()
    organization = world.org_of(CUSTOMERS, "1")
    assert world.zd.records[Kind.ORGANIZATION][organization].get("name") == "Acme Norge AS"
    assert world.store.state.full_plan_basis is not None


def test_whole_mirrors_plans_every_record_even_when_it_could_stream() -> None:
    world = World()
    linked_contact(world)
    heard, _ = synced_full(world)
    assert heard.streamed()
    heard = Heard()
    report = run_sync(
        world.po,
        world.zd,
        world.store,
        world.options(full=True, whole_mirrors=True, observer=heard),
    )
    assert report.full and not heard.streamed()


# -- the read's diff ---------------------------------------------------------------------------


def customer(rid: str, name: str, modified: datetime = T0) -> Record:
    return Record(RecordKey.of(Kind.CUSTOMER, rid), {"Name": name}, modified)


def store_of(*records: Record) -> MemoryStateStore:
    store = MemoryStateStore()
    store.save(SyncState(), [Snapshot.of(System.POWEROFFICE, records), Snapshot(System.ZENDESK)])
    return store


def paged(
    pages: Sequence[Sequence[Record]],
    *,
    problems: tuple[RecordProblem, ...] = (),
    cursors: Mapping[str, str] | None = None,
) -> ReadPages:
    yield from pages
    full = not problems
    return ReadResult(
        System.POWEROFFICE, frozenset({Kind.CUSTOMER}), (), full, cursors or {}, problems
    )


def test_the_diff_keeps_what_differs_and_finds_what_is_gone() -> None:
    store = store_of(customer("1", "A"), customer("2", "B"), customer("3", "C"))
    later = T0 + timedelta(hours=1)
    streamed = stream_full_read(
        store,
        paged(
            [[customer("1", "A"), customer("2", "B2", later)], [customer("4", "D")]],
            cursors={"c": "x"},
        ),
    )
    assert {r.id: r.get("Name") for r in streamed.read.records} == {"2": "B2", "4": "D"}
    assert streamed.removed == {RecordKey.of(Kind.CUSTOMER, "3")}
    assert streamed.complete == {Kind.CUSTOMER}
    assert streamed.count == 3
    assert not streamed.read.full and streamed.read.cursors == {"c": "x"}


def test_a_record_read_twice_keeps_its_newest_version() -> None:
    """Pages may repeat a record as it changes: an older copy read later never wins, a newer
    one does, whether the first copy differed from the mirror or not."""
    later, latest = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    store = store_of(customer("1", "A"), customer("2", "B"))
    streamed = stream_full_read(
        store,
        paged(
            [
                [customer("1", "A1", later), customer("2", "B")],
                [customer("1", "A", T0), customer("2", "B2", latest)],
            ]
        ),
    )
    assert {r.id: r.get("Name") for r in streamed.read.records} == {"1": "A1", "2": "B2"}
    # A newer copy equal to the mirror takes a changed one back out.
    streamed = stream_full_read(store, paged([[customer("1", "A1", T0)], [customer("1", "A", T0)]]))
    assert streamed.read.records == ()


def test_a_read_with_problems_takes_no_absence_for_a_delete() -> None:
    store = store_of(customer("1", "A"), customer("2", "B"))
    problem = RecordProblem(System.POWEROFFICE, Kind.CUSTOMER, "2", "Name", "not a string")
    streamed = stream_full_read(store, paged([[customer("1", "A")]], problems=(problem,)))
    assert streamed.removed == frozenset()
    assert streamed.complete == frozenset()
    assert streamed.read.problems == (problem,)
