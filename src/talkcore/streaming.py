"""The full reconcile, streamed (issue 13): a full read kept as its differences from the mirror.

A full run (the first one, ``--full``, the periodic one) reads every record of both systems.
Planning that over both whole mirrors costs memory in proportion to the data. Instead, when
the mirrors already hold a settled state, each page of the full read is compared with the
mirror through the store's view as it arrives. Only what differs is kept: records that changed
or are new, plus the mirrored records the read no longer holds (deletes, found once the read
is done). That is exactly what an incremental read with a perfect change feed would hand
over, so the run plans it over the working set like any incremental run. The law
"incremental plan = full plan" (tests/unit/test_properties.py) makes that plan the full plan.

What a full plan does beyond the differences is tied to what it plans under. A changed dataflow
or policy may reach records that did not change, so the basis a full plan covered every record
under (``plan_basis``) is kept in the state; a full run streams only while it still matches,
and a stopped run clears it (its reads are in the mirror but were not all planned).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

import attrs

from talkcore.dataflow import Dataflow
from talkcore.policy import SyncPolicy
from talkcore.ports import MirrorView
from talkcore.records import (
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordKey,
    Snapshot,
    drain,
    fold_read,
    supersedes,
)


def plan_basis(dataflow: Dataflow, policy: SyncPolicy) -> str:
    """A fingerprint of what a plan is made under: the dataflow and the policy.

    Their ``repr`` is plain data (attrs classes, enums, tuples); flows are sorted so that
    a policy's order of settings does not count. How often the full reconcile runs does not
    change any plan, so it is left out.
    """
    settled = attrs.evolve(
        policy,
        flows=dict(sorted(policy.flows.items())),
        full_reconcile_every=timedelta(0),
    )
    text = f"{dataflow!r}\n{settled!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class StreamedRead:
    """A full read of one system as its differences from the mirror.

    ``read`` is shaped as an incremental read (``full`` false): the records that differ from
    the mirror, the read's cursors and problems. ``removed`` are the mirrored records the read
    did not hold (only when it was full: a read with problems proves no absence);
    ``complete`` are the kinds it read whole. ``count`` is how many records it read.
    """

    read: ReadResult
    removed: frozenset[RecordKey]
    complete: frozenset[Kind]
    count: int


def stream_full_read(view: MirrorView, pages: ReadPages) -> StreamedRead:
    """Take a full read page by page and keep what differs from the mirror ``view`` holds.

    Memory holds one page, the differences, and the ids seen (to find the deletes).
    """
    diff = _Diff(view)
    summary = drain(pages, diff.take)
    removed: set[RecordKey] = set()
    if summary.full:
        for kind in sorted(summary.kinds):
            seen = diff.seen.get(kind, set())
            removed |= {RecordKey.of(kind, rid) for rid in view.mirror_ids(kind) if rid not in seen}
    read = attrs.evolve(summary, records=tuple(diff.changed.values()), full=False)
    complete = summary.kinds if summary.full else frozenset()
    return StreamedRead(read, frozenset(removed), frozenset(complete), diff.count)


@attrs.define
class _Diff:
    view: MirrorView
    changed: dict[RecordKey, Record] = attrs.Factory(dict)
    seen: dict[Kind, set[str]] = attrs.Factory(dict)
    count: int = 0

    def take(self, page: Sequence[Record]) -> None:
        """Compare one page with the mirror; keep the records that differ from it."""
        self.count += len(page)
        stored = self.view.records([record.key for record in page])
        for record in page:
            key = record.key
            seen = self.seen.setdefault(key.kind, set())
            # A record read again: the version kept so far is the changed one, or else the
            # mirror's (it was equal to it); the newer of the two stays.
            known = self.changed.get(key) or (stored.get(key) if key.id in seen else None)
            if known is not None and not supersedes(record, known):
                continue
            seen.add(key.id)
            if stored.get(key) == record:
                self.changed.pop(key, None)
            else:
                self.changed[key] = record


def fold_streamed(mirror: Snapshot, streamed: StreamedRead) -> Snapshot:
    """Fold a streamed full read into (part of) a mirror: the changed records put in, the
    removed ones taken out, the kinds read whole marked complete."""
    folded = fold_read(mirror, streamed.read)
    by_kind = {
        kind: {
            rid: record
            for rid, record in records.items()
            if RecordKey(mirror.system, kind, rid) not in streamed.removed
        }
        for kind, records in folded.records.items()
    }
    return Snapshot(mirror.system, by_kind, folded.complete | streamed.complete)


__all__ = ["StreamedRead", "fold_streamed", "plan_basis", "stream_full_read"]
