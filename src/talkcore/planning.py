"""Planning: a pure function from two snapshots, the link state, the dataflow and the policy to
a ``Plan`` — new links, creates, updates, conflicts, collisions and problems, each with its reason.

The rules are the specification's (dataflow.md): three-way merge per field against the base,
conflicts decided by policy, references translated through the customer–organization links,
Zendesk organization names unique, counterparts created with a stable origin key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from talkcore.dataflow import Dataflow, Flow, PropertyMap
from talkcore.linking import match_identities
from talkcore.plan import (
    AdvanceBase,
    Conflict,
    Create,
    Delete,
    DeleteCapReached,
    EndLink,
    FieldChange,
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
from talkcore.policy import ConflictPolicy, FlowPolicy, NameCollisionPolicy, SyncPolicy
from talkcore.records import FieldValue, Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Link, LinkTable, SyncState
from talkcore.values import Datatype, name_key, normalise, validate


def origin_key(source: RecordKey) -> str:
    """The stable key a created record carries, naming where it came from."""
    return f"{source.system}:{source.kind}:{source.id}"


def plan_changes(
    poweroffice: Snapshot,
    zendesk: Snapshot,
    state: SyncState,
    dataflow: Dataflow,
    policy: SyncPolicy,
) -> Plan:
    """Plan one sync run. Pure: the same inputs always give the same plan."""
    return _Planner(poweroffice, zendesk, state, dataflow, policy).plan()


_UNTRANSLATABLE = object()
"""A Zendesk reference that names no record linked in the reference flow."""


@attrs.define
class _Planner:
    po: Snapshot
    zd: Snapshot
    state: SyncState
    dataflow: Dataflow
    policy: SyncPolicy
    items: list[PlanItem] = attrs.Factory(list)
    # Per flow, PowerOffice id → Zendesk id (or the create that will make it), for links made
    # or records created in this plan; read by references and by later flows.
    planned: dict[str, dict[str, str | PendingId]] = attrs.Factory(dict)
    # Zendesk ids linked in this plan, per flow.
    planned_zendesk: dict[str, set[str]] = attrs.Factory(dict)
    # Organization name keys taken (existing organizations and planned creates/renames).
    names: dict[str, RecordKey] = attrs.Factory(dict)
    names_built: bool = False
    # PowerOffice records carrying each organization name key, built on first use.
    carriers: dict[str, list[RecordKey]] | None = None
    # Values this plan writes, by record: later flows match on them.
    overlay: dict[RecordKey, dict[str, FieldValue]] = attrs.Factory(dict)
    # Zendesk user e-mails taken (existing users and planned changes), built on first use.
    emails: dict[str, RecordKey] | None = None

    def plan(self) -> Plan:
        for flow in self.dataflow:
            self.planned.setdefault(flow.id, {})
            self.planned_zendesk.setdefault(flow.id, set())
        # Existing links of flows that refer to no other flow are merged first, so renames
        # free organization names before any create claims one.
        early = {f.id for f in self.dataflow if not any(p.is_reference for p in f.properties)}
        # A rehearsal settles which names the renames free, so a rename onto a name another
        # rename vacates is not reported as a collision only because of the order of records.
        rehearsal_start = len(self.items)
        for flow in self.dataflow:
            if flow.id in early:
                self._merge_all(flow, self._existing_links(flow))
        if any(
            isinstance(item, NameCollision) and item.rule == "rename_name_taken"
            for item in self.items[rehearsal_start:]
        ):
            del self.items[rehearsal_start:]
            for flow in self.dataflow:
                if flow.id in early:
                    self._merge_all(flow, self._existing_links(flow))
        for flow in self.dataflow:
            live = [] if flow.id in early else self._existing_links(flow)
            self._merge_all(flow, live + self._new_links(flow))
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
        for link in table:
            po = po_records.get(link.poweroffice_id)
            zd = zd_records.get(link.zendesk_id)
            ended = self._end_if_gone(flow, fpolicy, link, po, zd, deletes)
            if not ended and po is not None and zd is not None:
                live.append((link, po, zd))
        self._cap_deletes(flow, fpolicy, len(table), deletes)
        return live

    def _new_links(self, flow: Flow) -> list[tuple[Link, Record, Record]]:
        """Link by identity, origin key or adoption; plan creates. The pairs newly linked."""
        fpolicy = self.policy.for_flow(flow.id)
        table = self.state.table(flow.id)
        po_records = self.po.of_kind(flow.poweroffice_kind)
        zd_records = self.zd.of_kind(flow.zendesk_kind)
        new: list[tuple[Link, Record, Record]] = []
        if flow.identity is not None:
            self._link_by_identity(flow, table, po_records.values(), zd_records.values(), new)
        if flow.creates_in_zendesk and fpolicy.create:
            self._counterparts_in_zendesk(flow, table, po_records.values(), new)
        if flow.creates_in_poweroffice and fpolicy.create:
            self._counterparts_in_poweroffice(flow, table, zd_records.values())
        return new

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
        self,
        flow: Flow,
        table: LinkTable,
        po_records: Iterable[Record],
        zd_records: Iterable[Record],
        live: list[tuple[Link, Record, Record]],
    ) -> None:
        assert flow.identity is not None
        # Match on values as they will be after this plan's writes, so a later flow does not
        # link next run what this run's writes make matchable.
        po_live = [self._view(r) for r in po_records if r.active and flow.takes_part(r)]
        zd_live = [self._view(r) for r in zd_records if r.active]
        matches, ambiguities = match_identities(flow, flow.identity, po_live, zd_live, table)
        for match in matches:
            base = {
                p.poweroffice: v for p, v in zip(flow.identity.properties, match.value, strict=True)
            }
            self._add_link(flow, match.poweroffice, match.zendesk, "identity", base, live)
        self.items.extend(ambiguities)

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
        self.planned_zendesk[flow.id].add(zd.id)
        live.append((Link(flow.id, po.id, zd.id, base), po, zd))

    def _organization_flows(self) -> list[Flow]:
        return [f for f in self.dataflow if f.zendesk_kind is Kind.ORGANIZATION]

    def _linked_elsewhere(self, zendesk: Record) -> bool:
        """Whether a Zendesk record is linked (or being linked) in any flow of its kind."""
        for flow in self.dataflow:
            if flow.zendesk_kind is not zendesk.kind:
                continue
            if self.state.table(flow.id).for_zendesk(zendesk.id) is not None:
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
        by_origin = self._zendesk_by_origin(flow.zendesk_kind)
        for po in sorted(po_records, key=lambda r: _id_order(r.id)):
            if not po.active or not flow.takes_part(po) or table.for_poweroffice(po.id):
                continue
            if po.id in self.planned[flow.id]:
                continue
            origin = origin_key(po.key)
            found = by_origin.get(origin.casefold())
            if found is not None and found.active and not self._linked_elsewhere(found):
                self._add_link(flow, po, found, "origin_key", _zendesk_base(flow, found), live)
                continue
            fields: dict[str, WriteValue] = {}
            if name_prop is not None:
                name = _clean(po.get(name_prop.poweroffice))
                problem = "no name" if name is None else validate(name, Datatype.STRING)
                if problem is not None:
                    self.items.append(
                        InvalidValue(
                            f"invalid:{flow.id}:{po.key}:{name_prop.poweroffice}",
                            flow.id,
                            po.key,
                            name_prop.poweroffice,
                            name,
                            problem,
                        )
                    )
                    continue
                key = name_key(name)
                assert key is not None
                holder = self._name_holder(key)
                if holder is not None:
                    adoptable = (
                        holder.system is System.ZENDESK
                        and self.policy.name_collision is NameCollisionPolicy.ADOPT
                        and len(self._po_name_carriers().get(key, ())) == 1
                    )
                    held = self.zd.get(holder)
                    if adoptable and held is not None and not self._linked_elsewhere(held):
                        self._add_link(flow, po, held, "adopt", _zendesk_base(flow, held), live)
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
            if any(isinstance(i, Create) and i.source == zd.key for i in self.items):
                continue  # an earlier flow already creates this record's counterpart
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

    def _zendesk_by_origin(self, kind: Kind) -> dict[str, Record]:
        found: dict[str, Record] = {}
        for record in self.zd.of_kind(kind).values():
            external = record.get("external_id")
            if external:
                found[external.casefold()] = record
        return found

    def _po_name_carriers(self) -> dict[str, list[RecordKey]]:
        """PowerOffice records of every organization flow, by organization name key."""
        if self.carriers is not None:
            return self.carriers
        carriers: dict[str, list[RecordKey]] = {}
        self.carriers = carriers
        for flow in self._organization_flows():
            prop = _name_property(flow)
            if prop is None:
                continue
            for record in self.po.of_kind(flow.poweroffice_kind).values():
                if record.active and flow.takes_part(record):
                    key = name_key(record.get(prop.poweroffice))
                    if key is not None:
                        carriers.setdefault(key, []).append(record.key)
        return carriers

    def _name_holder(self, key: str) -> RecordKey | None:
        if not self.names_built:
            for org in self.zd.of_kind(Kind.ORGANIZATION).values():
                org_key = name_key(org.get("name"))
                if org_key is not None:
                    self.names.setdefault(org_key, org.key)
            self.names_built = True
        return self.names.get(key)

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
        base = link.base.get(prop.poweroffice)
        po_val = normalise(po.get(prop.poweroffice), prop.compare_as)
        zd_raw = normalise(zd.get(prop.zendesk), prop.compare_as)
        zd_val: object = self._translate_from_zendesk(prop, zd_raw) if prop.is_reference else zd_raw
        if po_val == zd_val:
            if base != po_val:
                self.items.append(
                    AdvanceBase(
                        f"advance:{flow.id}:{po.id}:{prop.poweroffice}",
                        flow.id,
                        po.id,
                        prop.poweroffice,
                        po_val,
                    )
                )
            return
        zd_shown = zd_raw if zd_val is _UNTRANSLATABLE else _as_value(zd_val)
        po_moved = po_val != base
        zd_moved = zd_val != base
        winner: System
        rule: str
        if po_moved and zd_moved:
            decided = self._decide(flow, fpolicy, po, zd, prop, base, po_val, zd_shown)
            if decided is None:
                return
            winner, rule = decided
        elif po_moved:
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
        written = _clean(zd.get(prop.zendesk)) if not prop.is_reference else _as_value(zd_val)
        problem = validate(written, prop.compare_as)
        if written is None and not prop.is_reference:
            problem = problem or "an empty value is never written"
        if problem is not None:
            self.items.append(
                InvalidValue(
                    f"invalid:{flow.id}:{zd.key}:{prop.zendesk}",
                    flow.id,
                    zd.key,
                    prop.zendesk,
                    written,
                    problem,
                )
            )
            return
        to_po.append(
            FieldChange(prop.poweroffice, written, rule, base, po_val, zd_shown, prop.poweroffice)
        )

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
        if old is not None and self.names.get(old) == zd.key:
            del self.names[old]  # the rename frees the old name for a create in this plan
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
        if self.emails is None:
            self.emails = {}
            for user in self.zd.of_kind(Kind.USER).values():
                held = normalise(user.get("email"), Datatype.EMAIL)
                if held is not None:
                    self.emails.setdefault(held, user.key)
        holder = self.emails.get(key)
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
        self.emails[key] = zd.key
        return True

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
        for po_id, zd in self.planned.get(ref_flow, {}).items():
            if zd == zd_id:
                return po_id
        return _UNTRANSLATABLE

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
            problem = validate(written, prop.compare_as)
            if written is None:
                problem = problem or "an empty value is never written"
            if problem is not None:
                self.items.append(
                    InvalidValue(
                        f"invalid:{flow.id}:{po.key}:{prop.poweroffice}",
                        flow.id,
                        po.key,
                        prop.poweroffice,
                        written,
                        problem,
                    )
                )
                return None
            return written
        ref_flow = prop.reference_flow or ""
        why: str
        if po_val is None:
            why = "empty_reference"
        else:
            link = self.state.table(ref_flow).for_poweroffice(po_val)
            if link is not None and not self._ended(ref_flow, po_val):
                return link.zendesk_id
            planned = self.planned.get(ref_flow, {}).get(po_val)
            if planned is not None:
                return planned
            ref_kind = self.dataflow.flow(ref_flow).poweroffice_kind
            if self.po.get(RecordKey.of(ref_kind, po_val)) is not None:
                why = "customer_has_no_organization"
            elif self.po.get(RecordKey.of(Kind.SUPPLIER, po_val)) is not None:
                why = "party_is_supplier"
            else:
                why = "party_unknown"
        self._reference_problem(flow, po.key, prop.poweroffice, po_val, why)
        return None

    def _ended(self, flow_id: str, po_id: str) -> bool:
        return any(
            isinstance(i, EndLink) and i.flow == flow_id and i.poweroffice.id == po_id
            for i in self.items
        )

    def _reference_problem(
        self, flow: Flow, record: RecordKey, prop: str, value: FieldValue, rule: str
    ) -> None:
        self.items.append(
            ReferenceProblem(
                f"reference:{flow.id}:{record}:{prop}", flow.id, record, prop, value, rule
            )
        )


def _name_property(flow: Flow) -> PropertyMap | None:
    for prop in flow.properties:
        if prop.zendesk == "name" and not prop.is_reference:
            return prop
    return None


def _zendesk_base(flow: Flow, zd: Record) -> dict[str, FieldValue]:
    """The base for a link to an existing Zendesk record: its values, so PowerOffice's win."""
    return {
        p.poweroffice: normalise(zd.get(p.zendesk), p.compare_as)
        for p in flow.properties
        if not p.is_reference
    }


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
