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


@attrs.frozen
class PropertyMap:
    """One PowerOffice property paired with one Zendesk property.

    ``datatype`` is the declared type the checklist shows; ``compare_as`` is how values are
    normalised before they are compared. ``reference_flow`` marks a reference: the value is a
    record id translated through the links of that flow (PowerOffice customer id ⇄ Zendesk
    organization id) instead of being copied.
    """

    poweroffice: str
    zendesk: str
    datatype: str = "string"
    compare_as: Datatype = Datatype.STRING
    reference_flow: str | None = None

    @property
    def is_reference(self) -> bool:
        """Whether the value is an id translated through another flow's links."""
        return self.reference_flow is not None

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
    """An ordered set of flows; organization flows come before the user flows referring to them."""

    flows: tuple[Flow, ...]
    title: str = "PowerOffice Go to Zendesk Support Dataflow"

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


CONTACT_PERSONS = "contact-persons-users"
PERSON_CUSTOMERS = "person-customers-users"
CUSTOMERS = "customers-organizations"
DEPARTMENTS = "departments-organizations"

# Flow order matters: the organization flows are planned and applied first, so a user whose
# organization is created in the same run can refer to it.
DEFAULT_DATAFLOW = Dataflow(
    flows=(
        Flow(
            id=CUSTOMERS,
            poweroffice_kind=Kind.CUSTOMER,
            zendesk_kind=Kind.ORGANIZATION,
            identity=None,
            properties=(PropertyMap("Name", "name"),),
            counterpart=Counterpart.ZENDESK,
            poweroffice_title="Customer",
            zendesk_title="Organization",
        ),
        Flow(
            id=DEPARTMENTS,
            poweroffice_kind=Kind.DEPARTMENT,
            zendesk_kind=Kind.ORGANIZATION,
            identity=None,
            properties=(PropertyMap("Name", "name"),),
            counterpart=Counterpart.ZENDESK,
            poweroffice_title="Department",
            zendesk_title="Organization",
        ),
        Flow(
            id=CONTACT_PERSONS,
            poweroffice_kind=Kind.CONTACT_PERSON,
            zendesk_kind=Kind.USER,
            identity=IdentityRule(
                (PropertyMap("emailAddress", "email", compare_as=Datatype.EMAIL),)
            ),
            properties=(
                PropertyMap("emailAddress", "email", compare_as=Datatype.EMAIL),
                PropertyMap(
                    "partyId", "organization_id", compare_as=Datatype.ID, reference_flow=CUSTOMERS
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
                (PropertyMap("EmailAddress", "email", compare_as=Datatype.EMAIL),)
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
    "checklist_data",
    "field_map",
    "render_checklist",
]
