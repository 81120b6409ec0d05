"""The ports: what the engine needs from each system and from the state store, and the messages
that cross them (write requests, their results and errors).

Adapters implement these structurally (``typing.Protocol``); talkcore never sees how.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from talkcore.records import (
    FieldValue,
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordKey,
    Snapshot,
    System,
)

if TYPE_CHECKING:  # state folds these messages, so it imports this module, not the reverse
    from talkcore.engine import RunReport
    from talkcore.state import Link, SyncState


class WriteOp(enum.StrEnum):
    """What a write does."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@attrs.frozen
class WriteRequest:
    """One write, ready for a system port: logical field names, plain values.

    ``item_id`` ties the write to its plan item (an opaque key: nothing reads meaning out of
    it); ``origin_key`` (creates) is the stable key the created record carries so it can be
    found again after a crash: ``str(source)``. ``current`` holds the target record's fields as
    last seen, for adapters whose URLs need them (a PowerOffice contact person is addressed
    under its ``partyId``). ``flow`` and ``source`` say, typed, which flow the write belongs to
    and which record a create copies: crash recovery links a found record by them.
    ``releases`` holds the current values of written fields that the flow owns and the write
    may let go of; a current value not listed belongs to no flow and must be kept (a Zendesk
    user's other organization memberships).
    """

    item_id: str
    op: WriteOp
    kind: Kind
    id: str | None
    fields: Mapping[str, FieldValue] = attrs.field(factory=dict)
    origin_key: str | None = None
    current: Mapping[str, FieldValue] = attrs.field(factory=dict)
    flow: str | None = None
    source: RecordKey | None = None
    releases: Mapping[str, FieldValue] = attrs.field(factory=dict)


@attrs.frozen
class WriteError:
    """Why one write failed, naming the record and (where known) the field."""

    code: str
    message: str
    record: str = ""
    field: str | None = None
    retryable: bool = False

    def __str__(self) -> str:
        where = f"{self.record}: " if self.record else ""
        what = f"field {self.field!r}: " if self.field else ""
        return f"{where}{what}{self.message} ({self.code})"


@attrs.frozen
class WriteResult:
    """The outcome of one write: the record as the system stored it, or the error."""

    item_id: str
    record: Record | None = None
    error: WriteError | None = None

    @property
    def ok(self) -> bool:
        """Whether the write was applied."""
        return self.error is None


def _ignore(count: int) -> None:
    del count


def _never() -> bool:
    return False


@attrs.frozen
class ApplyHooks:
    """What the engine lends a port's ``apply``: a progress report and the stop check.

    ``settled(n)`` is called each time ``n`` more writes have their outcome known: per bulk
    call or per request, so progress on a long write moves with the calls, not per batch.
    ``should_stop`` is asked between calls (and while waiting on a bulk job); once it answers
    ``True`` the port sends nothing new and returns promptly: a write it sent whose outcome it
    cannot know yet gets an ``in_doubt`` error (the next run finds a created record by its
    origin key), and a write it never sent gets no result at all.
    """

    settled: Callable[[int], None] = _ignore
    should_stop: Callable[[], bool] = _never


NO_HOOKS = ApplyHooks()
"""Hooks that report nothing and never stop (a port called on its own)."""


class SystemUnavailable(Exception):
    """A system could not be reached or refused our credentials; the run cannot go on."""


class AlreadyRunning(Exception):
    """Another run holds the state store's lock."""


class SystemPort(Protocol):
    """One remote system (PowerOffice Go or Zendesk Support) as the engine sees it."""

    @property
    def system(self) -> System:
        """Which system this port talks to."""
        ...

    def read(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadResult:
        """Read ``kinds``: everything when ``cursors`` is ``None``, else what changed since them.

        Raises ``SystemUnavailable`` when the system cannot be read; a partial read is never
        returned as complete. The same read as ``collect_read(self.read_pages(...))``.
        """
        ...

    def read_pages(self, kinds: frozenset[Kind], cursors: Mapping[str, str] | None) -> ReadPages:
        """``read``, handed over a page at a time (``ReadPages``), so a full reconcile can
        compare each page with the mirror and keep only what differs (issue 13).

        The pages may repeat a record (``supersedes`` says which version wins); the summary it
        returns holds the cursors, the problems and whether the read was full.
        """
        ...

    def apply(
        self, writes: Sequence[WriteRequest], hooks: ApplyHooks = NO_HOOKS
    ) -> list[WriteResult]:
        """Apply ``writes`` (bulk where the system allows), one result per write, in any order.

        A write that fails gives a result with an error; only a failure of the whole system
        raises ``SystemUnavailable``. ``hooks`` hears of progress and may ask the port to stop
        (see ``ApplyHooks``): then the writes never sent are left out of the results.
        """
        ...

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> Mapping[str, Record]:
        """The records of ``kind`` carrying any of ``origin_keys``, by origin key."""
        ...

    def check(self) -> str:
        """Prove the credentials and the connection with one cheap request.

        Returns a line naming what was reached; raises as ``read`` does when it cannot.
        """
        ...


class Lookup(enum.StrEnum):
    """What a mirror view finds records by (each a normalised key the store keeps indexed).

    Which property holds each is read from the dataflow's roles (``talkcore.view``), never
    from property names.
    """

    IDENTITY = "identity"
    """The identity value (``Role.IDENTITY``; an e-mail in the default dataflow)."""
    NAME = "name"
    """The unique name (``Role.NAME``)."""
    ORIGIN = "origin"
    """The origin key a created Zendesk record carries (``Flow.zendesk_origin_field``)."""
    REFERENCE = "reference"
    """The id a kind's reference property names (``PropertyMap.reference``): who refers to a
    record whose link ends."""


class MirrorView(Protocol):
    """A read-only view over the mirrors and links, answering the planner's questions by key
    (issue 13): an incremental run reads what its changes touch, never a whole mirror."""

    def records(self, keys: Sequence[RecordKey]) -> Mapping[RecordKey, Record]:
        """The mirrored records of ``keys`` that the mirrors hold (absent keys are left out).

        Inactive records are returned too.
        """
        ...

    def find(self, kind: Kind, lookup: Lookup, values: Sequence[str]) -> list[Record]:
        """The mirrored records of ``kind`` whose ``lookup`` key is one of ``values``.

        ``values`` are keys as ``talkcore.view.lookup_key`` computes them; inactive records
        are returned too.
        """
        ...

    def links_touching(self, flow: str, system: System, ids: Sequence[str]) -> list[Link]:
        """The links of ``flow`` whose ``system``-side id is one of ``ids`` (issue 13).

        A look-up by key, so an incremental run reads the links of its changed records
        without loading every link table.
        """
        ...

    def link_count(self, flow: str) -> int:
        """How many links ``flow`` has (the delete cap is a share of them)."""
        ...

    def mirror_holds_records(self, system: System) -> bool:
        """Whether the mirror of ``system`` holds any record (an empty one means a full run)."""
        ...

    def mirror_complete(self, system: System) -> frozenset[Kind]:
        """The kinds of ``system`` whose last read was a full read (``Snapshot.complete``)."""
        ...

    def mirror_ids(self, kind: Kind) -> Iterator[str]:
        """The ids of every mirrored record of ``kind``, streamed (not a list): a streamed full
        reconcile finds the records a full read no longer holds with them."""
        ...


class StateStore(MirrorView, Protocol):
    """Where link state, mirrors, the journal and the run log live between runs."""

    def lock(self) -> AbstractContextManager[None]:
        """Hold the store for one run; raises ``AlreadyRunning`` at once if another holds it."""
        ...

    def load_state(self) -> SyncState:
        """The state the last run left (empty on first use)."""
        ...

    def load_state_except_links(self) -> SyncState:
        """The state the last run left without its link tables (an incremental run reads the
        links it needs through ``links_touching``)."""
        ...

    def load_mirror(self, system: System) -> Snapshot:
        """The last-seen records of ``system`` (empty on first use)."""
        ...

    def save(self, state: SyncState, mirrors: Sequence[Snapshot]) -> None:
        """Save ``state`` and ``mirrors`` atomically: all of it or none."""
        ...

    def save_partial(
        self,
        state: SyncState,
        mirrors: Sequence[Snapshot],
        since: tuple[SyncState, Sequence[Snapshot]],
    ) -> None:
        """Save part of the whole, atomically: an incremental run's state and mirrors, which
        hold only what it read through the view (``since``) and what it changed.

        What differs from ``since`` is written (links and records gone or changed, the small
        state whole); every link and record not in it is kept.
        """
        ...

    def journal_intents(self, run_id: str, writes: Sequence[WriteRequest]) -> None:
        """Durably record writes about to be sent, before they are sent."""
        ...

    def journal_results(self, run_id: str, results: Sequence[WriteResult]) -> None:
        """Durably record the outcome of journaled writes."""
        ...

    def open_intents(self) -> list[WriteRequest]:
        """Journaled writes with no recorded outcome (a run died while sending them)."""
        ...

    def close_intents(self, item_ids: Sequence[str]) -> None:
        """Mark journaled writes as settled (reconciled after a crash)."""
        ...

    def record_run(self, report: RunReport) -> None:
        """Append one run's report to the run log, kept in the shape ``sync --json`` prints
        (``adapters.reportjson``; talkcore does not know JSON)."""
        ...

    def recent_runs(self, limit: int = 10) -> Sequence[Mapping[str, Any]]:
        """The last ``limit`` reports of the run log, newest first."""
        ...
