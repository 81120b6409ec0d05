"""The engine's orchestration: batches, progress events, dry runs, read problems."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import talkcore.engine
from talkcore.engine import RunOptions, plan_run, run_sync
from talkcore.records import Kind

from .world import World


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def event(self, name: str, data: Mapping[str, object]) -> None:
        self.events.append((name, dict(data)))


def test_writes_go_in_batches_with_progress_and_renames_before_creates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(talkcore.engine, "APPLY_BATCH", 2)
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme")
    world.sync()
    world.po.edit(Kind.CUSTOMER, "1", Name="Acme Holding")
    for i in range(2, 6):
        world.po.put(Kind.CUSTOMER, i, Name=f"Kunde {i}")
    recorder = Recorder()
    run_sync(world.po, world.zd, world.store, RunOptions(observer=recorder))
    progress = [d["done"] for name, d in recorder.events if name == "apply.progress"]
    assert progress == [1, 2, 3, 4, 5]  # moved by every write the port settles, not per batch
    ops = [w.op.value for w in world.zd.applied]
    assert ops == ["create", "update", "create", "create", "create", "create"]


def test_a_dry_run_writes_nothing_and_saves_nothing() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme")
    report = plan_run(world.po, world.zd, world.store)
    assert report.dry_run
    assert len(report.plan.writes()) == 1
    assert world.zd.applied == []
    assert world.store.saves == 0


def test_a_name_one_flow_frees_is_taken_by_another_flows_create_in_the_same_run() -> None:
    """Renames of every flow go before creates of every flow: a department renamed away from
    "Acme" frees the name for a new customer "Acme" (semantics.md, "Order of writes")."""
    world = World()
    world.po.put(Kind.DEPARTMENT, 20, Name="Acme")
    world.sync()
    world.po.edit(Kind.DEPARTMENT, "20", Name="Avdeling Oslo")
    world.po.put(Kind.CUSTOMER, 1, Name="Acme", IsPerson="false")
    report = world.sync()
    assert report.failures == []
    assert sorted(world.orgs().values()) == ["Acme", "Avdeling Oslo"]
    assert world.sync().plan.changes() == []


def test_a_write_referring_to_a_created_record_waits_for_its_create() -> None:
    world = World()
    world.po.put(Kind.CUSTOMER, 1, Name="Acme", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no")
    plan = world.plan().plan
    stages = [[w.id for w in stage] for stage in talkcore.engine.send_stages(plan.writes())]
    assert stages == [
        ["create:customers-organizations:1"],
        ["update:contact-persons-users:zendesk:user:500"],
    ]
