"""The three PowerOffice Go secrets, kept out of every repr, log line and message."""

from __future__ import annotations

import hashlib

import attrs


@attrs.frozen
class PowerOfficeCredentials:
    """Application key (per integration), client key (per PowerOffice customer), subscription key.

    None of them appears in ``repr``; :meth:`limiter_id` names the subscription key without
    revealing it, since the rate limit is per subscription key.
    """

    application_key: str = attrs.field(repr=False)
    client_key: str = attrs.field(repr=False)
    subscription_key: str = attrs.field(repr=False)

    def limiter_id(self) -> str:
        """A stable, non-reversible name for the subscription key (for sharing its rate limit)."""
        return hashlib.sha256(self.subscription_key.encode("utf-8")).hexdigest()[:16]

    def redact(self, text: str) -> str:
        """``text`` with any of the three secrets blanked out (defence for echoed messages)."""
        for secret in (self.application_key, self.client_key, self.subscription_key):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text
