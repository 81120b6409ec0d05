"""The dataflow as data: which records pair up, how they are first linked, what stays in sync.

``DEFAULT_DATAFLOW`` is the four flows of the product's specification; ``render_checklist``
renders any dataflow as the QA checklist document (reStructuredText or Markdown).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from datetime import datetime

import attrs

from talkcore.records import FieldValue, Kind, Record, System
from talkcore.values import Datatype, normalise


class Role(enum.StrEnum):
    """What a property is to the sync, beyond a value to keep equal."""

    VALUE = "value"
    """A value kept equal on both sides; nothing more."""
    NAME = "name"
    """The record's name, unique (case-insensitively, trimmed) among the Zendesk records of its
    kind: a rename claims the name, a create takes it, adopts its holder or reports a collision
    (Zendesk organization names)."""
    IDENTITY = "identity"
    """The value that identifies the record in both systems, unique (case-insensitively) among
    the Zendesk records of its kind: a change claims it or is reported (a user's e-mail)."""

    @property
    def unique(self) -> bool:
        """Whether Zendesk holds the value unique among records of the kind."""
        return self is not Role.VALUE


@attrs.frozen
class Reference:
    """A property whose value is a record id, translated through the links of ``flows``.

    ``flows`` are tried in order (a PowerOffice id linked in several is read in the first); they
    must share one Zendesk kind. ``names`` is what reports call the record referred to
    (``party_unknown``); ``unsynced`` are PowerOffice kinds the value may also name that no flow
    links: such a value is reported as ``<names>_is_<kind>`` (``party_is_supplier``), so a run
    reads those kinds too.
    """

    flows: tuple[str, ...]
    names: str = "party"
    unsynced: tuple[Kind, ...] = ()


@attrs.frozen
class PropertyMap:
    """One PowerOffice property paired with one Zendesk property, and what it is to the sync.

    ``datatype`` is the declared type the checklist shows; ``compare_as`` is how values are
    normalised before they are compared. ``role`` marks a unique name or identity value
    (``Role``). ``reference`` marks a reference: the value is a record id translated through
    the links of other flows (PowerOffice customer id ⇄ Zendesk organization id) instead of
    being copied.
    """

    poweroffice: str
    zendesk: str
    datatype: str = "string"
    compare_as: Datatype = Datatype.STRING
    role: Role = Role.VALUE
    reference: Reference | None = None

    @property
    def is_reference(self) -> bool:
        """Whether the value is an id translated through other flows' links."""
        return self.reference is not None

    @property
    def reference_flows(self) -> tuple[str, ...]:
        """The flows a reference may point into (none for a plain value)."""
        return self.reference.flows if self.reference is not None else ()

    def name_in(self, system: System) -> str:
        """The property's name on ``system``'s records."""
        return self.poweroffice if system is System.POWEROFFICE else self.zendesk

    def value_of(self, record: Record) -> FieldValue:
        """The normalised value ``record`` holds for this property (by its side's name)."""
        return normalise(record.get(self.name_in(record.key.system)), self.compare_as)


@attrs.frozen
class IdentityRule:
    """How a pair is first linked: all property pairs must be equal after normalisation."""

    properties: tuple[PropertyMap, ...]


@attrs.frozen
class RecordFilter:
    """Which PowerOffice records take part in a flow: ``field`` must normalise to ``equals``."""

    field: str
    equals: str

    def accepts(self, record: Record) -> bool:
        """Whether ``record`` takes part."""
        value = record.get(self.field)
        return value is not None and value.strip().casefold() == self.equals


class Counterpart(enum.StrEnum):
    """Who gets a counterpart created when no link exists."""

    NOBODY = "nobody"
    ZENDESK = "zendesk"  # every PowerOffice record gets a Zendesk record
    POWEROFFICE = "poweroffice"  # every Zendesk record gets a PowerOffice record
    BOTH = "both"


@attrs.frozen
class Flow:
    """One flow: a PowerOffice kind paired with a Zendesk kind, with its rules."""

    id: str
    poweroffice_kind: Kind
    zendesk_kind: Kind
    identity: IdentityRule | None
    properties: tuple[PropertyMap, ...]
    counterpart: Counterpart = Counterpart.NOBODY
    poweroffice_filter: RecordFilter | None = None
    poweroffice_title: str = ""
    zendesk_title: str = ""
    zendesk_origin_field: str | None = None
    """The Zendesk field a record this flow creates carries its origin key in (``external_id``):
    a record found carrying it is linked instead of created again. ``None``: found again only
    through the journal after a crash."""

    @property
    def refers(self) -> bool:
        """Whether a property of this flow refers into other flows."""
        return any(p.is_reference for p in self.properties)

    @property
    def references(self) -> tuple[PropertyMap, ...]:
        """The properties of this flow that refer into other flows."""
        return tuple(p for p in self.properties if p.is_reference)

    @property
    def name_property(self) -> PropertyMap | None:
        """The property that is the Zendesk record's unique name (``Role.NAME``), if any."""
        for prop in self.properties:
            if prop.role is Role.NAME and not prop.is_reference:
                return prop
        return None

    def kind_in(self, system: System) -> Kind:
        """The kind of record this flow pairs on ``system``."""
        return self.poweroffice_kind if system is System.POWEROFFICE else self.zendesk_kind

    def takes_part(self, record: Record) -> bool:
        """Whether a PowerOffice record belongs to this flow."""
        if record.kind is not self.poweroffice_kind:
            return False
        return self.poweroffice_filter is None or self.poweroffice_filter.accepts(record)

    @property
    def creates_in_zendesk(self) -> bool:
        """Whether unlinked PowerOffice records get a Zendesk counterpart."""
        return self.counterpart in (Counterpart.ZENDESK, Counterpart.BOTH)

    @property
    def creates_in_poweroffice(self) -> bool:
        """Whether unlinked Zendesk records get a PowerOffice counterpart."""
        return self.counterpart in (Counterpart.POWEROFFICE, Counterpart.BOTH)


@attrs.frozen
class Dataflow:
    """An ordered set of flows; a flow comes after every flow its references point into.

    Built only valid: a reference names flows that come before it and share one Zendesk kind
    (``ValueError`` otherwise), because the planner translates references through links and
    creates made by the flows before.
    """

    flows: tuple[Flow, ...]
    title: str = "PowerOffice Go to Zendesk Support Dataflow"

    def __attrs_post_init__(self) -> None:
        seen: dict[str, Flow] = {}
        for flow in self.flows:
            if flow.id in seen:
                raise ValueError(f"two flows are named {flow.id!r}")
            for prop in flow.properties:
                _check_reference(flow, prop, seen)
            seen[flow.id] = flow
        _check_one_reference_field_per_kind(self.flows)

    def unique_properties(self, kind: Kind) -> tuple[PropertyMap, ...]:
        """The properties Zendesk holds unique among records of ``kind`` (``Role.NAME`` and
        ``Role.IDENTITY``), from every flow pairing that kind, each once."""
        found: dict[str, PropertyMap] = {}
        for flow in self.flows:
            if flow.zendesk_kind is not kind:
                continue
            matched = flow.identity.properties if flow.identity is not None else ()
            for prop in (*flow.properties, *matched):
                if prop.role.unique and not prop.is_reference:
                    found.setdefault(prop.zendesk, prop)
        return tuple(found.values())

    def kinds(self, system: System) -> frozenset[Kind]:
        """The kinds a run reads from ``system``: every flow's, and those references may name."""
        kinds = {flow.kind_in(system) for flow in self.flows}
        for flow in self.flows:
            for prop in flow.properties:
                if prop.reference is not None:
                    kinds |= {k for k in prop.reference.unsynced if k.system is system}
        return frozenset(kinds)

    def sharing_zendesk_kind(self, kind: Kind) -> list[Flow]:
        """The flows whose Zendesk records are of ``kind`` (they share its unique names)."""
        return [flow for flow in self.flows if flow.zendesk_kind is kind]

    def referring_to(self, flow_id: str) -> list[tuple[Flow, PropertyMap]]:
        """The flows with a reference that may point into ``flow_id``, each with that property."""
        return [
            (flow, prop)
            for flow in self.flows
            for prop in flow.references
            if flow_id in prop.reference_flows
        ]

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)

    def flow(self, flow_id: str) -> Flow:
        """The flow named ``flow_id``."""
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise KeyError(f"no flow named {flow_id!r}")

    @property
    def ids(self) -> tuple[str, ...]:
        """The flow ids in order."""
        return tuple(flow.id for flow in self.flows)


def _check_reference(flow: Flow, prop: PropertyMap, before: Mapping[str, Flow]) -> None:
    if prop.reference is None:
        return
    where = f"flow {flow.id!r}, property {prop.poweroffice!r}"
    if not prop.reference.flows:
        raise ValueError(f"{where}: a reference names at least one flow")
    unknown = [f for f in prop.reference.flows if f not in before]
    if unknown:
        raise ValueError(f"{where}: refers to {unknown[0]!r}, which is not a flow before it")
    if len({before[f].zendesk_kind for f in prop.reference.flows}) != 1:
        raise ValueError(f"{where}: the flows it refers to hold different Zendesk kinds")


def _check_one_reference_field_per_kind(flows: tuple[Flow, ...]) -> None:
    """A kind refers through one field on each side: the stores index that field to find who
    refers to a record whose link ends (``Lookup.REFERENCE``)."""
    fields: dict[Kind, tuple[str, str]] = {}
    for flow in flows:
        for prop in flow.references:
            for system in System:
                kind, name = flow.kind_in(system), prop.name_in(system)
                first = fields.setdefault(kind, (flow.id, name))
                if first[1] != name:
                    raise ValueError(
                        f"flow {flow.id!r}: {kind} refers through {name!r}, but flow"
                        f" {first[0]!r} refers through {first[1]!r}; a kind refers through"
                        " one field"
                    )


CONTACT_PERSONS = "contact-persons-users"
PERSON_CUSTOMERS = "person-customers-users"
CUSTOMERS = "customers-organizations"
DEPARTMENTS = "departments-organizations"

_CONTACT_EMAIL = PropertyMap("emailAddress", "email", compare_as=Datatype.EMAIL, role=Role.IDENTITY)

# Flow order matters: the organization flows are planned and applied first, so a user whose
# organization is created in the same run can refer to it.
DEFAULT_DATAFLOW = Dataflow(
    flows=(
        Flow(
            id=CUSTOMERS,
            poweroffice_kind=Kind.CUSTOMER,
            zendesk_kind=Kind.ORGANIZATION,
            identity=None,
            properties=(PropertyMap("Name", "name", role=Role.NAME),),
            counterpart=Counterpart.ZENDESK,
            poweroffice_title="Customer",
            zendesk_title="Organization",
            zendesk_origin_field="external_id",
        ),
        Flow(
            id=DEPARTMENTS,
            poweroffice_kind=Kind.DEPARTMENT,
            zendesk_kind=Kind.ORGANIZATION,
            identity=None,
            properties=(PropertyMap("Name", "name", role=Role.NAME),),
            counterpart=Counterpart.ZENDESK,
            poweroffice_title="Department",
            zendesk_title="Organization",
            zendesk_origin_field="external_id",
        ),
        Flow(
            id=CONTACT_PERSONS,
            poweroffice_kind=Kind.CONTACT_PERSON,
            zendesk_kind=Kind.USER,
            identity=IdentityRule((_CONTACT_EMAIL,)),
            properties=(
                _CONTACT_EMAIL,
                PropertyMap(
                    "partyId",
                    "organization_id",
                    compare_as=Datatype.ID,
                    # A contact person's party may be a supplier, which no flow links.
                    reference=Reference((CUSTOMERS,), names="party", unsynced=(Kind.SUPPLIER,)),
                ),
            ),
            poweroffice_title="Contact person",
            zendesk_title="User",
        ),
        Flow(
            id=PERSON_CUSTOMERS,
            poweroffice_kind=Kind.CUSTOMER,
            zendesk_kind=Kind.USER,
            identity=IdentityRule(
                (
                    PropertyMap(
                        "EmailAddress", "email", compare_as=Datatype.EMAIL, role=Role.IDENTITY
                    ),
                )
            ),
            properties=(),
            poweroffice_filter=RecordFilter("IsPerson", "true"),
            poweroffice_title="Customer (person)",
            zendesk_title="User",
        ),
    )
)
"""The four flows of the specification, organization flows first."""


def render_checklist(
    dataflow: Dataflow, *, generated: datetime | None = None, markup: str = "rst"
) -> str:
    """Render ``dataflow`` as the QA checklist document (``markup`` is ``rst`` or ``markdown``).

    ``rst`` is the commissioned checklist, layout kept exactly: the generation time (required),
    quoted data types, header-only tables. ``markdown`` is the view for people: no time (the
    same dataflow gives the same bytes), flow ids, bare types, "none" for an empty list.
    """
    if markup not in ("rst", "markdown"):
        raise ValueError(f"unknown markup {markup!r}: use 'rst' or 'markdown'")
    people = markup == "markdown"
    out = _Markup(markdown=people)
    out.heading(dataflow.title, level=0)
    if not people:
        if generated is None:
            raise ValueError("the rst checklist states its generation time: pass generated")
        out.para(f"Generated {generated.isoformat(timespec='seconds')}.")
    out.para(
        "This checklist lists, flow by flow, how records of PowerOffice Go and Zendesk Support "
        "are linked and which properties are kept equal. Check each item against both systems."
    )
    for flow in dataflow.flows:
        out.heading(f"{flow.poweroffice_title} to {flow.zendesk_title}", level=1)
        if people:
            out.para(f"Flow id: `{flow.id}`")
        if flow.identity is not None:
            out.para(
                "A link must exist between the two records before anything is synced. "
                "Records are linked when these properties are equal:"
            )
            out.table(
                ("PowerOffice property", "Zendesk property"),
                [(p.poweroffice, p.zendesk) for p in flow.identity.properties],
            )
        else:
            out.para(
                "Every record gets a counterpart: a record with no link causes one to be created."
            )
        out.para(
            "Once linked, the pair stays in sync whichever side is edited. "
            "These properties are synced:"
        )
        rows: list[tuple[str, ...]] = [
            (p.poweroffice, p.zendesk, str(p.datatype) if people else f'"{p.datatype}"')
            for p in flow.properties
        ]
        if people and not rows:
            out.para("none")
        else:
            out.table(("PowerOffice property", "Zendesk property", "Data type"), rows)
    return out.text()


def checklist_data(dataflow: Dataflow) -> list[dict[str, object]]:
    """The checklist as JSON-ready data: per flow its id, titles, identity and properties."""
    return [
        {
            "id": flow.id,
            "poweroffice": flow.poweroffice_title,
            "zendesk": flow.zendesk_title,
            "identity": None
            if flow.identity is None
            else [
                {"poweroffice": p.poweroffice, "zendesk": p.zendesk}
                for p in flow.identity.properties
            ],
            "properties": [
                {"poweroffice": p.poweroffice, "zendesk": p.zendesk, "datatype": str(p.datatype)}
                for p in flow.properties
            ],
        }
        for flow in dataflow.flows
    ]


@attrs.define
class _Markup:
    markdown: bool
    lines: list[str] = attrs.Factory(list)

    def heading(self, title: str, level: int) -> None:
        if self.markdown:
            self.lines += [f"{'#' * (level + 1)} {title}", ""]
        else:
            bar = ("=", "-")[min(level, 1)] * len(title)
            self.lines += ([bar] if level == 0 else []) + [title, bar, ""]

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def table(self, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
        if self.markdown:
            self.lines.append("| " + " | ".join(header) + " |")
            self.lines.append("|" + "---|" * len(header))
            self.lines += ["| " + " | ".join(row) + " |" for row in rows]
            self.lines.append("")
            return
        self.lines += [".. list-table::", "   :header-rows: 1", ""]
        for row in [header, *rows]:
            self.lines.append(f"   * - {row[0]}")
            self.lines += [f"     - {cell}" for cell in row[1:]]
        self.lines.append("")

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def field_map(flow: Flow) -> Mapping[str, PropertyMap]:
    """The flow's synced properties by PowerOffice name."""
    return {p.poweroffice: p for p in flow.properties}


__all__ = [
    "CONTACT_PERSONS",
    "CUSTOMERS",
    "DEFAULT_DATAFLOW",
    "DEPARTMENTS",
    "PERSON_CUSTOMERS",
    "Counterpart",
    "Dataflow",
    "FieldValue",
    "Flow",
    "IdentityRule",
    "PropertyMap",
    "RecordFilter",
    "Reference",
    "Role",
    "checklist_data",
    "field_map",
    "render_checklist",
]
