"""Writing to Zendesk: bulk jobs where the API allows, single calls where it must.

Organizations are created with ``create_many`` carrying ``external_id`` = the write's origin key
and updated with ``update_many``; users are updated with ``update_many`` (falling back to single
calls, for the rest of the run, where a 403 says bulk import is off; any other 403 refuses that
kind's updates for the run, with one clear error), and their primary e-mail is changed through
identities. Deletes go by ``destroy_many``, 100 ids a job. Every successful write is answered
with the record as Zendesk stored it, read back with ``show_many``, so the core's bases are what
Zendesk really holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import structlog

from adapters.zendesk.errors import (
    ZendeskError,
    ZendeskForbidden,
    ZendeskInDoubt,
    ZendeskInvalid,
    describe,
    per_item,
)
from adapters.zendesk.jobs import JobUnfinished, JobWaiter, line_up, succeeded
from adapters.zendesk.mapping import (
    ORIGIN_FIELD,
    WRITABLE,
    organization_record,
    record_label,
    user_record,
    wire_fields,
    write_error,
)
from adapters.zendesk.transport import Reply, ZendeskHttp
from adapters.zendesk.user_changes import UserChanges
from adapters.zendesk.wire import (
    JobResultDTO,
    OrganizationDTO,
    UserDTO,
    WireError,
    items,
    member,
    structure,
)
from talkcore.ports import WriteError, WriteOp, WriteRequest, WriteResult
from talkcore.records import Kind, Record

log = structlog.get_logger()

BULK_SIZE = 100
RECONCILE_ROUNDS = 2
JOB_WINDOW = 10
"""Bulk jobs in flight at once (Zendesk queues at most 30 per account)."""
"""How often a create that failed in transit is reconciled and the missing part re-sent."""

_PLURAL = {Kind.USER: "users", Kind.ORGANIZATION: "organizations"}
_SINGULAR = {Kind.USER: "user", Kind.ORGANIZATION: "organization"}
T = TypeVar("T")


def chunks(values: Sequence[T], size: int = BULK_SIZE) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size`` (Zendesk's bulk limit)."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def to_record(kind: Kind, raw: Any) -> Record:
    """A wire object of ``kind`` as a record."""
    if kind is Kind.USER:
        return user_record(structure(raw, UserDTO))
    return organization_record(structure(raw, OrganizationDTO))


class ZendeskWriter:
    """Applies write requests; remembers for the run whether bulk user calls are allowed and
    which kinds the token may not update at all."""

    def __init__(
        self,
        http: ZendeskHttp,
        *,
        sleep: Callable[[float], None],
        remove_old_emails: bool = False,
    ) -> None:
        self.http = http
        self.jobs = JobWaiter(http, sleep)
        self.users = UserChanges(http, remove_old_emails=remove_old_emails)
        self.bulk_users = True
        self.refused: dict[Kind, ZendeskForbidden] = {}
        """Kinds whose updates Zendesk refused with a permission 403 in this run."""

    # -- entry point ------------------------------------------------------------------------

    def apply(self, writes: Sequence[WriteRequest]) -> list[WriteResult]:
        """One result per write; organizations are written before users."""
        results: dict[str, WriteResult] = {}
        todo: dict[tuple[Kind, WriteOp], list[WriteRequest]] = {}
        for write in writes:
            problem = self._refuse(write)
            if problem is not None:
                results[write.item_id] = WriteResult(write.item_id, error=problem)
            else:
                todo.setdefault((write.kind, write.op), []).append(write)
        # Per kind: deletes and renames before creates, because they free the unique names
        # and e-mails that the plan's creates may take.
        for kind in (Kind.ORGANIZATION, Kind.USER):
            if deletes := todo.get((kind, WriteOp.DELETE)):
                results.update(
                    self._pipelined(
                        kind, deletes, self._submit_delete_chunk, self._finish_delete_chunk
                    )
                )
            if updates := todo.get((kind, WriteOp.UPDATE)):
                if kind is Kind.USER:
                    results.update(self._update_users(updates))
                else:
                    results.update(
                        self._pipelined(
                            kind, updates, self._submit_update_chunk, self._finish_update_chunk
                        )
                    )
            if creates := todo.get((kind, WriteOp.CREATE)):
                results.update(
                    self._pipelined(
                        kind, creates, self._submit_create_chunk, self._finish_create_chunk
                    )
                )
        return [results[write.item_id] for write in writes]

    def _refuse(self, write: WriteRequest) -> WriteError | None:
        label = record_label(write.kind, write.id or write.origin_key)
        if write.kind not in WRITABLE:
            return WriteError("unsupported_kind", f"Zendesk has no {write.kind}", label)
        unknown = sorted(set(write.fields) - WRITABLE[write.kind])
        if unknown and write.op is not WriteOp.DELETE:
            return WriteError(
                "unsupported_field", "this field is not written to Zendesk", label, unknown[0]
            )
        if write.op is not WriteOp.CREATE and not (write.id and write.id.isdigit()):
            return WriteError("missing_id", "an update or delete needs the record's id", label)
        return None

    # -- bulk jobs, several in flight ----------------------------------------------------------

    def _pipelined(
        self,
        kind: Kind,
        writes: Sequence[WriteRequest],
        submit: Callable[[Kind, Sequence[WriteRequest]], Reply | dict[str, WriteResult]],
        finish: Callable[[Kind, Sequence[WriteRequest], Reply, bool], dict[str, WriteResult]],
    ) -> dict[str, WriteResult]:
        """Send bulk calls of 100 with up to ``JOB_WINDOW`` jobs queued at once, then collect.

        Waiting for each job before sending the next spends most of a large sync idle; Zendesk
        queues up to 30 jobs per account, so a window well under that keeps room for others.
        """
        out: dict[str, WriteResult] = {}
        in_flight: deque[tuple[Sequence[WriteRequest], Reply]] = deque()
        waited = False
        for chunk in chunks(writes):
            started = submit(kind, chunk)
            if not isinstance(started, Reply):
                out.update(started)
                continue
            in_flight.append((chunk, started))
            if len(in_flight) >= JOB_WINDOW:
                sent, reply = in_flight.popleft()
                out.update(finish(kind, sent, reply, waited))
                waited = True
        while in_flight:
            sent, reply = in_flight.popleft()
            out.update(finish(kind, sent, reply, waited))
            waited = True
        return out

    def _submit_update_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest]
    ) -> Reply | dict[str, WriteResult]:
        return self._submit_update(kind, chunk)

    def _finish_update_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest], reply: Reply, waited: bool
    ) -> dict[str, WriteResult]:
        # Once one job was waited for, later ones have had that time too: poll them at once.
        return self._finish_update(kind, chunk, reply, poll_first=waited)

    def _submit_create_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest]
    ) -> Reply | dict[str, WriteResult]:
        return self._submit_create(kind, chunk, RECONCILE_ROUNDS)

    def _finish_create_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest], reply: Reply, waited: bool
    ) -> dict[str, WriteResult]:
        return self._finish_create(kind, chunk, RECONCILE_ROUNDS, reply, poll_first=waited)

    # -- creates ----------------------------------------------------------------------------

    def _create(
        self, kind: Kind, chunk: Sequence[WriteRequest], rounds: int
    ) -> dict[str, WriteResult]:
        if kind is Kind.USER:
            # Users are created one by one: bulk user import is off on most accounts, and the
            # dataflow creates no users in its defaults.
            out: dict[str, WriteResult] = {}
            for write in chunk:
                out.update(self._create_single(kind, write, rounds))
            return out
        started = self._submit_create(kind, chunk, rounds)
        if not isinstance(started, Reply):
            return started
        return self._finish_create(kind, chunk, rounds, started, poll_first=False)

    def _submit_create(
        self, kind: Kind, chunk: Sequence[WriteRequest], rounds: int
    ) -> Reply | dict[str, WriteResult]:
        """Send one ``create_many``: its job to wait for, or the results when it went no further."""
        if kind is Kind.USER:
            return self._create(kind, chunk, rounds)
        payload = {"organizations": [self._create_payload(kind, w) for w in chunk]}
        try:
            return self.http.request(
                "POST", "/api/v2/organizations/create_many.json", json_body=payload
            )
        except ZendeskInDoubt as exc:
            log.warning("zendesk.create.in_doubt", kind=str(kind), count=len(chunk))
            return self._reconcile(kind, chunk, rounds, exc)
        except ZendeskInvalid as exc:
            if len(chunk) == 1:
                return {chunk[0].item_id: self._failure(chunk[0], exc)}
            # One bad record spoils the whole call (nothing was queued): send them singly so
            # each error names its own record.
            out = {}
            for write in chunk:
                out.update(self._create_single(kind, write, rounds))
            return out
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {w.item_id: self._failure(w, exc) for w in chunk}

    def _finish_create(
        self,
        kind: Kind,
        chunk: Sequence[WriteRequest],
        rounds: int,
        reply: Reply,
        *,
        poll_first: bool,
    ) -> dict[str, WriteResult]:
        """Wait for a ``create_many`` job and map its results (reconciling what is unknown)."""
        try:
            job = self.jobs.wait(reply, poll_first=poll_first)
        except (JobUnfinished, ZendeskInDoubt) as exc:
            return self._reconcile(kind, chunk, 0, exc)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {w.item_id: self._failure(w, exc) for w in chunk}
        lined = line_up(job, len(chunk))
        stored = self._show_many(kind, [str(r.id) for r in lined if r and succeeded(r) and r.id])
        by_origin = {
            (rec.get(ORIGIN_FIELD) or "").casefold(): rec
            for rec in stored.values()
            if rec.get(ORIGIN_FIELD)
        }
        out = {}
        retry: list[WriteRequest] = []
        for write, result in zip(chunk, lined, strict=True):
            origin = (write.origin_key or "").casefold()
            if origin and origin in by_origin:
                out[write.item_id] = WriteResult(write.item_id, by_origin[origin])
            elif result is not None and succeeded(result) and result.id is not None:
                out[write.item_id] = WriteResult(
                    write.item_id, stored.get(str(result.id)) or self._echo(kind, write, result)
                )
            elif result is not None and not succeeded(result):
                out[write.item_id] = self._job_failure(write, result)
            else:
                retry.append(write)
        if retry:
            failure = ZendeskError(
                f"job {job.id} ended {job.status} without a result for this record",
                code="no_result",
            )
            out.update(self._reconcile(kind, retry, 0, failure))
        return out

    def _create_single(
        self, kind: Kind, write: WriteRequest, rounds: int
    ) -> dict[str, WriteResult]:
        path = f"/api/v2/{_PLURAL[kind]}.json"
        body = {_SINGULAR[kind]: self._create_payload(kind, write)}
        try:
            reply = self.http.request("POST", path, json_body=body)
            record = to_record(kind, member(reply.body, _SINGULAR[kind]))
        except ZendeskInDoubt as exc:
            return self._reconcile(kind, [write], rounds, exc)
        except WireError as exc:
            return self._reconcile(kind, [write], 0, ZendeskError(str(exc), code="bad_response"))
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {write.item_id: self._failure(write, exc)}
        return {write.item_id: WriteResult(write.item_id, record)}

    def _create_payload(self, kind: Kind, write: WriteRequest) -> dict[str, Any]:
        payload = wire_fields(kind, write.fields)
        if write.origin_key:
            payload[ORIGIN_FIELD] = write.origin_key
        if kind is Kind.USER and payload.get("email"):
            # As for a new identity: without it Zendesk mails the address a verification link.
            payload["skip_verify_email"] = True
        return payload

    def _reconcile(
        self, kind: Kind, chunk: Sequence[WriteRequest], rounds: int, cause: ZendeskError
    ) -> dict[str, WriteResult]:
        """Creates whose fate is unknown: found by origin key → done; the rest re-sent."""
        keys = [w.origin_key for w in chunk if w.origin_key]
        found = self.find_by_origin(kind, keys) if keys else {}
        out: dict[str, WriteResult] = {}
        missing: list[WriteRequest] = []
        for write in chunk:
            record = found.get(write.origin_key or "")
            if record is not None:
                log.info("zendesk.create.reconciled", kind=str(kind), record=record.id)
                out[write.item_id] = WriteResult(write.item_id, record)
            elif write.origin_key and rounds > 0:
                missing.append(write)
            else:
                error = WriteError(
                    "in_doubt",
                    f"the create may not have been applied: {cause.message}",
                    record_label(kind, write.origin_key),
                    None,
                    retryable=True,
                )
                out[write.item_id] = WriteResult(write.item_id, error=error)
        if missing:
            out.update(self._create(kind, missing, rounds - 1))
        return out

    # -- updates ----------------------------------------------------------------------------

    def _update_bulk(self, kind: Kind, chunk: Sequence[WriteRequest]) -> dict[str, WriteResult]:
        started = self._submit_update(kind, chunk)
        if not isinstance(started, Reply):
            return started
        return self._finish_update(kind, chunk, started, poll_first=False)

    def _submit_update(
        self, kind: Kind, chunk: Sequence[WriteRequest]
    ) -> Reply | dict[str, WriteResult]:
        """Send one ``update_many``: its job to wait for, or the results when it went no further."""
        if kind in self.refused:
            return {w.item_id: self._refused(w) for w in chunk}
        if kind is Kind.USER and not self.bulk_users:
            return {w.item_id: self._update_single(kind, w) for w in chunk}
        payload = {
            _PLURAL[kind]: [{"id": int(w.id or 0), **wire_fields(kind, w.fields)} for w in chunk]
        }
        try:
            return self.http.request(
                "PUT", f"/api/v2/{_PLURAL[kind]}/update_many.json", json_body=payload
            )
        except ZendeskForbidden as exc:
            if kind is Kind.USER and says_bulk_disabled(exc):
                log.info("zendesk.users.bulk_disabled", fallback="single calls")
                self.bulk_users = False
                return {w.item_id: self._update_single(kind, w) for w in chunk}
            # Not the bulk switch: the token may not update these records, one by one
            # or in bulk, so N single calls would only fail N times.
            self._forbid(kind, exc)
            return {w.item_id: self._refused(w) for w in chunk}
        except ZendeskInvalid:
            if len(chunk) == 1:
                return {chunk[0].item_id: self._update_single(kind, chunk[0])}
            return {w.item_id: self._update_single(kind, w) for w in chunk}
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {w.item_id: self._failure(w, exc, retryable=True) for w in chunk}

    def _finish_update(
        self, kind: Kind, chunk: Sequence[WriteRequest], reply: Reply, *, poll_first: bool
    ) -> dict[str, WriteResult]:
        """Wait for an ``update_many`` job and map its results to the writes."""
        try:
            job = self.jobs.wait(reply, poll_first=poll_first)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {w.item_id: self._failure(w, exc, retryable=True) for w in chunk}
        lined = line_up(job, len(chunk), [w.id for w in chunk])
        # Ids are stored exactly as sent, so a batch that only moves users between
        # organizations needs no re-read to learn what Zendesk stored (it would cost a call per
        # 100 users); anything else is read back, for echo suppression.
        ids_only = all(set(w.fields) <= STORED_AS_SENT for w in chunk)
        stored = (
            {w.id or "": _as_written(kind, w) for w in chunk}
            if ids_only
            else self._show_many(kind, [w.id or "" for w in chunk])
        )
        out: dict[str, WriteResult] = {}
        for write, result in zip(chunk, lined, strict=True):
            if result is not None and not succeeded(result):
                out[write.item_id] = self._job_failure(write, result)
            elif result is None and job.status != "completed":
                error = WriteError(
                    "job_failed",
                    f"Zendesk job {job.id} ended {job.status}: {job.message or 'no message'}",
                    record_label(kind, write.id),
                    retryable=True,
                )
                out[write.item_id] = WriteResult(write.item_id, error=error)
            else:
                out[write.item_id] = WriteResult(write.item_id, stored.get(write.id or ""))
        return out

    def _update_single(self, kind: Kind, write: WriteRequest) -> WriteResult:
        if kind in self.refused:
            return self._refused(write)
        path = f"/api/v2/{_PLURAL[kind]}/{write.id}.json"
        try:
            reply = self.http.request(
                "PUT", path, json_body={_SINGULAR[kind]: wire_fields(kind, write.fields)}
            )
            return WriteResult(write.item_id, to_record(kind, member(reply.body, _SINGULAR[kind])))
        except WireError:
            return WriteResult(
                write.item_id, self._show_many(kind, [write.id or ""]).get(write.id or "")
            )
        except ZendeskForbidden as exc:
            self._forbid(kind, exc)
            return self._refused(write)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc)

    def _update_users(self, writes: Sequence[WriteRequest]) -> dict[str, WriteResult]:
        """User updates: plain fields in bulk (or singly), then, one user at a time, primary
        e-mail changes and moves to another organization (see ``user_changes``)."""
        plain = [_plain(w) for w in writes]
        out: dict[str, WriteResult] = {}
        out.update(
            self._pipelined(
                Kind.USER,
                [w for w in plain if w.fields],
                self._submit_update_chunk,
                self._finish_update_chunk,
            )
        )
        stepped: list[WriteRequest] = []
        for write, sent in zip(writes, plain, strict=True):
            steps = self._user_steps(write, sent)
            if not steps or not out.get(write.item_id, _OK).ok:
                continue
            error = next((e for step in steps if (e := self._user_step(write, step))), None)
            if error is not None:
                out[write.item_id] = WriteResult(write.item_id, error=error)
            else:
                stepped.append(write)
        if stepped:
            stored = self._show_many(Kind.USER, [w.id or "" for w in stepped])
            for write in stepped:
                out[write.item_id] = WriteResult(write.item_id, stored.get(write.id or ""))
        return out

    def _user_steps(
        self, write: WriteRequest, sent: WriteRequest
    ) -> list[Callable[[], WriteError | None]]:
        """The per-user steps of ``write`` beyond the fields ``sent`` in bulk, in order."""
        steps: list[Callable[[], WriteError | None]] = []
        if "email" in write.fields:
            steps.append(lambda: self._change_email(write, write.fields.get("email")))
        moved_to = write.fields.get("organization_id")
        if moved_to and "organization_id" not in sent.fields:
            steps.append(lambda: self.users.move(write, moved_to))
        return steps

    def _change_email(self, write: WriteRequest, email: str | None) -> WriteError | None:
        """Make ``email`` the user's primary address (see ``UserChanges.change_email``)."""
        if not email:
            label = record_label(Kind.USER, write.id)
            return WriteError("invalid_value", "a user's e-mail cannot be emptied", label, "email")
        return self.users.change_email(write, email)

    def _user_step(
        self, write: WriteRequest, step: Callable[[], WriteError | None]
    ) -> WriteError | None:
        """Run one per-user step, mapping Zendesk's refusals to this write's error."""
        if Kind.USER in self.refused:
            return self._refused(write).error
        try:
            return step()
        except ZendeskForbidden as exc:
            self._forbid(Kind.USER, exc)
            return self._refused(write).error
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc).error

    # -- deletes ----------------------------------------------------------------------------

    def _submit_delete_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest]
    ) -> Reply | dict[str, WriteResult]:
        """Send one ``destroy_many`` of up to 100 ids: its job, or the results if refused."""
        ids = ",".join(w.id or "" for w in chunk)
        try:
            return self.http.request(
                "DELETE", f"/api/v2/{_PLURAL[kind]}/destroy_many.json", params={"ids": ids}
            )
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            # A delete can be sent again safely: the next run retries what failed here.
            return {w.item_id: self._failure(w, exc, retryable=True) for w in chunk}

    def _finish_delete_chunk(
        self, kind: Kind, chunk: Sequence[WriteRequest], reply: Reply, waited: bool
    ) -> dict[str, WriteResult]:
        """Wait for a ``destroy_many`` job; an id it could not find is gone already."""
        try:
            job = self.jobs.wait(reply, poll_first=waited)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return {w.item_id: self._failure(w, exc, retryable=True) for w in chunk}
        lined = line_up(job, len(chunk), [w.id for w in chunk])
        # The job said nothing about these: whether they are gone is read, not assumed.
        unknown = [w.id or "" for w, result in zip(chunk, lined, strict=True) if result is None]
        present = self._still_there(kind, unknown) if unknown else set()
        out: dict[str, WriteResult] = {}
        for write, result in zip(chunk, lined, strict=True):
            if result is None and write.id in present:
                error = WriteError(
                    "job_failed",
                    f"Zendesk job {job.id} ended {job.status} without deleting this record",
                    record_label(kind, write.id),
                    retryable=True,
                )
                out[write.item_id] = WriteResult(write.item_id, error=error)
            elif result is None or succeeded(result) or _not_found(result):
                # Gone already (perhaps by our own earlier attempt): the intent holds.
                out[write.item_id] = WriteResult(write.item_id)
            else:
                out[write.item_id] = self._job_failure(write, result)
        return out

    def _still_there(self, kind: Kind, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` still exist (a deleted user is kept, inactive)."""
        return {rid for rid, record in self._show_many(kind, ids).items() if record.active}

    # -- reading back -----------------------------------------------------------------------

    def _show_many(self, kind: Kind, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records with ``ids`` (100 a call)."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        out: dict[str, Record] = {}
        for chunk in chunks(wanted):
            body = self.http.get(
                f"/api/v2/{_PLURAL[kind]}/show_many.json", {"ids": ",".join(chunk)}
            ).body
            for raw in items(body, _PLURAL[kind]):
                try:
                    record = to_record(kind, raw)
                except WireError as exc:
                    log.warning("zendesk.show_many.unreadable", kind=str(kind), error=str(exc))
                    continue
                out[record.id] = record
        return out

    def find_by_origin(self, kind: Kind, origin_keys: Sequence[str]) -> dict[str, Record]:
        """The records of ``kind`` whose ``external_id`` is one of ``origin_keys``."""
        wanted = {key.casefold(): key for key in origin_keys if key}
        found: dict[str, Record] = {}
        raws: list[Any] = []
        if kind is Kind.ORGANIZATION:
            for key in wanted.values():
                body = self.http.get("/api/v2/organizations/search.json", {"external_id": key}).body
                raws.extend(items(body, "organizations"))
        elif kind is Kind.USER:
            for chunk in chunks(list(wanted.values())):
                body = self.http.get(
                    "/api/v2/users/show_many.json", {"external_ids": ",".join(chunk)}
                ).body
                raws.extend(items(body, "users"))
        for raw in raws:
            try:
                record = to_record(kind, raw)
            except WireError:
                continue
            origin = (record.get(ORIGIN_FIELD) or "").casefold()
            if origin in wanted:
                found[wanted[origin]] = record
        return found

    # -- errors -----------------------------------------------------------------------------

    def _forbid(self, kind: Kind, exc: ZendeskForbidden) -> None:
        """Remember for the run that the token may not update ``kind`` (said once, in the log)."""
        if kind not in self.refused:
            log.error("zendesk.update.forbidden", kind=str(kind), error=exc.message)
        self.refused[kind] = exc

    def _refused(self, write: WriteRequest) -> WriteResult:
        """The failure of a write of a kind the token may not update (no call is sent)."""
        exc = self.refused[write.kind]
        plural = _PLURAL[write.kind]
        error = WriteError(
            "forbidden",
            f"Zendesk refuses the token's user permission to update {plural} ({exc.message});"
            f" give it a role that may edit {plural} (an admin can)",
            record_label(write.kind, write.id),
        )
        return WriteResult(write.item_id, error=error)

    def _failure(
        self, write: WriteRequest, exc: ZendeskError, *, retryable: bool = False
    ) -> WriteResult:
        code, description = describe({"error": exc.code, "description": exc.message}, 0)
        error = write_error(
            write.kind,
            write.id or write.origin_key,
            error=code,
            description=description,
            details=exc.details,
            retryable=retryable,
        )
        return WriteResult(write.item_id, error=error)

    def _job_failure(self, write: WriteRequest, result: JobResultDTO) -> WriteResult:
        error = write_error(
            write.kind,
            write.id or write.origin_key,
            error=result.error,
            description=None,
            details=result.details,
        )
        return WriteResult(write.item_id, error=error)

    def _echo(self, kind: Kind, write: WriteRequest, result: JobResultDTO) -> Record:
        """The record as sent, when Zendesk created it but ``show_many`` did not return it."""
        from talkcore.records import RecordKey

        fields: Mapping[str, str | None] = {
            **write.fields,
            **({ORIGIN_FIELD: write.origin_key} if write.origin_key else {}),
        }
        return Record(RecordKey.of(kind, str(result.id)), fields)


_OK = WriteResult("")


def says_bulk_disabled(exc: ZendeskForbidden) -> bool:
    """Whether a 403 says the account's bulk user import is off (rather than "not allowed").

    Zendesk documents that meaning for ``create_many``/``create_or_update_many`` only and gives
    no text for it, so on ``update_many`` a 403 is taken for it only when the answer says so.
    """
    return "bulk" in f"{exc.code} {exc.message}".casefold()


def _not_found(result: JobResultDTO) -> bool:
    """Whether a job item failed only because the record does not exist."""
    return (result.error or "").replace("_", "").casefold() == "recordnotfound"


STORED_AS_SENT = frozenset({"organization_id"})
"""Fields Zendesk stores exactly as written (ids), so their writes need no read-back."""


def _as_written(kind: Kind, write: WriteRequest) -> Record:
    """The record as last seen with the written fields applied."""
    from talkcore.records import RecordKey

    return Record(RecordKey.of(kind, write.id or ""), {**write.current, **write.fields})


def _plain(write: WriteRequest) -> WriteRequest:
    """The part of a user update that ``update_many`` can send: all but the e-mail, and but
    a move from one organization to another (both need per-user calls)."""
    moving = (
        bool(write.fields.get("organization_id"))
        and bool(write.current.get("organization_id"))
        and write.fields.get("organization_id") != write.current.get("organization_id")
    )
    held_back = {"email", "organization_id"} if moving else {"email"}
    return attrs.evolve(write, fields={k: v for k, v in write.fields.items() if k not in held_back})
