"""Changes to one Zendesk user that a bulk update cannot make: the primary e-mail address and
a move to another default organization.

A user's primary address is changed through identities (a plain ``email`` write would only add
a secondary address). Identity values are unique in an account, so an address another user
holds, even as a secondary address, is refused; that comes out as a named failure.

Where an account allows several organizations per user, ``organization_id`` is the user's
default one, and what writing it does to the other memberships is not something to rely on. A
move therefore goes through organization memberships: join the new organization, make it the
default, and leave only the organization the flow owned; memberships no flow owns stay.

Calls that fail for other reasons raise ``ZendeskError`` for the writer to map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from adapters.zendesk.errors import (
    ZendeskError,
    ZendeskInDoubt,
    ZendeskInvalid,
    ZendeskNotFound,
    per_item,
)
from adapters.zendesk.mapping import record_label
from adapters.zendesk.transport import ZendeskHttp
from adapters.zendesk.wire import (
    IdentityDTO,
    MembershipDTO,
    WireError,
    items,
    member,
    structure,
)
from talkcore.ports import WriteError, WriteRequest
from talkcore.records import Kind

log = structlog.get_logger()

EMAIL_HELD = "email_held_by_another_user"
"""The failure code of an address Zendesk refuses because another user holds it."""


class UserChanges:
    """Per-user calls for e-mail changes; ``remove_old_emails`` opts in to deleting the address
    an e-mail change replaced (by default it stays as a secondary address)."""

    def __init__(self, http: ZendeskHttp, *, remove_old_emails: bool = False) -> None:
        self.http = http
        self.remove_old_emails = remove_old_emails

    def change_email(self, write: WriteRequest, email: str) -> WriteError | None:
        """Make ``email`` the user's primary address: add the identity, then make it primary.

        ``None`` when done; a ``WriteError`` for a refusal this step understands; any other
        failure raises ``ZendeskError``.
        """
        user_id = write.id or ""
        base = f"/api/v2/users/{user_id}/identities"
        identity: IdentityDTO | None
        try:
            # skip_verify_email: without it Zendesk mails the customer a verification link
            # for an address they never asked to change.
            body = {"identity": {"type": "email", "value": email, "skip_verify_email": True}}
            reply = self.http.request("POST", f"{base}.json", json_body=body)
            identity = structure(member(reply.body, "identity"), IdentityDTO)
        except (ZendeskInvalid, ZendeskInDoubt, WireError) as exc:
            # The address may already be one of this user's identities (or our POST landed).
            identity = self.find_identity(user_id, email)
            if identity is None:
                if isinstance(exc, ZendeskInvalid) and held_by_another_user(exc):
                    return email_held(write, email)
                if isinstance(exc, ZendeskError):
                    raise exc
                label = record_label(Kind.USER, write.id)
                return WriteError("in_doubt", str(exc), label, "email", retryable=True)
        if not identity.primary:
            self.http.request("PUT", f"{base}/{identity.id}/make_primary.json", expect_body=False)
        if self.remove_old_emails:
            self._remove_replaced(write, email)
        return None

    def find_identity(self, user_id: str, email: str) -> IdentityDTO | None:
        """The user's e-mail identity with ``email`` (case-insensitive), if any."""
        for identity in self._identities(user_id):
            if identity.type == "email" and (identity.value or "").casefold() == email.casefold():
                return identity
        return None

    def _identities(self, user_id: str) -> list[IdentityDTO]:
        body = self.http.get(f"/api/v2/users/{user_id}/identities.json").body
        return [structure(raw, IdentityDTO) for raw in items(body, "identities")]

    def _remove_replaced(self, write: WriteRequest, email: str) -> None:
        """Delete the address this change replaced (only that one: other secondary addresses
        were added by people, and are theirs to keep).

        The change itself is done whatever happens here, and a later run will not see a
        difference to retry, so a failure is logged rather than failing the write.
        """
        old = write.current.get("email")
        if not old or old.casefold() == email.casefold():
            return
        user_id = write.id or ""
        removed = 0
        try:
            for identity in self._identities(user_id):
                value = (identity.value or "").casefold()
                if identity.type == "email" and not identity.primary and value == old.casefold():
                    self._delete_identity(user_id, identity.id)
                    removed += 1
        except ZendeskError as exc:
            if not per_item(exc):
                raise
            log.warning("zendesk.old_email.kept", user=user_id, reason=exc.message)
            return
        log.info("zendesk.old_email.removed", user=user_id, removed=removed)

    def _delete_identity(self, user_id: str, identity_id: int) -> None:
        try:
            path = f"/api/v2/users/{user_id}/identities/{identity_id}.json"
            self.http.request("DELETE", path, expect_body=False)
        except ZendeskNotFound:
            pass  # gone already

    # -- organization moves ------------------------------------------------------------------

    def move(self, write: WriteRequest, organization_id: str) -> WriteError | None:
        """Make ``organization_id`` the user's default organization, keeping every membership
        except the one the write releases (the organization the flow owned).

        ``None`` when done; a ``WriteError`` for a refusal this step understands; any other
        failure raises ``ZendeskError``.
        """
        user_id = write.id or ""
        mine = self._memberships(user_id)
        target = _membership_in(mine, organization_id)
        if target is None:
            try:
                target = self._join(user_id, organization_id)
            except (ZendeskInvalid, ZendeskInDoubt, WireError) as exc:
                # The membership may exist already (or our POST landed): look before failing.
                mine = self._memberships(user_id)
                target = _membership_in(mine, organization_id)
                if target is None and isinstance(exc, ZendeskInvalid):
                    self._move_single_organization(write, organization_id, exc)
                    return None
                if target is None and isinstance(exc, ZendeskError):
                    raise exc
                if target is None:
                    label = record_label(Kind.USER, write.id)
                    return WriteError("in_doubt", str(exc), label, "organization_id", True)
        if not target.default:
            path = f"/api/v2/users/{user_id}/organization_memberships/{target.id}/make_default"
            self.http.request("PUT", f"{path}.json", expect_body=False)
        released = write.releases.get("organization_id")
        if released and released != organization_id:
            for membership in mine:
                if str(membership.organization_id) == released:
                    self._leave(membership.id)
        return None

    def _memberships(self, user_id: str) -> list[MembershipDTO]:
        path = f"/api/v2/users/{user_id}/organization_memberships.json"
        return [
            structure(raw, MembershipDTO)
            for raw in items(self.http.get(path).body, "organization_memberships")
        ]

    def _join(self, user_id: str, organization_id: str) -> MembershipDTO:
        body = {
            "organization_membership": {
                "user_id": int(user_id),
                "organization_id": int(organization_id),
            }
        }
        reply = self.http.request("POST", "/api/v2/organization_memberships.json", json_body=body)
        return structure(member(reply.body, "organization_membership"), MembershipDTO)

    def _leave(self, membership_id: int) -> None:
        try:
            path = f"/api/v2/organization_memberships/{membership_id}.json"
            self.http.request("DELETE", path, expect_body=False)
        except ZendeskNotFound:
            pass  # gone already

    def _move_single_organization(
        self, write: WriteRequest, organization_id: str, refused: ZendeskInvalid
    ) -> None:
        """A second membership was refused: an account that allows one organization per user.
        There ``organization_id`` is the user's only organization, so writing it is the move."""
        log.info(
            "zendesk.membership.refused",
            user=write.id,
            reason=refused.message,
            fallback="organization_id",
        )
        body = {"user": {"organization_id": int(organization_id)}}
        self.http.request("PUT", f"/api/v2/users/{write.id}.json", json_body=body)


def _membership_in(memberships: list[MembershipDTO], organization_id: str) -> MembershipDTO | None:
    return next((m for m in memberships if str(m.organization_id) == organization_id), None)


def held_by_another_user(exc: ZendeskInvalid) -> bool:
    """Whether a 422 says the address is taken (Zendesk: ``DuplicateValue``, "… is already
    being used by another user")."""
    details: Any = exc.details
    entries: list[Any] = []
    if isinstance(details, Mapping):
        for field in ("value", "email"):
            found = details.get(field)
            entries.extend(found if isinstance(found, list) else [found] if found else [])
    for entry in entries:
        text = str(entry.get("error") if isinstance(entry, Mapping) else entry)
        description = str(entry.get("description") if isinstance(entry, Mapping) else entry)
        if text == "DuplicateValue" or "already" in description.casefold():
            return True
    return exc.code == "DuplicateValue"


def email_held(write: WriteRequest, email: str) -> WriteError:
    """The named failure of an address another Zendesk user holds."""
    return WriteError(
        EMAIL_HELD,
        f"Zendesk refuses {email} for this user: another Zendesk user holds that address (an"
        " account holds each address once, and an e-mail change keeps the old address as a"
        " secondary one); remove it from that user, or set zendesk.remove_old_emails",
        record_label(Kind.USER, write.id),
        "email",
    )
