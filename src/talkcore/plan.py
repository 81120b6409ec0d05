"""The plan: every link, write, conflict and problem a sync run found, each with its reason.

Items are values. Writes (``Create``, ``Update``, ``Delete``) are what the engine applies;
state items (``NewLink``, ``EndLink``, ``AdvanceBase``) change only the link state; reports
(``Conflict``, ``FirstLinkChoice``, ``Ambiguity``, ``ReferenceProblem``, ``NameCollision``,
``InvalidValue``, ``DeleteCapReached``, ``UnsupportedChange``) explain what was decided or not
done, and why.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Iterator, Mapping

import attrs

from talkcore.policy import ConflictPolicy, FirstLinkPolicy
from talkcore.records import FieldValue, Kind, RecordKey, System


@attrs.frozen
class PendingId:
    """The id of a record that the plan item ``item_id`` creates, known once it is applied."""

    item_id: str


WriteValue = FieldValue | PendingId


@attrs.frozen
class FieldChange:
    """One property written on one side, and why.

    ``base``, ``poweroffice`` and ``zendesk`` are the normalised values the merge compared
    (references in PowerOffice ids); ``value`` is what is written, in the target's terms.
    """

    property: str
    value: WriteValue
    rule: str
    base: FieldValue
    poweroffice: FieldValue
    zendesk: FieldValue
    flow_property: str
    """The PowerOffice name of the synced property (the key of its base)."""
    releases: FieldValue = None
    """The target's current value when the flow owns it (a reference its links translate), so
    the write may let go of it; ``None`` when the current value belongs to no flow and stays
    (a Zendesk user's membership in an organization no customer owns)."""


@attrs.frozen
class Create:
    """Create a counterpart of ``source`` in the other system."""

    id: str
    flow: str
    kind: Kind
    source: RecordKey
    origin_key: str
    fields: Mapping[str, WriteValue]
    rule: str = "counterpart"

    @property
    def system(self) -> System:
        """The system written to."""
        return self.kind.system


@attrs.frozen
class Update:
    """Write changed properties of a linked record."""

    id: str
    flow: str
    target: RecordKey
    poweroffice_id: str
    changes: tuple[FieldChange, ...]

    @property
    def system(self) -> System:
        """The system written to."""
        return self.target.system


@attrs.frozen
class Delete:
    """Delete ``target`` because its linked counterpart ``because`` is gone (opt-in)."""

    id: str
    flow: str
    target: RecordKey
    because: RecordKey
    rule: str = "delete_propagated"

    @property
    def system(self) -> System:
        """The system written to."""
        return self.target.system


@attrs.frozen
class NewLink:
    """Link two existing records. ``rule``: identity, adopt, origin_key or manual."""

    id: str
    flow: str
    poweroffice: RecordKey
    zendesk: RecordKey
    rule: str
    base: Mapping[str, FieldValue] = attrs.field(factory=dict)
    matched_on: FieldValue = None


@attrs.frozen
class EndLink:
    """End a link because ``gone`` was deleted (``rule`` = deleted) or deactivated (inactive)."""

    id: str
    flow: str
    poweroffice: RecordKey
    zendesk: RecordKey
    gone: RecordKey
    rule: str


@attrs.frozen
class AdvanceBase:
    """Both sides hold the same value: only the base moves.

    ``rule``: ``both_changed_equal`` (both moved to it) or ``first_link_equal`` (a pair's first
    sync found the two sides equal after normalisation: that value becomes the base).
    """

    id: str
    flow: str
    poweroffice_id: str
    property: str
    value: FieldValue
    rule: str = "both_changed_equal"


@attrs.frozen
class Conflict:
    """Both sides moved a property to different values; ``winner`` is who the policy picked."""

    id: str
    flow: str
    poweroffice: RecordKey
    zendesk: RecordKey
    property: str
    base: FieldValue
    poweroffice_value: FieldValue
    zendesk_value: FieldValue
    policy: ConflictPolicy
    winner: System | None
    rule: str

    @builtins.property
    def key(self) -> str:
        """Stable key of this conflict across runs (flow, PowerOffice id, property)."""
        return conflict_key(self.flow, self.poweroffice.id, self.property)


@attrs.frozen
class FirstLinkChoice:
    """A value a pair's first sync replaced: with no base, the two sides differed and one won.

    Only values that are replaced: filling a field empty on one side is just the update.

    Reported with both sides, each in its own system's terms (a reference as the PowerOffice
    party id and as the Zendesk organization id), so a person can see what was changed.
    ``rule``: ``first_link_<policy>`` when the flow's ``first_link`` policy decided,
    ``first_link_only_writable`` when only the winner's value could be written (the other was
    empty, or a reference that cannot be translated), whatever the policy.
    """

    id: str
    flow: str
    poweroffice: RecordKey
    zendesk: RecordKey
    property: str
    poweroffice_value: FieldValue
    zendesk_value: FieldValue
    policy: FirstLinkPolicy
    winner: System
    rule: str


def conflict_key(flow: str, poweroffice_id: str, prop: str) -> str:
    """The stable key naming one property of one linked pair, for the conflict queue."""
    return f"{flow}/{poweroffice_id}/{prop}"


@attrs.frozen
class Ambiguity:
    """A match that is not one-to-one: every candidate is named and nothing is linked."""

    id: str
    flow: str
    value: FieldValue
    candidates: tuple[RecordKey, ...]
    rule: str = "not_one_to_one"


@attrs.frozen
class ReferenceProblem:
    """A reference that cannot be translated: that one property is left untouched."""

    id: str
    flow: str
    record: RecordKey
    property: str
    value: FieldValue
    rule: str


@attrs.frozen
class UnsupportedChange:
    """A change the target cannot take as a field update (moving a contact person)."""

    id: str
    flow: str
    record: RecordKey
    property: str
    value: FieldValue
    rule: str = "move_not_enabled"


@attrs.frozen
class NameCollision:
    """An organization name another organization already holds; the record is skipped."""

    id: str
    flow: str
    record: RecordKey
    name: FieldValue
    holder: RecordKey
    rule: str


@attrs.frozen
class InvalidValue:
    """A value the target would not accept; that property of that record is skipped."""

    id: str
    flow: str
    record: RecordKey
    property: str
    value: FieldValue
    message: str
    rule: str = "invalid_value"


@attrs.frozen
class DeleteCapReached:
    """Delete propagation in a flow stopped: the run would delete too large a share of links."""

    id: str
    flow: str
    planned: int
    links: int
    cap: float
    rule: str = "delete_cap"


Write = Create | Update | Delete
StateChange = NewLink | EndLink | AdvanceBase
Report = (
    Conflict
    | FirstLinkChoice
    | Ambiguity
    | ReferenceProblem
    | UnsupportedChange
    | NameCollision
    | InvalidValue
    | DeleteCapReached
)
PlanItem = Write | StateChange | Report

ITEM_KINDS: Mapping[type, str] = {
    Create: "create",
    Update: "update",
    Delete: "delete",
    NewLink: "link",
    EndLink: "unlink",
    AdvanceBase: "advance_base",
    Conflict: "conflict",
    FirstLinkChoice: "first_link",
    Ambiguity: "ambiguity",
    ReferenceProblem: "reference_problem",
    UnsupportedChange: "unsupported_change",
    NameCollision: "name_collision",
    InvalidValue: "invalid_value",
    DeleteCapReached: "delete_cap_reached",
}
"""The stable, machine-readable name of each item type."""


def item_kind(item: PlanItem) -> str:
    """The stable name of ``item``'s type (``create``, ``conflict``, …)."""
    return ITEM_KINDS[type(item)]


@attrs.frozen
class Plan:
    """Everything one run would do, in the order it must be done (organizations before users)."""

    items: tuple[PlanItem, ...] = ()

    def __iter__(self) -> Iterator[PlanItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def writes(self, system: System | None = None) -> list[Write]:
        """The writes, in order, optionally only those to ``system``."""
        return [
            item
            for item in self.items
            if isinstance(item, Create | Update | Delete)
            and (system is None or item.system is system)
        ]

    def changes(self) -> list[Write | StateChange]:
        """Items that write to a system or change link state (empty at a fixpoint)."""
        return [item for item in self.items if isinstance(item, Write | StateChange)]

    def reports(self) -> list[Report]:
        """Items that only report."""
        return [item for item in self.items if not isinstance(item, Write | StateChange)]

    def summary(self) -> dict[str, int]:
        """Counts per item kind, every kind present (zero where none)."""
        counts = Counter(item_kind(item) for item in self.items)
        return {name: counts.get(name, 0) for name in ITEM_KINDS.values()}

    def by_id(self) -> dict[str, PlanItem]:
        """Items by their id."""
        return {item.id: item for item in self.items}
