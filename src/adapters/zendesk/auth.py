"""Credentials for Zendesk Support: an API token (basic auth) or an OAuth bearer token."""

from __future__ import annotations

import base64

import attrs


@attrs.frozen
class ZendeskAuth:
    """How to authenticate: ``api_token`` (``{email}/token:{token}``) or ``oauth`` (bearer).

    The secret never appears in a repr; the e-mail does not either, since it names a person.
    """

    scheme: str
    email: str | None = attrs.field(default=None, repr=False)
    secret: str = attrs.field(default="", repr=False)

    @classmethod
    def api_token(cls, email: str, token: str) -> ZendeskAuth:
        """Basic auth with an agent's e-mail and an API token (being retired by Zendesk)."""
        if not email or not token:
            raise ValueError("an API token needs both the agent's e-mail and the token")
        return cls("api_token", email, token)

    @classmethod
    def oauth(cls, token: str) -> ZendeskAuth:
        """An OAuth access token sent as ``Authorization: Bearer``."""
        if not token:
            raise ValueError("an OAuth token must not be empty")
        return cls("oauth", None, token)

    def header(self) -> str:
        """The value of the ``Authorization`` header."""
        if self.scheme == "oauth":
            return f"Bearer {self.secret}"
        raw = f"{self.email}/token:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")
