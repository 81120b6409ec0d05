"""The sandbox serving many accounts (``adapters.sandbox.accounts``): PowerOffice clients under
one subscription key, each with its own data and one rate limit over them all, counted per
second; Zendesk accounts by path prefix, each with its own data and links that lead back to it;
and optional latency. Read through the real ports over sockets where the ports are involved."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import pytest

from adapters.poweroffice import PowerOfficeCredentials, PowerOfficePort
from adapters.poweroffice.limiter import RateLimiter
from adapters.sandbox.accounts import PowerOfficeGateway, ZendeskAccounts
from adapters.sandbox.server import serve_accounts
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.zendesk import ZendeskAuth, ZendeskPort
from talkcore.records import Kind, Record


def _po_port(running_url: str, gateway: PowerOfficeGateway, client_key: str) -> PowerOfficePort:
    creds = gateway.credentials(client_key)
    return PowerOfficePort(
        httpx.Client(),
        f"{running_url}/v2",
        f"{running_url}/OAuth/Token",
        PowerOfficeCredentials(creds.application_key, creds.client_key, creds.subscription_key),
        limiter=RateLimiter(1000.0),
        sleep=lambda _: None,
    )


def _zd_port(base_url: str, account: ZendeskSandbox) -> ZendeskPort:
    auth = ZendeskAuth.api_token(account.credentials.email, account.credentials.api_token)
    return ZendeskPort(httpx.Client(), base_url, auth, sleep=lambda _: None)


def _names(records: Iterable[Record]) -> set[str]:
    # PowerOffice records carry "Name", Zendesk's "name" (each system's own field names).
    return {str(r.fields.get("Name") or r.fields.get("name")) for r in records}


def test_each_poweroffice_client_sees_only_its_own_data_under_one_key() -> None:
    gateway = PowerOfficeGateway(["client-a", "client-b"], rate_limit=None)
    gateway.clients["client-a"].add_customer(Name="Alpha AS", EmailAddress="post@alpha.example")
    gateway.clients["client-b"].add_customer(Name="Beta AS", EmailAddress="post@alpha.example")
    zendesk = ZendeskAccounts({"a": ZendeskSandbox()})
    with serve_accounts(gateway, zendesk) as running:
        seen = {
            key: _names(
                _po_port(running.poweroffice_url, gateway, key)
                .read(frozenset({Kind.CUSTOMER}), None)
                .records
            )
            for key in ("client-a", "client-b")
        }
        stranger = _po_port(running.poweroffice_url, gateway, "client-unknown")
        with pytest.raises(Exception, match=r"(?i)client|key|invalid"):
            stranger.check()
    assert seen == {"client-a": {"Alpha AS"}, "client-b": {"Beta AS"}}


def test_one_rate_limit_over_all_clients_counted_per_second() -> None:
    now = [1000.25]
    gateway = PowerOfficeGateway(["a", "b", "c"], rate_limit=10, clock=lambda: now[0])
    statuses = []
    with httpx.Client(transport=httpx.WSGITransport(app=gateway.app)) as http:
        for n in range(15):
            client = "abc"[n % 3]
            creds = gateway.credentials(client)
            reply = http.post(
                "http://po/OAuth/Token",
                auth=(creds.application_key, creds.client_key),
                data={"grant_type": "client_credentials"},
                headers={"Ocp-Apim-Subscription-Key": creds.subscription_key},
            )
            statuses.append(reply.status_code)
        now[0] = 1001.3  # the window has moved on: requests are let through again
        creds = gateway.credentials("a")
        again = http.post(
            "http://po/OAuth/Token",
            auth=(creds.application_key, creds.client_key),
            data={"grant_type": "client_credentials"},
            headers={"Ocp-Apim-Subscription-Key": creds.subscription_key},
        )
    # Ten let through across the three clients, the rest refused the gateway's way.
    assert statuses.count(200) == 10 and statuses.count(429) == 5
    assert again.status_code == 200
    # Every arrival is counted in its second, accepted or not.
    assert gateway.per_second == {1000: 15, 1001: 1}
    assert gateway.max_per_second() == 15


def test_zendesk_accounts_by_path_prefix_keep_apart_and_link_back() -> None:
    first, second = ZendeskSandbox(), ZendeskSandbox()
    first.add_organization(name="First Org")
    second.add_organization(name="Second Org")
    zendesk = ZendeskAccounts({"first": first, "second": second})
    gateway = PowerOfficeGateway(["a"])
    with serve_accounts(gateway, zendesk) as running:
        orgs = {
            name: _names(
                _zd_port(running.zendesk_account_url(name), account)
                .read(frozenset({Kind.ORGANIZATION}), None)
                .records
            )
            for name, account in (("first", first), ("second", second))
        }
        me = httpx.get(
            f"{running.zendesk_account_url('second')}/api/v2/users/me.json",
            auth=(f"{second.credentials.email}/token", second.credentials.api_token),
        )
        missing = httpx.get(f"{running.zendesk_url}/nobody/api/v2/users/me.json")
    assert orgs == {"first": {"First Org"}, "second": {"Second Org"}}
    assert me.json()["user"]["url"].startswith(f"{running.zendesk_url}/second/api/v2/")
    assert missing.status_code == 404


def test_latency_is_waited_before_every_answer() -> None:
    waited: list[float] = []
    gateway = PowerOfficeGateway(["a"], latency=0.05, sleep=waited.append)
    zendesk = ZendeskAccounts({"z": ZendeskSandbox()}, latency=0.07, sleep=waited.append)
    with httpx.Client(transport=httpx.WSGITransport(app=gateway.app)) as http:
        http.get("http://po/v2/Customers")
    with httpx.Client(transport=httpx.WSGITransport(app=zendesk.app)) as http:
        http.get("http://zd/z/api/v2/users/me.json")
    assert waited == [0.05, 0.07]
