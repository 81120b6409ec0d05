"""Settling a linked pair: the three-way merge of each synced property (``merging``'s decision
table), carried out — values translated, unique values claimed, writes, conflicts and reports
planned (docs/semantics.md, decisions 2 to 6).
"""

from __future__ import annotations

import attrs

from talkcore.context import UNTRANSLATABLE, Draft, Pair, as_value
from talkcore.dataflow import Flow, PropertyMap, Role
from talkcore.merging import HELD, Decision, Moved, Pick, decide, moved, newest
from talkcore.plan import (
    AdvanceBase,
    Conflict,
    FieldChange,
    FirstLinkChoice,
    InvalidValue,
    NameCollision,
    UnsupportedChange,
    Update,
    WriteValue,
    conflict_key,
)
from talkcore.policy import FlowPolicy
from talkcore.records import FieldValue, RecordKey, System
from talkcore.values import Datatype, clean, normalise


@attrs.frozen
class _Values:
    """One property of one pair, as the merge compares it (normalised; references in
    PowerOffice terms, or ``UNTRANSLATABLE``)."""

    flow: Flow
    policy: FlowPolicy
    pair: Pair
    prop: PropertyMap
    first: bool
    base: FieldValue
    poweroffice: FieldValue
    zendesk: object
    zendesk_raw: FieldValue

    @property
    def zendesk_shown(self) -> FieldValue:
        """The Zendesk value as reports show it: translated, or raw when it cannot be."""
        return self.zendesk_raw if self.zendesk is UNTRANSLATABLE else as_value(self.zendesk)

    def change(
        self, name: str, value: WriteValue, rule: str, releases: FieldValue = None
    ) -> FieldChange:
        """A write of ``value`` to the property ``name``, with what the merge compared."""
        return FieldChange(
            name,
            value,
            rule,
            self.base,
            self.poweroffice,
            self.zendesk_shown,
            self.prop.poweroffice,
            releases,
        )

    @property
    def zendesk_owned(self) -> FieldValue:
        """The Zendesk value when the flow owns it (a reference its links translate), so a
        write may let go of it; ``None`` when it belongs to no flow and must stay."""
        return (
            self.zendesk_raw
            if self.prop.reference is not None and isinstance(self.zendesk, str)
            else None
        )


def merge_pair(draft: Draft, flow: Flow, fpolicy: FlowPolicy, pair: Pair) -> None:
    """Merge every synced property of ``pair``; plan an update per side that changes."""
    to_zd: list[FieldChange] = []
    to_po: list[FieldChange] = []
    base = pair.link.base
    po_fields, zd_fields = pair.poweroffice.fields, pair.zendesk.fields
    for prop in flow.properties:
        # Inline, as this runs for every property of every linked pair of a full plan.
        po_val = normalise(po_fields.get(prop.poweroffice), prop.compare_as)
        zd_raw = normalise(zd_fields.get(prop.zendesk), prop.compare_as)
        zd_val = zd_raw if prop.reference is None else draft.poweroffice_id(prop, zd_raw)
        first = prop.poweroffice not in base
        if not first and po_val == zd_val == base[prop.poweroffice]:
            continue  # the common case: nothing moved
        values = _Values(
            flow, fpolicy, pair, prop, first, base.get(prop.poweroffice), po_val, zd_val, zd_raw
        )
        written = _merge_property(draft, values)
        if written is not None:
            (to_zd if written[0] is System.ZENDESK else to_po).append(written[1])
    for changes, record in ((to_zd, pair.zendesk), (to_po, pair.poweroffice)):
        if not changes:
            continue
        values_written = {c.property: c.value for c in changes if isinstance(c.value, str)}
        if values_written:
            draft.write(record.key, values_written)
        draft.items.append(
            Update(
                f"update:{flow.id}:{record.key}",
                flow.id,
                record.key,
                pair.poweroffice.id,
                tuple(changes),
            )
        )


def _merge_property(draft: Draft, v: _Values) -> tuple[System, FieldChange] | None:
    """The decision table's verdict on one property, carried out: what is written where."""
    differ = v.poweroffice != v.zendesk
    what = moved(
        first=v.first,
        base=v.base,
        poweroffice=v.poweroffice,
        zendesk=v.zendesk,
        writable=_first_writable(draft, v) if v.first and differ else (True, True),
    )
    decision = decide(what, v.policy)
    if decision.pick is Pick.NOBODY:
        return None
    if decision.pick is Pick.ADVANCE:
        flow, po_id, prop = v.flow.id, v.pair.poweroffice.id, v.prop.poweroffice
        draft.items.append(
            AdvanceBase(
                f"advance:{flow}:{po_id}:{prop}", flow, po_id, prop, v.poweroffice, decision.rule
            )
        )
        return None
    if decision.pick is Pick.UNWRITABLE:
        _zendesk_value(draft, v)  # reports why it cannot be written
        return None
    chosen = _winner(draft, v, what, decision)
    if chosen is None:
        return None
    winner, rule = chosen
    written = (
        _copy_to_zendesk(draft, v, rule)
        if winner is System.POWEROFFICE
        else _copy_to_poweroffice(draft, v, rule)
    )
    if written is not None and v.first:
        _first_link_replaced(draft, v, winner, rule)
    return written


def _first_writable(draft: Draft, v: _Values) -> tuple[bool, bool]:
    """On a first sync, whether each side's value can be written to the other.

    An empty value is never written, so it counts as one that cannot be (a user in no
    organization would otherwise take a contact person's party away).
    """
    po_ok = v.poweroffice is not None and (
        not v.prop.is_reference or draft.zendesk_id(v.prop, v.poweroffice) is not None
    )
    zd_ok = v.zendesk is not None and v.zendesk is not UNTRANSLATABLE
    return po_ok, zd_ok


def _winner(draft: Draft, v: _Values, what: Moved, decision: Decision) -> tuple[System, str] | None:
    """The side ``decision`` picks (times for ``newest``, a person's pick for ``manual``);
    a conflict is reported whoever wins, and held when nobody does."""
    pair = v.pair
    winner: System | None
    if decision.pick is Pick.POWEROFFICE:
        winner = System.POWEROFFICE
    elif decision.pick is Pick.ZENDESK:
        winner = System.ZENDESK
    elif decision.pick is Pick.NEWEST:
        winner = newest(pair.poweroffice.modified, pair.zendesk.modified)
    else:
        winner = _picked_by_hand(draft, v)
    rule = decision.rule if winner is not None else HELD
    if what is Moved.BOTH:
        key = conflict_key(v.flow.id, pair.poweroffice.id, v.prop.poweroffice)
        draft.items.append(
            Conflict(
                f"conflict:{key}",
                v.flow.id,
                pair.poweroffice.key,
                pair.zendesk.key,
                v.prop.poweroffice,
                v.base,
                v.poweroffice,
                v.zendesk_shown,
                v.policy.conflict,
                winner,
                rule,
            )
        )
    return None if winner is None else (winner, rule)


def _picked_by_hand(draft: Draft, v: _Values) -> System | None:
    """A person's standing pick for this conflict; none once a side moved since they picked."""
    key = conflict_key(v.flow.id, v.pair.poweroffice.id, v.prop.poweroffice)
    winner = draft.inputs.state.resolutions.get(key)
    held = draft.inputs.state.conflicts.get(key)
    if held is not None and (held.poweroffice_value, held.zendesk_value) != (
        v.poweroffice,
        v.zendesk_shown,
    ):
        return None  # a side moved since the person decided: decide again
    return winner


def _copy_to_zendesk(draft: Draft, v: _Values, rule: str) -> tuple[System, FieldChange] | None:
    value = _zendesk_value(draft, v)
    if value is None:
        return None
    if isinstance(value, str) and v.prop.role.unique and not _claim_for(draft, v, value):
        return None
    return System.ZENDESK, v.change(v.prop.zendesk, value, rule, v.zendesk_owned)


def _claim_for(draft: Draft, v: _Values, value: str) -> bool:
    """Claim a unique value for the pair's Zendesk record; report it when another holds it."""
    zd, po_key, prop, flow = v.pair.zendesk, v.pair.poweroffice.key, v.prop, v.flow.id
    holder = draft.claim(zd.kind, prop, value, zd.key, zd)
    if holder is None:
        return True
    if prop.role is Role.NAME:
        draft.items.append(
            NameCollision(
                f"collision:{flow}:{po_key}", flow, po_key, value, holder, "rename_name_taken"
            )
        )
    else:
        what = "the e-mail address" if prop.compare_as is Datatype.EMAIL else "the value"
        draft.items.append(
            InvalidValue(
                f"invalid:{flow}:{po_key}:{prop.poweroffice}",
                flow,
                po_key,
                prop.poweroffice,
                value,
                f"{what} is held by {holder}",
                f"{prop.zendesk}_taken",
            )
        )
    return False


def _copy_to_poweroffice(draft: Draft, v: _Values, rule: str) -> tuple[System, FieldChange] | None:
    zd, prop, flow = v.pair.zendesk, v.prop, v.flow
    if v.zendesk is UNTRANSLATABLE:
        why = _why_untranslatable(draft, prop, v.zendesk_raw)
        draft.reference_problem(flow, zd.key, prop.zendesk, v.zendesk_raw, why)
        return None
    if prop.is_reference and not v.policy.allow_moves:
        po_key = v.pair.poweroffice.key
        draft.items.append(
            UnsupportedChange(
                f"unsupported:{flow.id}:{po_key}:{prop.poweroffice}",
                flow.id,
                po_key,
                prop.poweroffice,
                as_value(v.zendesk),
            )
        )
        return None
    if prop.is_reference:
        written = as_value(v.zendesk)
    else:
        written = clean(zd.get(prop.zendesk))
        if not draft.writable(flow, zd.key, prop.zendesk, written, prop.compare_as):
            return None
    return System.POWEROFFICE, v.change(prop.poweroffice, written, rule)


def _first_link_replaced(draft: Draft, v: _Values, winner: System, rule: str) -> None:
    """Report a value the first sync replaces, with both sides in their own terms.

    Filling an empty field replaces nothing, so it is not reported (the update shows it):
    on a lived-in account that would be one report per record without an organization.
    """
    if (v.zendesk_raw if winner is System.POWEROFFICE else v.poweroffice) is None:
        return
    pair, prop = v.pair, v.prop.poweroffice
    draft.items.append(
        FirstLinkChoice(
            f"first-link:{conflict_key(v.flow.id, pair.poweroffice.id, prop)}",
            v.flow.id,
            pair.poweroffice.key,
            pair.zendesk.key,
            prop,
            v.poweroffice,
            v.zendesk_raw,
            v.policy.first_link,
            winner,
            rule,
        )
    )


# -- references -----------------------------------------------------------------------------


def _zendesk_value(draft: Draft, v: _Values) -> WriteValue | None:
    """The value to write to Zendesk for the PowerOffice side, or ``None`` after reporting why
    it cannot be written."""
    prop, po = v.prop, v.pair.poweroffice
    if not prop.is_reference:
        written = clean(po.get(prop.poweroffice))
        if not draft.writable(v.flow, po.key, prop.poweroffice, written, prop.compare_as):
            return None
        return written
    if v.poweroffice is not None:
        found = draft.zendesk_id(prop, v.poweroffice)
        if found is not None:
            return found
    why = _why_no_zendesk_id(draft, prop, v.poweroffice)
    draft.reference_problem(v.flow, po.key, prop.poweroffice, v.poweroffice, why)
    return None


def _why_no_zendesk_id(draft: Draft, prop: PropertyMap, po_id: FieldValue) -> str:
    """Why a PowerOffice reference has no Zendesk counterpart (the rule of its report)."""
    assert prop.reference is not None
    if po_id is None:
        return "empty_reference"
    dataflow = draft.inputs.dataflow
    for ref_flow in prop.reference.flows:
        flow = dataflow.flow(ref_flow)
        if draft.inputs.po.get(RecordKey.of(flow.poweroffice_kind, po_id)) is not None:
            return f"{flow.poweroffice_kind}_has_no_{flow.zendesk_kind}"
    for kind in prop.reference.unsynced:
        if draft.inputs.po.get(RecordKey.of(kind, po_id)) is not None:
            return f"{prop.reference.names}_is_{kind}"
    return f"{prop.reference.names}_unknown"


def _why_untranslatable(draft: Draft, prop: PropertyMap, zd_id: FieldValue) -> str:
    """Why a Zendesk reference names no record linked in the flows it may point into."""
    dataflow = draft.inputs.dataflow
    kind = dataflow.flow(prop.reference_flows[0]).zendesk_kind
    record = draft.inputs.zd.get(RecordKey.of(kind, zd_id or ""))
    if record is None:
        return f"{kind}_unknown"
    for flow in dataflow.sharing_zendesk_kind(kind):
        if flow.id in prop.reference_flows:
            continue
        if draft.inputs.state.table(flow.id).for_zendesk(record.id):
            return f"{kind}_linked_in_{flow.id}"
    return f"{kind}_not_linked"
