"""Helpers for the sandbox tests: in-process clients, socket-level helpers, shape comparison."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.zendesk import ZendeskAuth, ZendeskPort

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
ZENDESK_RECORDED = FIXTURES / "zendesk-recorded"


def zendesk_client(zd: ZendeskSandbox, *, bearer: bool = False) -> httpx.Client:
    """An httpx client talking to the Zendesk sandbox in-process, authenticated."""
    creds = zd.credentials
    if bearer:
        auth = f"Bearer {creds.oauth_token}"
    else:
        raw = f"{creds.email}/token:{creds.api_token}".encode()
        auth = f"Basic {base64.b64encode(raw).decode()}"
    return httpx.Client(
        transport=httpx.WSGITransport(app=zd.app),
        base_url="https://sandbox.zendesk.example",
        headers={"Authorization": auth},
    )


def zendesk_port(zd: ZendeskSandbox, **options: Any) -> ZendeskPort:
    """The real Zendesk adapter over the sandbox app, in process (waits recorded, not slept)."""
    creds = zd.credentials
    client = httpx.Client(transport=httpx.WSGITransport(app=zd.app), base_url=zd.base_url)
    auth = ZendeskAuth.api_token(creds.email, creds.api_token)
    return ZendeskPort(client, zd.base_url, auth, sleep=lambda _: None, **options)


def poweroffice_token(client: httpx.Client, po: PowerOfficeSandbox) -> httpx.Response:
    """Ask the PowerOffice sandbox's token endpoint for a token, as the real API is asked."""
    creds = po.credentials
    return client.post(
        "/OAuth/Token",
        auth=(creds.application_key, creds.client_key),
        headers={"Ocp-Apim-Subscription-Key": creds.subscription_key},
        data={"grant_type": "client_credentials"},
    )


def poweroffice_client(po: PowerOfficeSandbox, **kwargs: Any) -> httpx.Client:
    """An httpx client talking to the PowerOffice sandbox in-process, with a fresh token."""
    transport = httpx.WSGITransport(app=po.app)
    with httpx.Client(transport=transport, base_url="https://po.sandbox") as first:
        token = poweroffice_token(first, po).json()["access_token"]
    return httpx.Client(
        transport=transport,
        base_url="https://po.sandbox",
        headers={
            "Ocp-Apim-Subscription-Key": po.credentials.subscription_key,
            "Authorization": f"Bearer {token}",
        },
        **kwargs,
    )


def json_patch(client: httpx.Client, url: str, ops: list[dict[str, Any]]) -> httpx.Response:
    """PATCH with an RFC 6902 document, as PowerOffice wants it."""
    import json

    return client.patch(
        url, content=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"}
    )


def shape_problems(recorded: Any, actual: Any, where: str = "$") -> list[str]:
    """Where `actual` differs in shape from `recorded`: same keys and JSON types, recursively.

    A null on either side matches anything (nullable fields); every element of an actual list
    is compared with the first recorded element; a list recorded with items must not come back
    empty, or nothing would have been compared.
    """
    if recorded is None or actual is None:
        return []
    if isinstance(recorded, dict):
        if not isinstance(actual, dict):
            return [f"{where}: object expected, got {type(actual).__name__}"]
        problems = []
        missing = sorted(set(recorded) - set(actual))
        extra = sorted(set(actual) - set(recorded))
        if missing:
            problems.append(f"{where}: missing keys {missing}")
        if extra:
            problems.append(f"{where}: unexpected keys {extra}")
        for key in sorted(set(recorded) & set(actual)):
            problems.extend(shape_problems(recorded[key], actual[key], f"{where}.{key}"))
        return problems
    if isinstance(recorded, list):
        if not isinstance(actual, list):
            return [f"{where}: array expected, got {type(actual).__name__}"]
        if recorded and not actual:
            return [f"{where}: empty array where the recording has items"]
        if not recorded:
            return []
        problems = []
        for index, item in enumerate(actual):
            problems.extend(shape_problems(recorded[0], item, f"{where}[{index}]"))
        return problems
    if _json_type(recorded) != _json_type(actual):
        return [f"{where}: {_json_type(recorded)} expected, got {_json_type(actual)}"]
    return []


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
