"""Planning: a pure function from two snapshots, the link state, the dataflow and the policy to
a ``Plan`` — new links, creates, updates, conflicts, collisions and problems, each with its reason.

The rules are the specification's (dataflow.md): three-way merge per field against the base,
conflicts decided by policy, references translated through the customer–organization links,
Zendesk organization names unique, counterparts created with a stable origin key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime

import attrs

from talkcore.dataflow import Dataflow, Flow, IdentityRule, PropertyMap
from talkcore.linking import (
    IdentityValue,
    Lookup,
    group_by_identity,
    identity_of,
    match_identities,
)
from talkcore.plan import (
    AdvanceBase,
    Conflict,
    Create,
    Delete,
    DeleteCapReached,
    EndLink,
    FieldChange,
    FirstLinkChoice,
    InvalidValue,
    NameCollision,
    NewLink,
    PendingId,
    Plan,
    PlanItem,
    ReferenceProblem,
    UnsupportedChange,
    Update,
    WriteValue,
    conflict_key,
)
from talkcore.policy import (
    ConflictPolicy,
    FirstLinkPolicy,
    FlowPolicy,
    NameCollisionPolicy,
    SyncPolicy,
)
from talkcore.records import FieldValue, Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Link, LinkTable, SyncState
from talkcore.values import Datatype, name_key, normalise, validate


def origin_key(source: RecordKey) -> str:
    """The stable key a created record carries, naming where it came from: ``str(source)``."""
    return str(source)


def plan_changes(
    poweroffice: Snapshot,
    zendesk: Snapshot,
    state: SyncState,
    dataflow: Dataflow,
    policy: SyncPolicy,
    *,
    focus: Collection[RecordKey] | None = None,
) -> Plan:
    """Plan one sync run. Pure: the same inputs always give the same plan.

    ``focus`` (incremental planning) names the records that changed since the last plan, plus
    those the last run reported on or failed to write; only they and their links are planned,
    using the snapshots' indexes, so the cost follows the changes, not the mirrors' size. The
    result is the full plan's, provided the focus holds every record whose plan could differ.
    """
    frozen = None if focus is None else frozenset(focus)
    return _Planner(poweroffice, zendesk, state, dataflow, policy, frozen).plan()


def email_key(value: FieldValue) -> str | None:
    """Index key of an e-mail address."""
    return normalise(value, Datatype.EMAIL)


def origin_index_key(value: FieldValue) -> str | None:
    """Index key of an origin key (``external_id``): case-insensitive, as Zendesk compares."""
    return value.strip().casefold() or None if value else None


_UNTRANSLATABLE = object()
"""A Zendesk reference that names no record linked in the reference flow."""


@attrs.define
class _Planner:
    po: Snapshot
    zd: Snapshot
    state: SyncState
    dataflow: Dataflow
    policy: SyncPolicy
    focus: frozenset[RecordKey] | None = None
    items: list[PlanItem] = attrs.Factory(list)
    # Per flow, PowerOffice id → Zendesk id (or the create that will make it), for links made
    # or records created in this plan; read by references and by later flows.
    planned: dict[str, dict[str, str | PendingId]] = attrs.Factory(dict)
    # Zendesk id → PowerOffice id of the links made in this plan, per flow.
    planned_zendesk: dict[str, dict[str, str]] = attrs.Factory(dict)
    # Organization name keys and user e-mails claimed or freed by this plan, over what the
    # Zendesk snapshot holds (``None``: freed).
    names: dict[str, RecordKey | None] = attrs.Factory(dict)
    emails: dict[str, RecordKey | None] = attrs.Factory(dict)
    # Values this plan writes, by record: later flows match on them.
    overlay: dict[RecordKey, dict[str, FieldValue]] = attrs.Factory(dict)
    # Links ended and counterparts created in this plan.
    ended: set[tuple[str, str]] = attrs.Factory(set)
    created_from: set[RecordKey] = attrs.Factory(set)

    def plan(self) -> Plan:
        for flow in self.dataflow:
            self.planned.setdefault(flow.id, {})
            self.planned_zendesk.setdefault(flow.id, {})
        # Existing links of flows that refer to no other flow are merged first, so renames
        # free organization names before any create claims one.
        early = [f for f in self.dataflow if not any(p.is_reference for p in f.properties)]
        self._merge_settled([(flow, self._existing_links(flow)) for flow in early])
        for flow in self.dataflow:
            live = [] if flow in early else self._existing_links(flow)
            self._merge_settled([(flow, live + self._new_links(flow))])
        return Plan(tuple(self.items))

    # -- one flow -----------------------------------------------------------------------

    def _existing_links(self, flow: Flow) -> list[tuple[Link, Record, Record]]:
        """End links whose records are gone; the live pairs that remain."""
        fpolicy = self.policy.for_flow(flow.id)
        table = self.state.table(flow.id)
        po_records = self.po.of_kind(flow.poweroffice_kind)
        zd_records = self.zd.of_kind(flow.zendesk_kind)
        deletes: list[Delete] = []
        live: list[tuple[Link, Record, Record]] = []
        for link in self._links_in_focus(flow, table):
            po = po_records.get(link.poweroffice_id)
            zd = zd_records.get(link.zendesk_id)
            ended = self._end_if_gone(flow, fpolicy, link, po, zd, deletes)
            if not ended and po is not None and zd is not None:
                live.append((link, po, zd))
        self._cap_deletes(flow, fpolicy, len(table), deletes)
        return live

    def _links_in_focus(self, flow: Flow, table: LinkTable) -> Iterable[Link]:
        if self.focus is None:
            return iter(table)
        chosen: dict[str, Link] = {}
        for key in self.focus:
            link = None
            if key.kind is flow.poweroffice_kind:
                link = table.for_poweroffice(key.id)
            elif key.kind is flow.zendesk_kind:
                link = table.for_zendesk(key.id)
            if link is not None:
                chosen[link.poweroffice_id] = link
        return (chosen[po_id] for po_id in sorted(chosen, key=_id_order))

    def _in_focus(self, snapshot: Snapshot, kind: Kind) -> Iterable[Record]:
        """The records of ``kind`` to plan: all, or those in focus."""
        records = snapshot.of_kind(kind)
        if self.focus is None:
            return records.values()
        return [records[k.id] for k in self.focus if k.kind is kind and k.id in records]

    def _new_links(self, flow: Flow) -> list[tuple[Link, Record, Record]]:
        """Link by identity, origin key or adoption; plan creates. The pairs newly linked."""
        fpolicy = self.policy.for_flow(flow.id)
        table = self.state.table(flow.id)
        new: list[tuple[Link, Record, Record]] = []
        if flow.identity is not None:
            self._link_by_identity(flow, table, new)
        if flow.creates_in_zendesk and fpolicy.create:
            self._counterparts_in_zendesk(
                flow, table, self._in_focus(self.po, flow.poweroffice_kind), new
            )
        if flow.creates_in_poweroffice and fpolicy.create:
            self._counterparts_in_poweroffice(
                flow, table, self._in_focus(self.zd, flow.zendesk_kind)
            )
        return new

    def _merge_settled(self, batches: list[tuple[Flow, list[tuple[Link, Record, Record]]]]) -> None:
        """Merge linked pairs so that no outcome depends on the order of the records.

        A rename or an e-mail change can claim a name or an address that another update in
        the same batch frees. Merged in one pass, the claim fails or succeeds by which record
        comes first. So a first pass that refused a claim is a rehearsal: its items are
        dropped, but its claims and frees (``names``, ``emails``) are kept, and the batch is
        merged again over them. Claims made in the rehearsal are made again by the same
        records, so the second pass settles: it is the fixed point.
        """
        start = len(self.items)
        for flow, pairs in batches:
            self._merge_all(flow, pairs)
        if any(_refused_claim(item) for item in self.items[start:]):
            del self.items[start:]
            for flow, pairs in batches:
                self._merge_all(flow, pairs)

    def _merge_all(self, flow: Flow, pairs: list[tuple[Link, Record, Record]]) -> None:
        fpolicy = self.policy.for_flow(flow.id)
        for link, po, zd in pairs:
            self._merge(flow, fpolicy, link, po, zd)

    def _end_if_gone(
        self,
        flow: Flow,
        fpolicy: FlowPolicy,
        link: Link,
        po: Record | None,
        zd: Record | None,
        deletes: list[Delete],
    ) -> bool:
        if (
            po is not None
            and zd is not None
            and po.active
            and zd.active
            and (flow.poweroffice_filter is None or flow.takes_part(po))
        ):
            return False  # the common case, decided without building keys
        po_key = RecordKey.of(flow.poweroffice_kind, link.poweroffice_id)
        zd_key = RecordKey.of(flow.zendesk_kind, link.zendesk_id)
        gone: RecordKey | None = None
        rule = ""
        survivor: Record | None = None
        if po is None and flow.poweroffice_kind in self.po.complete:
            gone, rule, survivor = po_key, "deleted", zd
        elif po is not None and not po.active:
            gone, rule, survivor = po_key, "inactive", zd
        elif po is not None and not flow.takes_part(po):
            gone, rule = po_key, "left_flow"
        elif zd is None and flow.zendesk_kind in self.zd.complete:
            gone, rule, survivor = zd_key, "deleted", po
        elif zd is not None and not zd.active:
            gone, rule, survivor = zd_key, "inactive", po
        if gone is None:
            return False
        self.items.append(
            EndLink(f"unlink:{flow.id}:{link.poweroffice_id}", flow.id, po_key, zd_key, gone, rule)
        )
        self.ended.add((flow.id, link.poweroffice_id))
        if fpolicy.propagate_deletes and survivor is not None and survivor.active:
            deletes.append(Delete(f"delete:{flow.id}:{survivor.key}", flow.id, survivor.key, gone))
        return True

    def _cap_deletes(
        self, flow: Flow, fpolicy: FlowPolicy, links: int, deletes: list[Delete]
    ) -> None:
        if not deletes:
            return
        if len(deletes) > fpolicy.delete_cap * links:
            self.items.append(
                DeleteCapReached(
                    f"delete-cap:{flow.id}", flow.id, len(deletes), links, fpolicy.delete_cap
                )
            )
            return
        self.items.extend(deletes)

    # -- linking ------------------------------------------------------------------------

    def _link_by_identity(
        self, flow: Flow, table: LinkTable, live: list[tuple[Link, Record, Record]]
    ) -> None:
        rule = flow.identity
        assert rule is not None
        # Match on values as they will be after this plan's writes, so a later flow does not
        # link next run what this run's writes make matchable.
        po_kind, zd_kind = flow.poweroffice_kind, flow.zendesk_kind

        def po_ok(record: Record) -> bool:
            return record.active and flow.takes_part(record)

        def zd_ok(record: Record) -> bool:
            return record.active

        po_lookup: Lookup
        zd_lookup: Lookup
        values: set[IdentityValue | None]
        if self.focus is None:
            po_live = [self._view(r) for r in self.po.of_kind(po_kind).values() if po_ok(r)]
            values = {identity_of(r, rule) for r in po_live if table.for_poweroffice(r.id) is None}
            values.discard(None)
            if not values:
                return  # every record is linked already (the steady state): nothing to match
            zd_live = [self._view(r) for r in self.zd.of_kind(zd_kind).values() if zd_ok(r)]
            po_lookup = group_by_identity(po_live, rule).get
            zd_lookup = group_by_identity(zd_live, rule).get
        else:
            prop = rule.properties[0]
            po_lookup = self._identity_lookup(self.po, po_kind, prop.poweroffice, rule, po_ok)
            zd_lookup = self._identity_lookup(self.zd, zd_kind, prop.zendesk, rule, zd_ok)
            values = set()
            for snapshot, kind, ok in ((self.po, po_kind, po_ok), (self.zd, zd_kind, zd_ok)):
                for record in self._in_focus(snapshot, kind):
                    view = self._view(record)
                    if ok(view):
                        values.add(identity_of(view, rule))
            for key in self.overlay:
                written = self.po.get(key) or self.zd.get(key)
                if written is not None and written.kind in (po_kind, zd_kind):
                    values.add(identity_of(self._view(written), rule))
        values.discard(None)
        matches, ambiguities = match_identities(
            flow, rule, [v for v in values if v is not None], po_lookup, zd_lookup, table
        )
        for match in matches:
            if self.state.is_kept_apart(flow.id, match.poweroffice.id, match.zendesk.id):
                continue  # a person unlinked this pair
            base = {p.poweroffice: v for p, v in zip(rule.properties, match.value, strict=True)}
            self._add_link(flow, match.poweroffice, match.zendesk, "identity", base, live)
        self.items.extend(ambiguities)

    def _identity_lookup(
        self,
        snapshot: Snapshot,
        kind: Kind,
        field: str,
        rule: IdentityRule,
        ok: Callable[[Record], bool],
    ) -> Callable[[IdentityValue], list[Record] | None]:
        """Live records of ``kind`` with an identity value, as they will be after this plan."""
        key = _INDEX_KEYS[rule.properties[0].compare_as]
        overlaid = [
            self._view(r)
            for r in (snapshot.get(k) for k in self.overlay if k.kind is kind)
            if r is not None
        ]

        def lookup(value: IdentityValue) -> list[Record] | None:
            found = {
                r.key: r
                for r in (self._view(r) for r in snapshot.lookup(kind, field, key, value[0] or ""))
                if ok(r) and identity_of(r, rule) == value
            }
            for record in overlaid:
                if ok(record) and identity_of(record, rule) == value:
                    found[record.key] = record
            return [found[k] for k in sorted(found)] or None

        return lookup

    def _view(self, record: Record) -> Record:
        """``record`` as it will be once this plan's writes to it are applied."""
        written = self.overlay.get(record.key)
        return record if not written else attrs.evolve(record, fields={**record.fields, **written})

    def _add_link(
        self,
        flow: Flow,
        po: Record,
        zd: Record,
        rule: str,
        base: dict[str, FieldValue],
        live: list[tuple[Link, Record, Record]],
    ) -> None:
        item = NewLink(
            f"link:{flow.id}:{po.id}",
            flow.id,
            po.key,
            zd.key,
            rule,
            base,
            matched_on=" / ".join(v or "" for v in base.values()) if rule == "identity" else None,
        )
        self.items.append(item)
        self.planned[flow.id][po.id] = zd.id
        self.planned_zendesk[flow.id][zd.id] = po.id
        live.append((Link(flow.id, po.id, zd.id, base), po, zd))

    def _organization_flows(self) -> list[Flow]:
        return [f for f in self.dataflow if f.zendesk_kind is Kind.ORGANIZATION]

    def _linked_elsewhere(self, zendesk: Record) -> bool:
        """Whether a Zendesk record is linked (or being linked) in any flow of its kind."""
        for flow in self.dataflow:
            if flow.zendesk_kind is not zendesk.kind:
                continue
            link = self.state.table(flow.id).for_zendesk(zendesk.id)
            if link is not None and (flow.id, link.poweroffice_id) not in self.ended:
                return True
            if zendesk.id in self.planned_zendesk.get(flow.id, ()):
                return True
        return False

    def _counterparts_in_zendesk(
        self,
        flow: Flow,
        table: LinkTable,
        po_records: Iterable[Record],
        live: list[tuple[Link, Record, Record]],
    ) -> None:
        name_prop = _name_property(flow)
        for po in sorted(po_records, key=lambda r: _id_order(r.id)):
            if not po.active or not flow.takes_part(po) or table.for_poweroffice(po.id):
                continue
            if po.id in self.planned[flow.id]:
                continue
            origin = origin_key(po.key)
            found = self._zendesk_by_origin(flow.zendesk_kind, origin)
            if found is not None and self.state.is_kept_apart(flow.id, po.id, found.id):
                found = None  # a person unlinked this pair: its origin key does not link it
            if found is not None and found.active and not self._linked_elsewhere(found):
                self._add_link(flow, po, found, "origin_key", {}, live)
                continue
            fields: dict[str, WriteValue] = {}
            if name_prop is not None:
                name = _clean(po.get(name_prop.poweroffice))
                if not self._writable(flow, po.key, name_prop.poweroffice, name, Datatype.STRING):
                    continue
                key = name_key(name)
                assert key is not None
                holder = self._name_holder(key)
                if holder is not None:
                    adoptable = (
                        holder.system is System.ZENDESK
                        and self.policy.name_collision is NameCollisionPolicy.ADOPT
                        and len(self._po_name_carriers(key)) == 1
                    )
                    held = self.zd.get(holder)
                    if held is not None and self.state.is_kept_apart(flow.id, po.id, held.id):
                        adoptable = False  # a person unlinked this pair: no adopting it
                    if adoptable and held is not None and not self._linked_elsewhere(held):
                        self._add_link(flow, po, held, "adopt", {}, live)
                        continue
                    self.items.append(
                        NameCollision(
                            f"collision:{flow.id}:{po.key}",
                            flow.id,
                            po.key,
                            name,
                            holder,
                            "name_taken" if holder.system is System.ZENDESK else "name_planned",
                        )
                    )
                    continue
                self.names[key] = po.key
                fields[name_prop.zendesk] = name
            create = Create(
                f"create:{flow.id}:{po.id}", flow.id, flow.zendesk_kind, po.key, origin, fields
            )
            self.items.append(create)
            self.planned[flow.id][po.id] = PendingId(create.id)

    def _counterparts_in_poweroffice(
        self, flow: Flow, table: LinkTable, zd_records: Iterable[Record]
    ) -> None:
        for zd in sorted(zd_records, key=lambda r: _id_order(r.id)):
            if not zd.active or table.for_zendesk(zd.id) or self._linked_elsewhere(zd):
                continue
            if zd.key in self.created_from:
                continue  # an earlier flow already creates this record's counterpart
            self.created_from.add(zd.key)
            fields: dict[str, WriteValue] = {}
            for prop in flow.properties:
                if not prop.is_reference:
                    fields[prop.poweroffice] = _clean(zd.get(prop.zendesk))
            self.items.append(
                Create(
                    f"create:{flow.id}:{zd.key}",
                    flow.id,
                    flow.poweroffice_kind,
                    zd.key,
                    origin_key(zd.key),
                    fields,
                )
            )

    def _zendesk_by_origin(self, kind: Kind, origin: str) -> Record | None:
        """The Zendesk record carrying ``origin`` as its ``external_id``, if any."""
        key = origin_index_key(origin) or ""
        found = self.zd.lookup(kind, "external_id", origin_index_key, key)
        return found[0] if found else None

    def _po_name_carriers(self, key: str) -> list[RecordKey]:
        """Live PowerOffice records of every organization flow whose name has ``key``."""
        carriers: list[RecordKey] = []
        for flow in self._organization_flows():
            prop = _name_property(flow)
            if prop is None:
                continue
            for record in self.po.lookup(flow.poweroffice_kind, prop.poweroffice, name_key, key):
                if record.active and flow.takes_part(record):
                    carriers.append(record.key)
        return carriers

    def _name_holder(self, key: str) -> RecordKey | None:
        """The organization holding a name key, counting this plan's claims and renames."""
        if key in self.names:
            return self.names[key]
        held = self.zd.index(Kind.ORGANIZATION, "name", name_key).get(key)
        return RecordKey.of(Kind.ORGANIZATION, held[0]) if held else None

    # -- the three-way merge --------------------------------------------------------------

    def _merge(self, flow: Flow, fpolicy: FlowPolicy, link: Link, po: Record, zd: Record) -> None:
        to_zd: list[FieldChange] = []
        to_po: list[FieldChange] = []
        for prop in flow.properties:
            self._merge_property(flow, fpolicy, link, po, zd, prop, to_zd, to_po)
        for changes, record in ((to_zd, zd), (to_po, po)):
            written = {c.property: c.value for c in changes if isinstance(c.value, str)}
            if written:
                self.overlay.setdefault(record.key, {}).update(written)
        if to_zd:
            self.items.append(
                Update(f"update:{flow.id}:{zd.key}", flow.id, zd.key, po.id, tuple(to_zd))
            )
        if to_po:
            self.items.append(
                Update(f"update:{flow.id}:{po.key}", flow.id, po.key, po.id, tuple(to_po))
            )

    def _merge_property(
        self,
        flow: Flow,
        fpolicy: FlowPolicy,
        link: Link,
        po: Record,
        zd: Record,
        prop: PropertyMap,
        to_zd: list[FieldChange],
        to_po: list[FieldChange],
    ) -> None:
        # No base for this property yet: the pair's first sync (decision 3b).
        first = prop.poweroffice not in link.base
        base = link.base.get(prop.poweroffice)
        po_val = normalise(po.get(prop.poweroffice), prop.compare_as)
        zd_raw = normalise(zd.get(prop.zendesk), prop.compare_as)
        zd_val: object = self._translate_from_zendesk(prop, zd_raw) if prop.is_reference else zd_raw
        if po_val == zd_val:
            if first or base != po_val:
                self.items.append(
                    AdvanceBase(
                        f"advance:{flow.id}:{po.id}:{prop.poweroffice}",
                        flow.id,
                        po.id,
                        prop.poweroffice,
                        po_val,
                        "first_link_equal" if first else "both_changed_equal",
                    )
                )
            return
        zd_shown = zd_raw if zd_val is _UNTRANSLATABLE else _as_value(zd_val)
        winner: System
        rule: str
        if first:
            chosen = self._first_link(flow, fpolicy, po, zd, prop, po_val, zd_val)
            if chosen is None:
                return
            winner, rule = chosen
        elif po_val != base and zd_val != base:
            decided = self._decide(flow, fpolicy, po, zd, prop, base, po_val, zd_shown)
            if decided is None:
                return
            winner, rule = decided
        elif po_val != base:
            winner, rule = System.POWEROFFICE, "poweroffice_changed"
        else:
            winner, rule = System.ZENDESK, "zendesk_changed"

        if winner is System.POWEROFFICE:
            value = self._zendesk_value(flow, po, prop, po_val)
            if value is None:
                return
            if isinstance(value, str) and not self._claim_name(flow, po, zd, prop, value):
                return
            if isinstance(value, str) and not self._claim_email(flow, po, zd, prop, value):
                return
            to_zd.append(
                FieldChange(prop.zendesk, value, rule, base, po_val, zd_shown, prop.poweroffice)
            )
            if first:
                self._first_link_replaced(flow, fpolicy, po, zd, prop, winner, rule, zd_raw)
            return
        if zd_val is _UNTRANSLATABLE:
            self._reference_problem(
                flow, zd.key, prop.zendesk, zd_raw, self._why_untranslatable(prop, zd_raw)
            )
            return
        if prop.is_reference and not fpolicy.allow_moves:
            self.items.append(
                UnsupportedChange(
                    f"unsupported:{flow.id}:{po.key}:{prop.poweroffice}",
                    flow.id,
                    po.key,
                    prop.poweroffice,
                    _as_value(zd_val),
                )
            )
            return
        if prop.is_reference:
            written = _as_value(zd_val)
        else:
            written = _clean(zd.get(prop.zendesk))
            if not self._writable(flow, zd.key, prop.zendesk, written, prop.compare_as):
                return
        to_po.append(
            FieldChange(prop.poweroffice, written, rule, base, po_val, zd_shown, prop.poweroffice)
        )
        if first:
            self._first_link_replaced(flow, fpolicy, po, zd, prop, winner, rule, zd_raw)

    def _claim_name(self, flow: Flow, po: Record, zd: Record, prop: PropertyMap, name: str) -> bool:
        """Claim an organization name for a rename; report a collision if another holds it."""
        if flow.zendesk_kind is not Kind.ORGANIZATION or prop is not _name_property(flow):
            return True
        key = name_key(name)
        if key is None:
            return True
        holder = self._name_holder(key)
        if holder is not None and holder != zd.key:
            self.items.append(
                NameCollision(
                    f"collision:{flow.id}:{po.key}",
                    flow.id,
                    po.key,
                    name,
                    holder,
                    "rename_name_taken",
                )
            )
            return False
        old = name_key(zd.get("name"))
        if old is not None and old != key and self._name_holder(old) == zd.key:
            self.names[old] = None  # the rename frees the old name for a create in this plan
        self.names[key] = zd.key
        return True

    def _claim_email(
        self, flow: Flow, po: Record, zd: Record, prop: PropertyMap, email: str
    ) -> bool:
        """Claim a user's new e-mail; report it if another Zendesk user holds it already."""
        if zd.kind is not Kind.USER or prop.zendesk != "email":
            return True
        key = normalise(email, Datatype.EMAIL)
        if key is None:
            return True
        holder = self._email_holder(key)
        if holder is not None and holder != zd.key:
            self.items.append(
                InvalidValue(
                    f"invalid:{flow.id}:{po.key}:{prop.poweroffice}",
                    flow.id,
                    po.key,
                    prop.poweroffice,
                    email,
                    f"the e-mail address is held by {holder}",
                    "email_taken",
                )
            )
            return False
        old = email_key(zd.get("email"))
        if old is not None and old != key and self._email_holder(old) == zd.key:
            self.emails[old] = None  # freed, unless another user claimed it in a rehearsal
        self.emails[key] = zd.key
        return True

    def _email_holder(self, key: str) -> RecordKey | None:
        """The user holding an e-mail key, counting this plan's claims and changes."""
        if key in self.emails:
            return self.emails[key]
        held = self.zd.index(Kind.USER, "email", email_key).get(key)
        return RecordKey.of(Kind.USER, held[0]) if held else None

    def _first_link(
        self,
        flow: Flow,
        fpolicy: FlowPolicy,
        po: Record,
        zd: Record,
        prop: PropertyMap,
        po_val: FieldValue,
        zd_val: object,
    ) -> tuple[System, str] | None:
        """Who seeds a value that differs on a pair's first sync, and the rule that said so.

        A value that cannot be written (a reference that cannot be translated, an empty value)
        never wins over one that can, whatever the policy: otherwise the link would start from a
        value that is reported on every run and never synced. Where neither side's reference can
        be translated nothing is written, and the PowerOffice side's reason is reported.
        """
        # An empty value is never written, so it counts as one that cannot be (a user in no
        # organization would otherwise take a contact person's party away).
        po_ok = po_val is not None and (
            not prop.is_reference or self._zendesk_id(prop, po_val) is not None
        )
        zd_ok = zd_val is not None and zd_val is not _UNTRANSLATABLE
        if po_ok != zd_ok:
            return (System.POWEROFFICE if po_ok else System.ZENDESK), "first_link_only_writable"
        if not po_ok:
            self._zendesk_value(flow, po, prop, po_val)  # reports why it cannot be written
            return None
        rule = f"first_link_{fpolicy.first_link}"
        if fpolicy.first_link is FirstLinkPolicy.POWEROFFICE:
            return System.POWEROFFICE, rule
        if fpolicy.first_link is FirstLinkPolicy.ZENDESK:
            return System.ZENDESK, rule
        return _newest(po.modified, zd.modified), rule

    def _first_link_replaced(
        self,
        flow: Flow,
        fpolicy: FlowPolicy,
        po: Record,
        zd: Record,
        prop: PropertyMap,
        winner: System,
        rule: str,
        zd_raw: FieldValue,
    ) -> None:
        """Report a value the first sync replaces, with both sides in their own terms.

        Filling an empty field replaces nothing, so it is not reported (the update shows it):
        on a lived-in account that would be one report per record without an organization.
        """
        po_val = normalise(po.get(prop.poweroffice), prop.compare_as)
        if (zd_raw if winner is System.POWEROFFICE else po_val) is None:
            return
        self.items.append(
            FirstLinkChoice(
                f"first-link:{conflict_key(flow.id, po.id, prop.poweroffice)}",
                flow.id,
                po.key,
                zd.key,
                prop.poweroffice,
                po_val,
                zd_raw,
                fpolicy.first_link,
                winner,
                rule,
            )
        )

    def _decide(
        self,
        flow: Flow,
        fpolicy: FlowPolicy,
        po: Record,
        zd: Record,
        prop: PropertyMap,
        base: FieldValue,
        po_val: FieldValue,
        zd_val: FieldValue,
    ) -> tuple[System, str] | None:
        key = conflict_key(flow.id, po.id, prop.poweroffice)
        winner: System | None
        if fpolicy.conflict is ConflictPolicy.POWEROFFICE:
            winner, rule = System.POWEROFFICE, "conflict_poweroffice_wins"
        elif fpolicy.conflict is ConflictPolicy.ZENDESK:
            winner, rule = System.ZENDESK, "conflict_zendesk_wins"
        elif fpolicy.conflict is ConflictPolicy.NEWEST:
            winner, rule = _newest(po.modified, zd.modified), "conflict_newest_wins"
        else:
            winner = self.state.resolutions.get(key)
            held = self.state.conflicts.get(key)
            if held is not None and (held.poweroffice_value, held.zendesk_value) != (
                po_val,
                zd_val,
            ):
                winner = None  # a side moved since the person decided: decide again
            rule = "conflict_resolved_by_hand" if winner else "conflict_held"
        self.items.append(
            Conflict(
                f"conflict:{key}",
                flow.id,
                po.key,
                zd.key,
                prop.poweroffice,
                base,
                po_val,
                zd_val,
                fpolicy.conflict,
                winner,
                rule,
            )
        )
        return None if winner is None else (winner, rule)

    # -- references -----------------------------------------------------------------------

    def _translate_from_zendesk(self, prop: PropertyMap, zd_id: FieldValue) -> object:
        """A Zendesk id in PowerOffice terms, ``None`` for none, or ``_UNTRANSLATABLE``."""
        if zd_id is None:
            return None
        ref_flow = prop.reference_flow or ""
        link = self.state.table(ref_flow).for_zendesk(zd_id)
        if link is not None:
            return link.poweroffice_id
        planned = self.planned_zendesk.get(ref_flow, {}).get(zd_id)
        return planned if planned is not None else _UNTRANSLATABLE

    def _why_untranslatable(self, prop: PropertyMap, zd_id: FieldValue) -> str:
        org = self.zd.get(RecordKey.of(Kind.ORGANIZATION, zd_id or ""))
        if org is None:
            return "organization_unknown"
        for flow in self._organization_flows():
            if flow.id != prop.reference_flow and self.state.table(flow.id).for_zendesk(org.id):
                return f"organization_linked_in_{flow.id}"
        return "organization_not_linked"

    def _zendesk_value(
        self, flow: Flow, po: Record, prop: PropertyMap, po_val: FieldValue
    ) -> WriteValue | None:
        """The value to write to Zendesk for ``po_val``, or ``None`` after reporting why not."""
        if not prop.is_reference:
            written = _clean(po.get(prop.poweroffice))
            if not self._writable(flow, po.key, prop.poweroffice, written, prop.compare_as):
                return None
            return written
        ref_flow = prop.reference_flow or ""
        why: str
        if po_val is None:
            why = "empty_reference"
        else:
            found = self._zendesk_id(prop, po_val)
            if found is not None:
                return found
            ref_kind = self.dataflow.flow(ref_flow).poweroffice_kind
            if self.po.get(RecordKey.of(ref_kind, po_val)) is not None:
                why = "customer_has_no_organization"
            elif self.po.get(RecordKey.of(Kind.SUPPLIER, po_val)) is not None:
                why = "party_is_supplier"
            else:
                why = "party_unknown"
        self._reference_problem(flow, po.key, prop.poweroffice, po_val, why)
        return None

    def _zendesk_id(self, prop: PropertyMap, po_id: str) -> str | PendingId | None:
        """The Zendesk id a PowerOffice reference translates to (linked or being created)."""
        ref_flow = prop.reference_flow or ""
        link = self.state.table(ref_flow).for_poweroffice(po_id)
        if link is not None and not self._ended(ref_flow, po_id):
            return link.zendesk_id
        return self.planned.get(ref_flow, {}).get(po_id)

    def _writable(
        self, flow: Flow, record: RecordKey, prop: str, value: FieldValue, datatype: Datatype
    ) -> bool:
        """Whether ``value`` (of ``record``'s ``prop``) may be written; reports it when not."""
        problem = "an empty value is never written" if value is None else validate(value, datatype)
        if problem is None:
            return True
        self.items.append(
            InvalidValue(
                f"invalid:{flow.id}:{record}:{prop}", flow.id, record, prop, value, problem
            )
        )
        return False

    def _ended(self, flow_id: str, po_id: str) -> bool:
        return (flow_id, po_id) in self.ended

    def _reference_problem(
        self, flow: Flow, record: RecordKey, prop: str, value: FieldValue, rule: str
    ) -> None:
        self.items.append(
            ReferenceProblem(
                f"reference:{flow.id}:{record}:{prop}", flow.id, record, prop, value, rule
            )
        )


_INDEX_KEYS: dict[Datatype, Callable[[FieldValue], str | None]] = {
    Datatype.EMAIL: email_key,
    Datatype.STRING: normalise,
    Datatype.ID: lambda value: normalise(value, Datatype.ID),
}
"""Index key functions per comparison type (module-level, so snapshot caches are shared)."""


def _refused_claim(item: PlanItem) -> bool:
    """Whether ``item`` reports a name or e-mail claim refused because another record holds it."""
    return (isinstance(item, NameCollision) and item.rule == "rename_name_taken") or (
        isinstance(item, InvalidValue) and item.rule == "email_taken"
    )


def _name_property(flow: Flow) -> PropertyMap | None:
    for prop in flow.properties:
        if prop.zendesk == "name" and not prop.is_reference:
            return prop
    return None


def _newest(po: datetime | None, zd: datetime | None) -> System:
    """The side that changed last; a tie (or an unknown time) goes to PowerOffice."""
    if zd is not None and (po is None or zd > po):
        return System.ZENDESK
    return System.POWEROFFICE


def _clean(value: FieldValue) -> FieldValue:
    """The value to write: trimmed and NFC, case kept."""
    return normalise(value, Datatype.STRING)


def _as_value(value: object) -> FieldValue:
    return value if isinstance(value, str) else None


def _id_order(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (0, record_id)
