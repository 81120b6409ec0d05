"""The PowerOffice Go v2 adapter: ``PowerOfficePort`` and what configuring it needs."""

from adapters.poweroffice.auth import PowerOfficeCredentials
from adapters.poweroffice.errors import (
    PowerOfficeAccessDenied,
    PowerOfficeAuthError,
    PowerOfficeError,
    PowerOfficeInDoubt,
    PowerOfficeRequestRejected,
    PowerOfficeUnavailable,
)
from adapters.poweroffice.port import (
    DEFAULT_PAGE_SIZE,
    DEMO_BASE_URL,
    DEMO_TOKEN_URL,
    PRODUCTION_BASE_URL,
    PRODUCTION_TOKEN_URL,
    PowerOfficePort,
    cursor_name,
    make_client,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEMO_BASE_URL",
    "DEMO_TOKEN_URL",
    "PRODUCTION_BASE_URL",
    "PRODUCTION_TOKEN_URL",
    "PowerOfficeAccessDenied",
    "PowerOfficeAuthError",
    "PowerOfficeCredentials",
    "PowerOfficeError",
    "PowerOfficeInDoubt",
    "PowerOfficePort",
    "PowerOfficeRequestRejected",
    "PowerOfficeUnavailable",
    "cursor_name",
    "make_client",
]
