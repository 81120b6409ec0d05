"""The choices the dataflow leaves open, with their defaults (docs/semantics.md, "Policies")."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta

import attrs


class ConflictPolicy(enum.StrEnum):
    """Who wins when both sides changed a property to different values."""

    NEWEST = "newest"  # the side whose record changed most recently; a tie goes to PowerOffice
    POWEROFFICE = "poweroffice"
    ZENDESK = "zendesk"
    MANUAL = "manual"  # hold both values until a person picks one


class FirstLinkPolicy(enum.StrEnum):
    """Who seeds a value that differs when a pair is synced for the first time (no base yet).

    Record-level timestamps say nothing about one field, so by default the accounting system,
    the system of record for names, e-mails and company membership, seeds the link.
    """

    POWEROFFICE = "poweroffice"
    ZENDESK = "zendesk"
    NEWEST = "newest"  # the side whose record changed most recently; a tie goes to PowerOffice


class NameCollisionPolicy(enum.StrEnum):
    """What to do when an organization would take a name another organization holds."""

    ADOPT = "adopt"  # link an unlinked holder when exactly one PowerOffice record carries the name
    REPORT = "report"  # never adopt: always report and skip


@attrs.frozen
class FlowPolicy:
    """Per-flow settings."""

    conflict: ConflictPolicy = ConflictPolicy.NEWEST
    first_link: FirstLinkPolicy = FirstLinkPolicy.POWEROFFICE
    """Who wins a value that differs on a pair's first sync (docs/semantics.md, decision 3b)."""
    create: bool = True
    """Create counterparts where the flow says so (``False`` turns creation off)."""
    propagate_deletes: bool = False
    delete_cap: float = 0.10
    """Stop delete propagation when a run would delete more than this share of a flow's links."""
    allow_moves: bool = False
    """Allow moving a contact person to another customer (otherwise reported as unsupported)."""


@attrs.frozen
class SyncPolicy:
    """Settings for a whole run: per-flow policies over defaults."""

    flows: Mapping[str, FlowPolicy] = attrs.field(factory=dict)
    default: FlowPolicy = FlowPolicy()
    name_collision: NameCollisionPolicy = NameCollisionPolicy.ADOPT
    full_reconcile_every: timedelta = timedelta(hours=24)

    def for_flow(self, flow_id: str) -> FlowPolicy:
        """The policy for ``flow_id`` (the default where none is set)."""
        return self.flows.get(flow_id, self.default)
