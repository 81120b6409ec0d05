"""Planning counterparts (docs/semantics.md, decisions 5 and 7): an unlinked record is linked to
the record carrying its origin key or, for a unique name, to the one holding that name (adopted),
or its counterpart's create is planned, carrying every synced property.
"""

from __future__ import annotations

from collections.abc import Iterable

from talkcore.context import Draft, id_order
from talkcore.dataflow import Flow, PropertyMap
from talkcore.plan import Create, NameCollision, PendingId, WriteValue
from talkcore.policy import NameCollisionPolicy
from talkcore.records import IndexSpec, Kind, Record, RecordKey, System
from talkcore.values import UNIQUE_KEYS, clean, origin_index_key


def origin_key(source: RecordKey) -> str:
    """The stable key a created record carries, naming where it came from: ``str(source)``."""
    return str(source)


def carrier_spec(flow: Flow, prop: PropertyMap) -> IndexSpec:
    """The index of the PowerOffice records carrying a flow's unique name (for adoption)."""
    return (flow.poweroffice_kind, prop.poweroffice, UNIQUE_KEYS[prop.compare_as])


def counterparts_in_zendesk(draft: Draft, flow: Flow, po_records: Iterable[Record]) -> None:
    """Link each unlinked PowerOffice record to the Zendesk record carrying its origin key or
    its name, or plan its counterpart's create."""
    table = draft.inputs.state.table(flow.id)
    for po in sorted(po_records, key=lambda r: id_order(r.id)):
        if not po.active or not flow.takes_part(po) or table.for_poweroffice(po.id):
            continue
        if po.id in draft.linked[flow.id]:
            continue
        found = _by_origin(draft, flow, po)
        if found is not None:
            draft.add_link(flow, po, found, "origin_key", {})
            continue
        fields = _named_create_fields(draft, flow, po)
        if fields is None:
            continue
        fields.update(_create_fields(draft, flow, po, skip=flow.name_property))
        create = Create(
            f"create:{flow.id}:{po.id}",
            flow.id,
            flow.zendesk_kind,
            po.key,
            origin_key(po.key),
            fields,
        )
        draft.items.append(create)
        draft.creating(flow.id, po.id, create.id)


def _by_origin(draft: Draft, flow: Flow, po: Record) -> Record | None:
    """The free Zendesk record carrying ``po``'s origin key, if the flow can find one."""
    field = flow.zendesk_origin_field
    if field is None:
        return None
    key = origin_index_key(origin_key(po.key)) or ""
    found = draft.inputs.zd.lookup(flow.zendesk_kind, field, origin_index_key, key)
    if not found or draft.inputs.state.is_kept_apart(flow.id, po.id, found[0].id):
        return None  # none, or a person unlinked this pair: its origin key does not link it
    record = found[0]
    return record if record.active and not draft.linked_elsewhere(record) else None


def _named_create_fields(draft: Draft, flow: Flow, po: Record) -> dict[str, WriteValue] | None:
    """The name a create takes, claimed; ``None`` when the record is adopted or cannot be
    created (an invalid name, a name another holds)."""
    prop = flow.name_property
    if prop is None:
        return {}
    name = clean(po.get(prop.poweroffice))
    if not draft.writable(flow, po.key, prop.poweroffice, name, prop.compare_as):
        return None
    assert name is not None
    holder = draft.claim(flow.zendesk_kind, prop, name, po.key, None)
    if holder is None:
        return {prop.zendesk: name}
    held = draft.inputs.zd.get(holder)
    if held is not None and _adoptable(draft, flow, po, prop, held):
        draft.add_link(flow, po, held, "adopt", {})
        return None
    rule = "name_taken" if holder.system is System.ZENDESK else "name_planned"
    draft.items.append(
        NameCollision(f"collision:{flow.id}:{po.key}", flow.id, po.key, name, holder, rule)
    )
    return None


def _adoptable(draft: Draft, flow: Flow, po: Record, prop: PropertyMap, held: Record) -> bool:
    """Whether ``po`` may adopt the Zendesk record holding its name (semantics.md, decision 5)."""
    if draft.inputs.policy.name_collision is not NameCollisionPolicy.ADOPT:
        return False
    if draft.inputs.state.is_kept_apart(flow.id, po.id, held.id):
        return False  # a person unlinked this pair: no adopting it
    key = UNIQUE_KEYS[prop.compare_as](po.get(prop.poweroffice)) or ""
    return len(_name_carriers(draft, held.kind, key)) == 1 and not draft.linked_elsewhere(held)


def _name_carriers(draft: Draft, kind: Kind, key: str) -> list[RecordKey]:
    """Live PowerOffice records of every flow naming Zendesk records of ``kind`` with ``key``."""
    carriers: list[RecordKey] = []
    for flow in draft.inputs.dataflow.sharing_zendesk_kind(kind):
        prop = flow.name_property
        if prop is None:
            continue
        spec = carrier_spec(flow, prop)
        for record in draft.inputs.po.lookup(spec[0], spec[1], spec[2], key):
            if record.active and flow.takes_part(record):
                carriers.append(record.key)
    return carriers


def counterparts_in_poweroffice(draft: Draft, flow: Flow, zd_records: Iterable[Record]) -> None:
    """Plan a PowerOffice counterpart for each unlinked Zendesk record."""
    table = draft.inputs.state.table(flow.id)
    for zd in sorted(zd_records, key=lambda r: id_order(r.id)):
        if not zd.active or table.for_zendesk(zd.id) or draft.linked_elsewhere(zd):
            continue
        if zd.key in draft.created_from or zd.key in draft.context.created_from:
            continue  # an earlier flow already creates this record's counterpart
        draft.created_from.add(zd.key)
        fields = _create_fields(draft, flow, zd, skip=None)
        draft.items.append(
            Create(
                f"create:{flow.id}:{zd.key}",
                flow.id,
                flow.poweroffice_kind,
                zd.key,
                origin_key(zd.key),
                fields,
            )
        )


def _create_fields(
    draft: Draft, flow: Flow, source: Record, skip: PropertyMap | None
) -> dict[str, WriteValue]:
    """Every synced property a counterpart of ``source`` is created with, in the target's terms.

    Empty values are left out; an invalid one is reported and left out; a reference that does
    not translate is left out (the pair's first merge reports it).
    """
    to_zendesk = source.key.system is System.POWEROFFICE
    fields: dict[str, WriteValue] = {}
    for prop in flow.properties:
        if prop is skip:
            continue
        value: WriteValue | object
        if prop.is_reference:
            found = prop.value_of(source)
            if found is None:
                continue
            value = (
                draft.zendesk_id(prop, found) if to_zendesk else draft.poweroffice_id(prop, found)
            )
            if not isinstance(value, str | PendingId):
                continue
        else:
            value = clean(source.get(prop.name_in(source.key.system)))
            if value is None:
                continue
            if not draft.writable(
                flow, source.key, prop.name_in(source.key.system), value, prop.compare_as
            ):
                continue
        fields[prop.name_in(source.key.system.other)] = value
    return fields
