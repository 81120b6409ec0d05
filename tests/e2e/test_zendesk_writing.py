"""How talksync writes to Zendesk, seen on the wire: the real CLI against both sandboxes.

- delete propagation goes by ``destroy_many`` (100 ids a call, ending in a job), never one
  DELETE per record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from site_support import Site, items

from talkcore.records import Kind
from talkcore.state import WriteOp, WriteRequest

pytestmark = pytest.mark.e2e


def configure(site: Site, text: str) -> None:
    """Write the site's ``talksync.toml`` (read from the folder the CLI runs in)."""
    Path(site.folder, "talksync.toml").write_text(text, encoding="utf-8")


def zendesk_calls(site: Site, method: str, template: str) -> int:
    """How many requests the Zendesk sandbox answered on one endpoint."""
    return site.served.controller.requests[f"zendesk {method} /api/v2{template}"]


def test_deletes_propagate_by_destroy_many_in_one_job(site: Site) -> None:
    configure(
        site,
        "[flows.customers-organizations]\npropagate_deletes = true\ndelete_cap = 1.0\n",
    )
    free = [
        str(site.served.poweroffice.add_customer(Name=f"Avvikles {n} AS")["Id"]) for n in range(3)
    ]
    site.sync()
    orgs = [site.link("customers-organizations", po_id) for po_id in free]
    deletes = [WriteRequest(f"d{n}", WriteOp.DELETE, Kind.CUSTOMER, i) for n, i in enumerate(free)]
    assert all(r.ok for r in site.poweroffice.apply(deletes))
    site.served.controller.reset_counters()
    report = json.loads(site.cli("sync", "--full", "--json").stdout)  # a full read sees deletes
    assert report["summary"]["delete"] == len(free)
    assert report["summary"]["failed"] == 0
    assert {str(i["target"]) for i in items(report, "delete")} == {
        f"zendesk:organization:{o}" for o in orgs
    }
    left = {str(o["id"]) for o in site.served.zendesk.dump()["organizations"]}
    assert not left & set(orgs)
    assert zendesk_calls(site, "DELETE", "/organizations/destroy_many") == 1
    assert zendesk_calls(site, "DELETE", "/organizations/{id}") == 0


def test_a_permission_403_on_update_many_fails_those_writes_once_and_the_run_goes_on(
    site: Site,
) -> None:
    site.sync()
    customers = [
        c
        for c in site.served.poweroffice.dump()["customers"]
        if not c.get("IsPerson") and c["Id"] in site.cases.customer_ids
    ][:2]
    for customer in customers:
        site.edit(
            site.poweroffice, Kind.CUSTOMER, str(customer["Id"]), Name=f"{customer['Name']} X"
        )
    user_id, person_id = site.cases.users_matching_contact_persons[0]
    persons = {p["Id"]: p for p in site.served.poweroffice.dump()["contact_persons"]}
    party = {"partyId": str(persons[person_id]["ContactId"])}
    site.edit(site.poweroffice, Kind.CONTACT_PERSON, str(person_id), party, emailAddress="ny@x.no")
    site.served.zendesk.writes_forbidden = frozenset({"organizations"})
    site.served.controller.reset_counters()
    report = site.sync(expect=1)
    failures = [f["error"] for f in report["failures"]]
    assert len(failures) == 2
    assert {f["code"] for f in failures} == {"forbidden"}
    assert all("permission to update organizations" in f["message"] for f in failures)
    # One refused bulk call, not one single call per record after it.
    assert zendesk_calls(site, "PUT", "/organizations/update_many") == 1
    assert zendesk_calls(site, "PUT", "/organizations/{id}") == 0
    # The rest of the run went on: the user's e-mail change was applied.
    emails = {u["id"]: u["email"] for u in site.served.zendesk.dump()["users"]}
    assert emails[user_id] == "ny@x.no"
