"""Writing to Zendesk: bulk jobs where the API allows, single calls where it must.

Organizations are created with ``create_many`` carrying ``external_id`` = the write's origin key
and updated with ``update_many``; users are updated with ``update_many`` (falling back to single
calls, for the rest of the run, where the account answers 403), and their primary e-mail is
changed through identities. Every successful write is answered with the record as Zendesk stored
it, read back with ``show_many``, so the core's bases are what Zendesk really holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from adapters.zendesk.errors import (
    ZendeskError,
    ZendeskForbidden,
    ZendeskInDoubt,
    ZendeskInvalid,
    ZendeskNotFound,
    ZendeskUnavailable,
    describe,
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
from adapters.zendesk.wire import (
    IdentityDTO,
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


def per_item(exc: ZendeskError) -> bool:
    """Whether an error concerns the records of one call (else the whole system is down)."""
    return isinstance(exc, ZendeskForbidden) or not isinstance(exc, ZendeskUnavailable)


class ZendeskWriter:
    """Applies write requests; remembers for the run whether bulk user calls are allowed."""

    def __init__(self, http: ZendeskHttp, *, sleep: Callable[[float], None]) -> None:
        self.http = http
        self.jobs = JobWaiter(http, sleep)
        self.bulk_users = True

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
            for write in todo.get((kind, WriteOp.DELETE), []):
                results[write.item_id] = self._delete(write)
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
            if kind is not Kind.USER:
                return {w.item_id: self._failure(w, exc) for w in chunk}
            log.info("zendesk.users.bulk_disabled", fallback="single calls")
            self.bulk_users = False
            return {w.item_id: self._update_single(kind, w) for w in chunk}
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
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc)

    def _update_users(self, writes: Sequence[WriteRequest]) -> dict[str, WriteResult]:
        """User updates: plain fields in bulk (or singly), then primary e-mail changes."""
        plain = [w for w in writes if set(w.fields) - {"email"}]
        out: dict[str, WriteResult] = {}
        plain_only = [_without_email(w) for w in plain]
        out.update(
            self._pipelined(
                Kind.USER, plain_only, self._submit_update_chunk, self._finish_update_chunk
            )
        )
        changed: list[WriteRequest] = []
        for write in writes:
            email = write.fields.get("email")
            if "email" not in write.fields or not out.get(write.item_id, _OK).ok:
                continue
            error = self._change_email(write, email)
            if error is not None:
                out[write.item_id] = WriteResult(write.item_id, error=error)
            else:
                changed.append(write)
        if changed:
            stored = self._show_many(Kind.USER, [w.id or "" for w in changed])
            for write in changed:
                out[write.item_id] = WriteResult(write.item_id, stored.get(write.id or ""))
        return out

    def _change_email(self, write: WriteRequest, email: str | None) -> WriteError | None:
        """Make ``email`` the user's primary address: add the identity, then make it primary."""
        label = record_label(Kind.USER, write.id)
        if not email:
            return WriteError("invalid_value", "a user's e-mail cannot be emptied", label, "email")
        base = f"/api/v2/users/{write.id}/identities"
        identity: IdentityDTO | None
        try:
            # skip_verify_email: without it Zendesk mails the customer a verification link
            # for an address they never asked to change.
            body = {"identity": {"type": "email", "value": email, "skip_verify_email": True}}
            reply = self.http.request("POST", f"{base}.json", json_body=body)
            identity = structure(member(reply.body, "identity"), IdentityDTO)
        except (ZendeskInvalid, ZendeskInDoubt, WireError) as exc:
            # The address may already be one of this user's identities (or our POST landed).
            identity = self._find_identity(write.id or "", email)
            if identity is None:
                if isinstance(exc, ZendeskInvalid):
                    return self._failure(write, exc).error
                return WriteError("in_doubt", str(exc), label, "email", retryable=True)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc).error
        if identity.primary:
            return None
        try:
            self.http.request("PUT", f"{base}/{identity.id}/make_primary.json", expect_body=False)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc).error
        return None

    def _find_identity(self, user_id: str, email: str) -> IdentityDTO | None:
        body = self.http.get(f"/api/v2/users/{user_id}/identities.json").body
        for raw in items(body, "identities"):
            identity = structure(raw, IdentityDTO)
            if identity.type == "email" and (identity.value or "").casefold() == email.casefold():
                return identity
        return None

    # -- deletes ----------------------------------------------------------------------------

    def _delete(self, write: WriteRequest) -> WriteResult:
        path = f"/api/v2/{_PLURAL[write.kind]}/{write.id}.json"
        try:
            self.http.request("DELETE", path, expect_body=False)
        except ZendeskNotFound:
            # Gone already (perhaps by our own earlier attempt): the intent holds.
            log.info("zendesk.delete.already_gone", kind=str(write.kind), record=write.id)
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            return self._failure(write, exc)
        return WriteResult(write.item_id)

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

STORED_AS_SENT = frozenset({"organization_id"})
"""Fields Zendesk stores exactly as written (ids), so their writes need no read-back."""


def _as_written(kind: Kind, write: WriteRequest) -> Record:
    """The record as last seen with the written fields applied."""
    from talkcore.records import RecordKey

    return Record(RecordKey.of(kind, write.id or ""), {**write.current, **write.fields})


def _without_email(write: WriteRequest) -> WriteRequest:
    import attrs

    return attrs.evolve(write, fields={k: v for k, v in write.fields.items() if k != "email"})
