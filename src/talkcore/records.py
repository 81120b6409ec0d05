"""Records as both systems hold them, seen through the dataflow's logical property names.

This module owns the value types every other part speaks in: which system a record lives in,
what kind it is, its identity, its fields, and a snapshot of one system's records.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

import attrs


class System(enum.StrEnum):
    """One of the two systems kept in sync."""

    POWEROFFICE = "poweroffice"
    ZENDESK = "zendesk"

    @property
    def other(self) -> System:
        """The system on the other side of every flow."""
        return System.ZENDESK if self is System.POWEROFFICE else System.POWEROFFICE


class Kind(enum.StrEnum):
    """The kinds of record the dataflow knows about."""

    CUSTOMER = "customer"
    CONTACT_PERSON = "contact_person"
    DEPARTMENT = "department"
    SUPPLIER = "supplier"
    USER = "user"
    ORGANIZATION = "organization"

    @property
    def system(self) -> System:
        """The system records of this kind live in."""
        if self in (Kind.USER, Kind.ORGANIZATION):
            return System.ZENDESK
        return System.POWEROFFICE


FieldValue = str | None
"""Every synced property is typed "string" by the dataflow; absent and empty are ``None``."""

KeyFunction = Callable[[FieldValue], str | None]
"""How a field value becomes an index key (a normalisation); ``None`` leaves it out."""
IndexSpec = tuple["Kind", str, KeyFunction]


@attrs.frozen(order=True)
class RecordKey:
    """The identity of one record: system, kind and the id that system gave it."""

    system: System
    kind: Kind
    id: str

    def __str__(self) -> str:
        return f"{self.system}:{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> RecordKey:
        """The key ``str(key)`` printed: ``system:kind:id`` (the id may itself hold colons).

        The one reader of that form; raises ``ValueError`` naming the text when it is not one.
        """
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise ValueError(f"{text!r} is not a record key (system:kind:id)")
        try:
            key = cls(System(parts[0]), Kind(parts[1]), parts[2])
        except ValueError:
            raise ValueError(f"{text!r} is not a record key (system:kind:id)") from None
        if key.kind.system is not key.system:
            raise ValueError(f"{text!r}: a {key.kind} record does not live in {key.system}")
        return key

    @classmethod
    def of(cls, kind: Kind, id: str | int) -> RecordKey:
        """The key of a record of ``kind`` (whose system is implied) with ``id``."""
        return cls(kind.system, kind, str(id))


def _freeze_fields(fields: Mapping[str, FieldValue]) -> Mapping[str, FieldValue]:
    return dict(fields)


@attrs.frozen(hash=False)
class Record:
    """One record as last seen: its key, its logical fields, when it last changed, and liveness.

    ``fields`` use the dataflow's logical names (for example ``emailAddress`` and ``partyId`` on
    a contact person, ``email`` and ``organization_id`` on a Zendesk user). ``active`` is false for
    records that are deleted, archived or deactivated on their side.
    """

    key: RecordKey
    fields: Mapping[str, FieldValue] = attrs.field(converter=_freeze_fields, factory=dict)
    modified: datetime | None = None
    active: bool = True

    def get(self, name: str) -> FieldValue:
        """The value of the logical property ``name``, or ``None`` when the record lacks it."""
        return self.fields.get(name)

    @property
    def id(self) -> str:
        """Shorthand for ``key.id``."""
        return self.key.id

    @property
    def kind(self) -> Kind:
        """Shorthand for ``key.kind``."""
        return self.key.kind


@attrs.frozen(hash=False)
class Snapshot:
    """Every known record of one system, by kind and id.

    ``complete`` holds the kinds whose last read was a successful full read: only for those may a
    record's absence be taken to mean it was deleted.
    """

    system: System
    records: Mapping[Kind, Mapping[str, Record]] = attrs.field(factory=dict)
    complete: frozenset[Kind] = frozenset()
    # Lookup indexes by a normalised field value, built on first use and carried forward
    # (patched, not rebuilt) by ``fold_read`` and ``upsert``, so planning a few changes over a
    # large mirror never scans it.
    _indexes: dict[IndexSpec, dict[str, tuple[str, ...]]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )

    @classmethod
    def of(
        cls, system: System, records: Iterable[Record], *, complete: Iterable[Kind] = ()
    ) -> Snapshot:
        """Build a snapshot from loose records (all of ``system``)."""
        by_kind: dict[Kind, dict[str, Record]] = {}
        for record in records:
            if record.key.system is not system:
                raise ValueError(f"record {record.key} does not belong to {system}")
            by_kind.setdefault(record.key.kind, {})[record.key.id] = record
        return cls(system, by_kind, frozenset(complete))

    def of_kind(self, kind: Kind) -> Mapping[str, Record]:
        """The records of ``kind`` by id (empty when none are known)."""
        return self.records.get(kind, {})

    def get(self, key: RecordKey) -> Record | None:
        """The record with ``key``, if known."""
        return self.records.get(key.kind, {}).get(key.id)

    def lookup(self, kind: Kind, field: str, key: KeyFunction, value: str) -> list[Record]:
        """The records of ``kind`` whose ``field``, under ``key``, equals ``value``."""
        index = self.index(kind, field, key)
        records = self.of_kind(kind)
        return [records[rid] for rid in index.get(value, ())]

    def index(self, kind: Kind, field: str, key: KeyFunction) -> Mapping[str, tuple[str, ...]]:
        """Ids of ``kind`` by ``key(field value)`` (empty keys left out); built once, then kept."""
        spec = (kind, field, key)
        index = self._indexes.get(spec)
        if index is None:
            index = {}
            for rid, record in self.of_kind(kind).items():
                value = key(record.fields.get(field))
                if value is not None:
                    index[value] = (*index.get(value, ()), rid)
            self._indexes[spec] = index
        return index

    def _carry_indexes(self, old: Snapshot, changed: Iterable[Record], dropped: set[Kind]) -> None:
        """Take ``old``'s indexes over, patched for ``changed`` records (kinds not dropped)."""
        latest = list({record.key: record for record in changed}.values())
        for spec, index in old._indexes.items():
            kind, field, key = spec
            if kind in dropped:
                continue
            patched = dict(index)
            for record in latest:
                if record.key.kind is not kind:
                    continue
                before = old.get(record.key)
                was = key(before.fields.get(field)) if before is not None else None
                now = key(record.fields.get(field))
                if was == now and before is not None:
                    continue
                if was is not None:
                    rest = tuple(i for i in patched.get(was, ()) if i != record.key.id)
                    if rest:
                        patched[was] = rest
                    else:
                        patched.pop(was, None)
                if now is not None:
                    patched[now] = (*patched.get(now, ()), record.key.id)
            self._indexes[spec] = patched

    def __iter__(self) -> Iterator[Record]:
        for records in self.records.values():
            yield from records.values()

    def __len__(self) -> int:
        return sum(len(records) for records in self.records.values())


@attrs.frozen
class RecordProblem:
    """A record one side sent that could not be read as it should: names the record and field."""

    system: System
    kind: Kind
    record_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.system} {self.kind} {self.record_id}: field {self.field!r}: {self.message}"


@attrs.frozen(hash=False)
class ReadResult:
    """What one read of a system returned: records, problems, and where to continue next time.

    ``full`` says the read covered every record of ``kinds`` (so absences mean deletes);
    otherwise it holds only what changed since the cursor it was given.
    """

    system: System
    kinds: frozenset[Kind]
    records: tuple[Record, ...]
    full: bool
    cursors: Mapping[str, str] = attrs.field(factory=dict)
    problems: tuple[RecordProblem, ...] = ()


ReadPages = Generator[Sequence[Record], None, ReadResult]
"""A read handed over a page at a time (``SystemPort.read_pages``): it yields each page's
records as read (a record may come again on a later page) and returns the read's summary, its
kinds, cursors, problems and whether it was full, holding no records."""


def supersedes(candidate: Record, known: Record) -> bool:
    """Whether ``candidate``, read after ``known`` (the same record), takes its place.

    The later read wins unless the change times show it older: exports and paged lists may
    send one record several times while it changes.
    """
    if candidate.modified is None or known.modified is None:
        return True
    return candidate.modified >= known.modified


def drain(pages: ReadPages, take: Callable[[Sequence[Record]], None]) -> ReadResult:
    """Hand every page of ``pages`` to ``take``; the read's summary."""
    while True:
        try:
            page = next(pages)
        except StopIteration as done:
            summary: ReadResult = done.value
            return summary
        take(page)


def collect_read(pages: ReadPages) -> ReadResult:
    """A paged read as one ``ReadResult``: each record once, its newest version."""
    by_key: dict[RecordKey, Record] = {}

    def take(page: Sequence[Record]) -> None:
        for record in page:
            known = by_key.get(record.key)
            if known is None or supersedes(record, known):
                by_key[record.key] = record

    summary = drain(pages, take)
    return attrs.evolve(summary, records=tuple(by_key.values()))


def fold_read(mirror: Snapshot, read: ReadResult) -> Snapshot:
    """Fold one read into the mirror of its system: a full read replaces its kinds, else upsert."""
    if read.system is not mirror.system:
        raise ValueError(f"cannot fold a {read.system} read into the {mirror.system} mirror")
    by_kind: dict[Kind, dict[str, Record]] = {}
    for kind, records in mirror.records.items():
        by_kind[kind] = {} if (read.full and kind in read.kinds) else dict(records)
    for kind in read.kinds:
        by_kind.setdefault(kind, {})
    for record in read.records:
        by_kind.setdefault(record.key.kind, {})[record.key.id] = record
    complete = set(mirror.complete)
    if read.full:
        complete |= read.kinds
    folded = Snapshot(mirror.system, by_kind, frozenset(complete))
    folded._carry_indexes(mirror, read.records, set(read.kinds) if read.full else set())
    return folded


def upsert(mirror: Snapshot, records: Iterable[Record]) -> Snapshot:
    """The mirror with ``records`` (as a system stored them after a write) put in."""
    records = list(records)
    by_kind = {kind: dict(recs) for kind, recs in mirror.records.items()}
    for record in records:
        by_kind.setdefault(record.key.kind, {})[record.key.id] = record
    updated = Snapshot(mirror.system, by_kind, mirror.complete)
    updated._carry_indexes(mirror, records, set())
    return updated
