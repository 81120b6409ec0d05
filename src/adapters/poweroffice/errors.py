"""The PowerOffice adapter's typed errors.

Whole-system failures (unreachable, credentials refused, a missing access role on a read) are
``talkcore.ports.SystemUnavailable`` so the engine stops the run; per-record problems become
``WriteError`` values instead. No message ever carries a secret.
"""

from __future__ import annotations

from adapters.http import InDoubt
from talkcore.ports import SystemUnavailable


class PowerOfficeError(Exception):
    """Anything the PowerOffice adapter raises."""


class PowerOfficeUnavailable(PowerOfficeError, SystemUnavailable):
    """PowerOffice Go could not be used: unreachable, failing (5xx), or answering nonsense."""


class PowerOfficeAuthError(PowerOfficeUnavailable):
    """PowerOffice Go refused our credentials (token call rejected, or 401 after renewing)."""


class PowerOfficeAccessDenied(PowerOfficeUnavailable):
    """403: the integration lacks an access role the call needs; ``roles`` names the options."""

    def __init__(self, message: str, roles: tuple[str, ...]) -> None:
        super().__init__(message)
        self.roles = roles


class PowerOfficeRequestRejected(PowerOfficeUnavailable):
    """A read was answered with a ProblemDetails error (4xx): the run cannot read this kind."""


class PowerOfficeInDoubt(PowerOfficeError, InDoubt):
    """A non-idempotent call (POST) may or may not have been applied (timeout, 5xx, cut off).

    It is never re-sent blindly: the caller reconciles by origin key instead.
    """
