"""Laws of a person's decisions (dataflow decision 10) and of stopping a run (the engine's
``should_stop``), over random worlds and edit histories (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import talkcore.engine
from talkcore.dataflow import DEFAULT_DATAFLOW
from talkcore.policy import ConflictPolicy
from talkcore.records import Kind, System
from talkcore.state import keep_together, unlink

from .test_properties import EDIT, WORLD, edit, world_from
from .world import World


def _linked_pairs(world: World) -> set[tuple[str, str, str]]:
    state = world.store.state
    return {
        (flow.id, link.poweroffice_id, link.zendesk_id)
        for flow in DEFAULT_DATAFLOW
        for link in state.table(flow.id)
    }


@given(
    data=WORLD,
    pick=st.lists(st.integers(0, 50), max_size=4),
    history=st.lists(EDIT, max_size=6),
)
def test_an_unlinked_pair_is_never_linked_again_until_relinked(
    data: dict[str, Any], pick: list[int], history: list[tuple[str, int, Any]]
) -> None:
    world = world_from(data, ConflictPolicy.NEWEST)
    world.sync()
    pairs = sorted(_linked_pairs(world))
    if not pairs:
        return
    apart = {pairs[i % len(pairs)] for i in pick}
    state = world.store.state
    for flow, po_id, _ in apart:
        state = unlink(state, flow, po_id)
    world.store.state = state
    for op in history:
        edit(world, op)
        world.sync()
        assert not (_linked_pairs(world) & apart)
    world.sync(full=True)
    assert not (_linked_pairs(world) & apart)
    assert {(k.flow, k.poweroffice_id, k.zendesk_id) for k in world.store.state.kept_apart} == apart


def test_relinking_lets_the_next_sync_link_the_pair_again() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS")
    world.sync()
    flow = DEFAULT_DATAFLOW.flow("customers-organizations")
    org = world.org_of(flow.id, "1")
    world.store.state = unlink(world.store.state, flow.id, "1")
    world.sync(full=True)
    assert world.store.state.table(flow.id).for_poweroffice("1") is None
    assert len(world.orgs()) == 1  # kept apart, and no second organization either
    world.store.state = keep_together(world.store.state, flow, "1")
    world.sync()  # incremental: the relinked records are planned again
    assert world.org_of(flow.id, "1") == org
    with pytest.raises(KeyError, match="not kept apart"):
        keep_together(world.store.state, flow, "1")


@given(data=WORLD, stop_after=st.integers(0, 6))
def test_a_stopped_run_is_finished_by_the_next_as_if_never_stopped(
    data: dict[str, Any], stop_after: int
) -> None:
    """Stopping after any number of write batches, then syncing again, ends where one
    uninterrupted sync ends, and nothing is written after the stop was asked for."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(talkcore.engine, "APPLY_BATCH", 1)
        calm, stopped = (
            world_from(data, ConflictPolicy.NEWEST),
            world_from(data, ConflictPolicy.NEWEST),
        )
        calm.sync()
        asked: list[bool] = []

        def should_stop() -> bool:
            asked.append(True)
            return len(asked) > stop_after

        report = talkcore.engine.run_sync(
            stopped.po,
            stopped.zd,
            stopped.store,
            talkcore.engine.RunOptions(should_stop=should_stop, now=_NOW),
        )
        sent = len(stopped.po.applied) + len(stopped.zd.applied)
        assert sent == len(report.results) <= stop_after
        if report.interrupted:
            assert len(report.applied) <= report.planned_writes
            assert stopped.store.runs[-1]["interrupted"] is True
        again = stopped.sync()
        assert not again.interrupted
    assert _systems(stopped) == _systems(calm)
    assert not stopped.plan().plan.writes()


_NOW = datetime(2026, 6, 1, tzinfo=UTC)  # as World.sync runs


def _systems(world: World) -> dict[str, Any]:
    """Both systems' records by name/e-mail, ids aside (created ids differ between worlds)."""
    return {
        str(system): sorted(
            tuple(sorted((k, str(v)) for k, v in r.fields.items() if k != "organization_id"))
            for kind in (Kind.ORGANIZATION, Kind.USER, Kind.CUSTOMER, Kind.CONTACT_PERSON)
            if kind.system is system
            for r in (world.po if system is System.POWEROFFICE else world.zd)
            .records.get(kind, {})
            .values()
        )
        for system in System
    }
