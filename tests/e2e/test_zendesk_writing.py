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
