"""The three-way merge of one property as a decision table (docs/semantics.md, "Merging").

The planner compares a linked pair's two values with the property's base and names what
happened (``Moved``); the table maps that, with the flow's policy where it matters, to who is
copied and the rule that said so (``Decision``). Nothing here reads records or state: the
planner turns ``Pick.NEWEST`` and ``Pick.BY_HAND`` into a side using record times and a
person's decisions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from talkcore.policy import ConflictPolicy, FirstLinkPolicy, FlowPolicy
from talkcore.records import FieldValue, System


class Moved(enum.Enum):
    """What happened to one property of a linked pair since its base."""

    NOTHING = "nothing"
    """Both sides hold the base."""
    BOTH_ALIKE = "both_alike"
    """Both moved, to the same value."""
    POWEROFFICE = "poweroffice"
    """Only PowerOffice moved."""
    ZENDESK = "zendesk"
    """Only Zendesk moved."""
    BOTH = "both"
    """Both moved, to different values: a conflict."""
    FIRST_ALIKE = "first_alike"
    """No base yet (the pair's first sync) and the two values are equal."""
    FIRST = "first"
    """No base yet, the values differ, and either could be written."""
    FIRST_ONLY_POWEROFFICE = "first_only_poweroffice"
    """No base yet, the values differ, and only PowerOffice's can be written."""
    FIRST_ONLY_ZENDESK = "first_only_zendesk"
    """No base yet, the values differ, and only Zendesk's can be written."""
    FIRST_NEITHER = "first_neither"
    """No base yet, the values differ, and neither can be written."""


class Pick(enum.Enum):
    """Whose value a decision takes."""

    NOBODY = "nobody"
    """Nothing to do."""
    ADVANCE = "advance"
    """The sides agree: only the base moves."""
    UNWRITABLE = "unwritable"
    """Nothing can be written: the PowerOffice side's reason is reported."""
    POWEROFFICE = "poweroffice"
    ZENDESK = "zendesk"
    NEWEST = "newest"
    """The side whose record changed last (a tie goes to PowerOffice)."""
    BY_HAND = "by_hand"
    """A person's pick for this conflict, if one is standing; else the conflict is held."""


@attrs.frozen
class Decision:
    """Who is copied, and the rule that said so (the rule every plan item carries)."""

    pick: Pick
    rule: str


def moved(
    *,
    first: bool,
    base: FieldValue,
    poweroffice: object,
    zendesk: object,
    writable: tuple[bool, bool],
) -> Moved:
    """Name what happened, given the normalised values (references in PowerOffice terms).

    ``first`` says the pair has no base for the property yet; ``writable`` says, for a first
    sync, whether each side's value can be written to the other (a non-empty value, a reference
    that translates).
    """
    if poweroffice == zendesk:
        if first:
            return Moved.FIRST_ALIKE
        return Moved.NOTHING if base == poweroffice else Moved.BOTH_ALIKE
    if first:
        return _FIRST_BY_WRITABLE[writable]
    if poweroffice != base and zendesk != base:
        return Moved.BOTH
    return Moved.POWEROFFICE if poweroffice != base else Moved.ZENDESK


_FIRST_BY_WRITABLE: Mapping[tuple[bool, bool], Moved] = {
    (True, True): Moved.FIRST,
    (True, False): Moved.FIRST_ONLY_POWEROFFICE,
    (False, True): Moved.FIRST_ONLY_ZENDESK,
    (False, False): Moved.FIRST_NEITHER,
}
"""A value that cannot be written never wins over one that can, whatever the policy."""


_FIXED: Mapping[Moved, Decision] = {
    Moved.NOTHING: Decision(Pick.NOBODY, "unchanged"),
    Moved.BOTH_ALIKE: Decision(Pick.ADVANCE, "both_changed_equal"),
    Moved.FIRST_ALIKE: Decision(Pick.ADVANCE, "first_link_equal"),
    Moved.POWEROFFICE: Decision(Pick.POWEROFFICE, "poweroffice_changed"),
    Moved.ZENDESK: Decision(Pick.ZENDESK, "zendesk_changed"),
    Moved.FIRST_ONLY_POWEROFFICE: Decision(Pick.POWEROFFICE, "first_link_only_writable"),
    Moved.FIRST_ONLY_ZENDESK: Decision(Pick.ZENDESK, "first_link_only_writable"),
    Moved.FIRST_NEITHER: Decision(Pick.UNWRITABLE, "first_link_unwritable"),
}
"""Decisions no policy changes."""

_BY_CONFLICT_POLICY: Mapping[ConflictPolicy, Decision] = {
    ConflictPolicy.POWEROFFICE: Decision(Pick.POWEROFFICE, "conflict_poweroffice_wins"),
    ConflictPolicy.ZENDESK: Decision(Pick.ZENDESK, "conflict_zendesk_wins"),
    ConflictPolicy.NEWEST: Decision(Pick.NEWEST, "conflict_newest_wins"),
    ConflictPolicy.MANUAL: Decision(Pick.BY_HAND, "conflict_resolved_by_hand"),
}
"""Both moved to different values (``Moved.BOTH``): the flow's ``conflict`` policy decides."""

_BY_FIRST_LINK_POLICY: Mapping[FirstLinkPolicy, Decision] = {
    FirstLinkPolicy.POWEROFFICE: Decision(Pick.POWEROFFICE, "first_link_poweroffice"),
    FirstLinkPolicy.ZENDESK: Decision(Pick.ZENDESK, "first_link_zendesk"),
    FirstLinkPolicy.NEWEST: Decision(Pick.NEWEST, "first_link_newest"),
}
"""A first sync where both values could be written (``Moved.FIRST``): ``first_link`` decides."""

HELD = "conflict_held"
"""The rule of a conflict left for a person (manual policy, no standing pick)."""


def decide(what: Moved, policy: FlowPolicy) -> Decision:
    """The decision for ``what`` happened, under the flow's ``policy``."""
    if what is Moved.BOTH:
        return _BY_CONFLICT_POLICY[policy.conflict]
    if what is Moved.FIRST:
        return _BY_FIRST_LINK_POLICY[policy.first_link]
    return _FIXED[what]


def newest(poweroffice: datetime | None, zendesk: datetime | None) -> System:
    """The side that changed last; a tie (or an unknown time) goes to PowerOffice."""
    if zendesk is not None and (poweroffice is None or zendesk > poweroffice):
        return System.ZENDESK
    return System.POWEROFFICE


__all__ = ["HELD", "Decision", "Moved", "Pick", "decide", "moved", "newest"]
