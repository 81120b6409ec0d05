"""Planning over a mirror view (issue 13): what an incremental plan needs, read by key.

A cold process must not load both whole mirrors to plan a thousand changes. Instead the engine
asks a ``MirrorView`` (the state store) for the **working set** of the changes: the changed
records, their links and linked counterparts, the records holding the same identity value,
unique name or origin key, and the records their references point to — and so on from every
record added, until nothing new is found. The planner then plans that partial snapshot as data
(it stays pure): everything it looks up for the records in focus is in it, so the plan is the
full plan's.

Which property is a kind's identity value, unique name or origin key is read from the
dataflow's roles (``lookup_fields``), never from property names (issue 16); the stores keep
the same keys (``lookup_keys``) in indexed columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from talkcore.dataflow import Dataflow, Flow, PropertyMap, Role
from talkcore.ports import Lookup, MirrorView
from talkcore.records import FieldValue, KeyFunction, Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Link, LinkTable, SyncState
from talkcore.values import INDEX_KEYS, UNIQUE_KEYS, origin_index_key

LookupFields = Mapping[Kind, Mapping[Lookup, tuple[str, KeyFunction]]]
"""Per kind, the field and key function of each look-up it can be found by."""


def lookup_fields(dataflow: Dataflow) -> LookupFields:
    """Which field of each kind holds its identity value, unique name and origin key.

    Identity values and names are keyed as Zendesk compares unique values (``UNIQUE_KEYS``:
    trimmed, case-insensitive); that is as coarse as any comparison the planner makes, so a
    look-up by it finds every record the planner could match (and maybe a few more, which the
    planner then tells apart). A kind in several flows takes the first flow's field per role.
    """
    fields: dict[Kind, dict[Lookup, tuple[str, KeyFunction]]] = {}

    def put(kind: Kind, lookup: Lookup, field: str, key: KeyFunction) -> None:
        fields.setdefault(kind, {}).setdefault(lookup, (field, key))

    for flow in dataflow:
        for prop in flow.properties:
            if prop.role is Role.NAME and not prop.is_reference:
                for system in System:
                    put(flow.kind_in(system), Lookup.NAME, prop.name_in(system), _unique(prop))
        for prop in flow.identity.properties[:1] if flow.identity is not None else ():
            for system in System:
                put(flow.kind_in(system), Lookup.IDENTITY, prop.name_in(system), _unique(prop))
        if flow.zendesk_origin_field is not None:
            put(flow.zendesk_kind, Lookup.ORIGIN, flow.zendesk_origin_field, origin_index_key)
        for prop in flow.references:
            for system in System:
                put(flow.kind_in(system), Lookup.REFERENCE, prop.name_in(system), _index(prop))
    return fields


def _unique(prop: PropertyMap) -> KeyFunction:
    return UNIQUE_KEYS[prop.compare_as]


def _index(prop: PropertyMap) -> KeyFunction:
    return INDEX_KEYS[prop.compare_as]


def lookup_key(record: Record, fields: LookupFields, lookup: Lookup) -> str | None:
    """``record``'s key for ``lookup`` (``None``: its kind has none, or the value is empty)."""
    found = fields.get(record.kind, {}).get(lookup)
    if found is None:
        return None
    field, key = found
    return key(record.get(field))


def lookup_keys(record: Record, fields: LookupFields) -> tuple[str | None, ...]:
    """``record``'s key for each look-up, in ``Lookup`` order, as the stores keep them."""
    return tuple(lookup_key(record, fields, lookup) for lookup in Lookup)


def key_of_value(kind: Kind, fields: LookupFields, lookup: Lookup, value: FieldValue) -> str | None:
    """The key a raw ``value`` of ``kind``'s ``lookup`` field is found under."""
    found = fields.get(kind, {}).get(lookup)
    return None if found is None else found[1](value)


# -- the working set -------------------------------------------------------------------------


@attrs.frozen
class WorkingSet:
    """What an incremental plan reads: partial mirrors and link tables, and the link counts.

    ``mirrors`` and ``state`` are what the view returned (before this run's reads are folded
    in): the baseline a store's ``save(..., since=...)`` diffs the run's result against.
    """

    mirrors: Mapping[System, Snapshot]
    state: SyncState
    link_counts: Mapping[str, int]


def working_set(
    view: MirrorView,
    dataflow: Dataflow,
    state: SyncState,
    changed: Iterable[Record],
    focus: Iterable[RecordKey],
    removed: Iterable[RecordKey] = (),
) -> WorkingSet:
    """The records and links an incremental plan of ``focus`` needs, read through ``view``.

    ``state`` is the stored state without its links; ``changed`` are the records this run read
    (their new values decide what else is looked up) and ``removed`` the mirrored ones it found
    gone (a streamed full read: they are looked up as missing). The closure stops when no
    record adds a new one, so it follows chains (a rename freeing a name another record claims)
    as far as they go.
    """
    closure = _Closure(view, dataflow, lookup_fields(dataflow), gone=set(removed))
    return closure.run(state, list(changed), set(focus) | closure.gone)


@attrs.define
class _Closure:
    view: MirrorView
    dataflow: Dataflow
    fields: LookupFields
    gone: set[RecordKey] = attrs.Factory(set)
    """Mirrored records this run found gone: stored, but missing as the run sees them."""
    stored: dict[RecordKey, Record] = attrs.Factory(dict)
    latest: dict[RecordKey, Record] = attrs.Factory(dict)
    links: dict[str, dict[str, Link]] = attrs.Factory(dict)
    asked: set[RecordKey] = attrs.Factory(set)
    """Keys already asked for by id or found by value (never asked for again)."""
    expanded: set[RecordKey] = attrs.Factory(set)
    """Keys whose links, references and values were already followed."""

    def run(
        self, state: SyncState, changed: list[Record], focus: Iterable[RecordKey]
    ) -> WorkingSet:
        self.links = {flow.id: {} for flow in self.dataflow}
        for record in changed:
            self.latest[record.key] = record
        frontier: set[RecordKey] = set(focus) | set(self.latest)
        while frontier:
            self._fetch(frontier)
            self.expanded |= frontier
            frontier = self._expand(frontier) - self.expanded
        mirrors = {
            system: Snapshot.of(
                system,
                (r for k, r in self.stored.items() if k.system is system),
                complete=self.view.mirror_complete(system),
            )
            for system in System
        }
        partial = attrs.evolve(
            state,
            links={flow: LinkTable.of(links.values()) for flow, links in self.links.items()},
        )
        counts = {flow.id: self.view.link_count(flow.id) for flow in self.dataflow}
        return WorkingSet(mirrors, partial, counts)

    def _fetch(self, keys: set[RecordKey]) -> None:
        wanted = [k for k in keys if k not in self.asked]
        self.asked |= set(wanted)
        for key, record in self.view.records(wanted).items():
            self.stored[key] = record
            if key not in self.gone:
                self.latest.setdefault(key, record)

    def _add(self, records: list[Record]) -> set[RecordKey]:
        """Take records found by value; their keys (to be followed in turn)."""
        for record in records:
            self.stored.setdefault(record.key, record)
            if record.key not in self.gone:
                self.latest.setdefault(record.key, record)
            self.asked.add(record.key)
        return {record.key for record in records}

    def _expand(self, keys: set[RecordKey]) -> set[RecordKey]:
        """Keys the records of ``keys`` lead to; records found by value are added at once."""
        more: set[RecordKey] = set()
        by_value: dict[tuple[Kind, Lookup], set[str]] = {}
        for key in keys:
            record = self.latest.get(key)
            for flow in self.dataflow:
                if key.kind is not flow.kind_in(key.system):
                    continue
                links = self._linked(flow, key)
                for link in links:
                    more.add(RecordKey.of(flow.poweroffice_kind, link.poweroffice_id))
                    more.add(RecordKey.of(flow.zendesk_kind, link.zendesk_id))
                if links and _may_end_its_link(flow, key, record):
                    self._referrers(flow, links, by_value)
                if record is None:
                    continue
                more |= self._references(flow, record)
                more |= self._values(flow, record, by_value)
        for (kind, lookup), values in sorted(by_value.items()):
            more |= self._add(self.view.find(kind, lookup, sorted(values)))
            # The records holding a value now, in this run's reads, are in ``latest`` already.
        return more

    def _kinds_by(self, lookup: Lookup) -> list[Kind]:
        return [kind for kind, by_lookup in self.fields.items() if lookup in by_lookup]

    def _linked(self, flow: Flow, key: RecordKey) -> list[Link]:
        links = self.view.links_touching(flow.id, key.system, [key.id])
        for link in links:
            self.links[flow.id][link.poweroffice_id] = link
        return links

    def _referrers(
        self, flow: Flow, links: list[Link], by_value: dict[tuple[Kind, Lookup], set[str]]
    ) -> None:
        """Note the look-ups of the records on either side that refer to a record of
        ``links`` (``planning.with_referrers_of_ended_links`` plans them when a link ends)."""
        for referrer, _ in self.dataflow.referring_to(flow.id):
            for link in links:
                for system, rid in (
                    (System.POWEROFFICE, link.poweroffice_id),
                    (System.ZENDESK, link.zendesk_id),
                ):
                    kind = referrer.kind_in(system)
                    value = key_of_value(kind, self.fields, Lookup.REFERENCE, rid)
                    if value is not None:
                        by_value.setdefault((kind, Lookup.REFERENCE), set()).add(value)

    def _references(self, flow: Flow, record: Record) -> set[RecordKey]:
        """The records ``record``'s references name, in the flows they point into."""
        found: set[RecordKey] = set()
        system = record.key.system
        for prop in flow.properties:
            if not prop.is_reference:
                continue
            value = prop.value_of(record)
            if value is None:
                continue
            for ref_flow in prop.reference_flows:
                target = self.dataflow.flow(ref_flow)
                found.add(RecordKey.of(target.kind_in(system), value))
            # A reference no flow translates is reported by what it names (a supplier).
            assert prop.reference is not None
            found |= {
                RecordKey.of(kind, value)
                for kind in prop.reference.unsynced
                if kind.system is system
            }
        return found

    def _values(
        self, flow: Flow, record: Record, by_value: dict[tuple[Kind, Lookup], set[str]]
    ) -> set[RecordKey]:
        """Note the look-ups by value that ``record`` (as this run sees it) leads to; the
        record its origin key names."""
        system = record.key.system
        # An identity value or name travels between kinds (a write copies it to the
        # counterpart, where a later flow matches on it): it is looked up in every kind that
        # has one, which is a handful of indexed queries.
        for lookup in (Lookup.IDENTITY, Lookup.NAME):
            value = lookup_key(record, self.fields, lookup)
            if value is None:
                continue
            for kind in self._kinds_by(lookup):
                by_value.setdefault((kind, lookup), set()).add(value)
        if flow.zendesk_origin_field is not None:
            if system is System.POWEROFFICE:
                origin = origin_index_key(str(record.key))
                if origin is not None:
                    by_value.setdefault((flow.zendesk_kind, Lookup.ORIGIN), set()).add(origin)
            else:
                source = _parsed(record.get(flow.zendesk_origin_field))
                if source is not None:
                    return {source}
        return set()


def _may_end_its_link(flow: Flow, key: RecordKey, record: Record | None) -> bool:
    """Whether ``record`` (as this run sees it) may end its link in ``flow``: missing,
    inactive, or out of the flow (``planning``'s rule, widened: a few more look-ups are
    harmless, a missed one is a wrong plan)."""
    if record is None or not record.active:
        return True
    return key.system is System.POWEROFFICE and not flow.takes_part(record)


def _parsed(origin: FieldValue) -> RecordKey | None:
    """The record an origin key names, if it names one (a hand-made one may not)."""
    try:
        return RecordKey.parse(origin.strip()) if origin else None
    except (ValueError, KeyError):
        return None


__all__ = [
    "LookupFields",
    "WorkingSet",
    "key_of_value",
    "lookup_fields",
    "lookup_key",
    "lookup_keys",
    "working_set",
]
