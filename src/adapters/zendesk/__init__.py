"""The Zendesk Support adapter: ``ZendeskPort`` implements talkcore's ``SystemPort``."""

from adapters.zendesk.auth import ZendeskAuth
from adapters.zendesk.errors import (
    ZendeskAccessDenied,
    ZendeskBadResponse,
    ZendeskConflict,
    ZendeskError,
    ZendeskForbidden,
    ZendeskInDoubt,
    ZendeskInvalid,
    ZendeskNotFound,
    ZendeskRateLimited,
    ZendeskTooManyJobs,
    ZendeskTooManyValues,
    ZendeskUnauthorized,
    ZendeskUnavailable,
)
from adapters.zendesk.port import ZendeskPort
from adapters.zendesk.transport import RetryPolicy, make_client

__all__ = [
    "RetryPolicy",
    "ZendeskAccessDenied",
    "ZendeskAuth",
    "ZendeskBadResponse",
    "ZendeskConflict",
    "ZendeskError",
    "ZendeskForbidden",
    "ZendeskInDoubt",
    "ZendeskInvalid",
    "ZendeskNotFound",
    "ZendeskPort",
    "ZendeskRateLimited",
    "ZendeskTooManyJobs",
    "ZendeskTooManyValues",
    "ZendeskUnauthorized",
    "ZendeskUnavailable",
    "make_client",
]
