"""A small world for core tests: both in-memory systems, a state store and a sync helper."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from adapters.memory import (
    Clock,
    MemoryStateStore,
    MemorySystem,
    memory_poweroffice,
    memory_zendesk,
)
from talkcore.dataflow import DEFAULT_DATAFLOW, Dataflow
from talkcore.engine import RunOptions, RunReport, plan_run, run_sync
from talkcore.plan import PlanItem
from talkcore.policy import SyncPolicy
from talkcore.records import Kind


@attrs.define
class World:
    """PowerOffice and Zendesk fakes sharing one clock, and a memory state store."""

    clock: Clock = attrs.field(factory=Clock)
    po: MemorySystem = attrs.field(init=False)
    zd: MemorySystem = attrs.field(init=False)
    store: MemoryStateStore = attrs.field(factory=MemoryStateStore)
    policy: SyncPolicy = attrs.field(factory=SyncPolicy)
    dataflow: Dataflow = DEFAULT_DATAFLOW

    def __attrs_post_init__(self) -> None:
        self.po = memory_poweroffice(self.clock)
        self.zd = memory_zendesk(self.clock)
        # The store's look-ups by identity value, name and origin key follow the dataflow.
        self.store.dataflow = self.dataflow

    def sync(self, *, full: bool = False) -> RunReport:
        """One sync run."""
        return run_sync(self.po, self.zd, self.store, self.options(full=full))

    def plan(self) -> RunReport:
        """A dry run."""
        return plan_run(self.po, self.zd, self.store, self.options())

    def options(self, **changes: Any) -> RunOptions:
        """This world's run options (its dataflow, policy and a fixed time), with ``changes``."""
        fixed = RunOptions(self.dataflow, self.policy, now=datetime(2026, 6, 1, tzinfo=UTC))
        return attrs.evolve(fixed, **changes)

    def org_of(self, flow: str, po_id: str) -> str:
        """The Zendesk id linked to a PowerOffice record in ``flow``."""
        link = self.store.state.table(flow).for_poweroffice(po_id)
        assert link is not None, f"no link for {po_id} in {flow}"
        return link.zendesk_id

    def orgs(self) -> dict[str, str | None]:
        """Zendesk organization names by id."""
        return {i: r.get("name") for i, r in self.zd.records.get(Kind.ORGANIZATION, {}).items()}


def of_type(items: object, cls: type) -> list[PlanItem]:
    """The plan items of one type."""
    return [i for i in items if isinstance(i, cls)]  # type: ignore[attr-defined]


class Crash(Exception):
    """A process dying mid-run (raised from a fake's ``after_write``)."""


def linked_contact(world: World) -> None:
    """Customer 1 with contact person 100 matched to Zendesk user 500, synced once."""
    world.po.put(Kind.CUSTOMER, 1, Name="Acme AS", IsPerson="false")
    world.po.put(Kind.CONTACT_PERSON, 100, emailAddress="ola@acme.no", partyId="1")
    world.zd.put(Kind.USER, 500, email="ola@acme.no", name="Ola")
    world.sync()
