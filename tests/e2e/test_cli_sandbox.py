"""The real `talksync` CLI, as a subprocess, against both sandboxes served on loopback sockets,
with a real SQLite state file: first sync, edits on both sides, conflicts per policy, name
collisions, ambiguities, and the fixpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from site_support import Site, changes, items

from talkcore.records import Kind

pytestmark = pytest.mark.e2e


def test_first_sync_links_creates_and_reports_then_the_next_plans_nothing(site: Site) -> None:
    report = site.sync()
    summary = report["summary"]
    assert summary["create"] >= 10 and summary["link"] >= 5 and summary["failed"] == 0
    # The seeded awkward cases come out as reports naming their records.
    ambiguities = items(report, "ambiguity")
    shared = site.cases.contact_persons_sharing_email
    assert shared is not None
    assert any(
        {f"poweroffice:contact_person:{shared[0]}", f"poweroffice:contact_person:{shared[1]}"}
        <= set(a["candidates"])
        for a in ambiguities
    )
    pair = site.cases.department_named_like_customer
    assert pair is not None
    collided = {c["record"] for c in items(report, "name_collision")}
    assert f"poweroffice:department:{pair[0]}" in collided
    # Every organization created carries its origin key, once.
    orgs = site.served.zendesk.dump()["organizations"]
    origins = [o["external_id"] for o in orgs if o.get("external_id")]
    assert len(origins) == len(set(origins)) >= 10
    again = site.sync()
    assert changes(again) == 0
    plan = json.loads(site.cli("plan", "--json").stdout)
    assert changes(plan) == 0


def test_edits_on_both_sides_flow_across(site: Site) -> None:
    site.sync()
    customer = str(site.cases.customer_ids[0])
    org = site.link("customers-organizations", customer)
    user_id, person_id = site.cases.users_matching_contact_persons[0]
    site.edit(site.poweroffice, Kind.CUSTOMER, customer, Name="Omdøpt Kunde AS")
    site.edit(site.zendesk, Kind.USER, str(user_id), email="ny.epost@example.no")
    report = site.sync()
    assert report["summary"]["update"] == 2 and report["summary"]["failed"] == 0
    names = {str(o["id"]): o["name"] for o in site.served.zendesk.dump()["organizations"]}
    assert names[org] == "Omdøpt Kunde AS"
    persons = site.served.poweroffice.dump()["contact_persons"]
    (person,) = [p for p in persons if p["Id"] == person_id]
    assert person["EmailAddress"] == "ny.epost@example.no"
    assert changes(site.sync()) == 0


@pytest.mark.parametrize("policy", ["poweroffice", "zendesk", "manual"])
def test_conflict_is_decided_by_the_configured_policy(site: Site, policy: str) -> None:
    (site.folder / "talksync.toml").write_text(
        f'[flows.customers-organizations]\nconflict = "{policy}"\n', encoding="utf-8"
    )
    site.sync()
    customer = str(site.cases.customer_ids[1])
    org = site.link("customers-organizations", customer)
    site.edit(site.poweroffice, Kind.CUSTOMER, customer, Name="Navn fra PowerOffice AS")
    site.edit(site.zendesk, Kind.ORGANIZATION, org, name="Navn fra Zendesk AS")
    report = site.sync()
    (conflict,) = items(report, "conflict")
    assert conflict["policy"] == policy
    assert conflict["poweroffice_value"] == "Navn fra PowerOffice AS"
    assert conflict["zendesk_value"] == "Navn fra Zendesk AS"

    def names() -> tuple[str, str]:
        po = {str(c["Id"]): c["Name"] for c in site.served.poweroffice.dump()["customers"]}
        zd = {str(o["id"]): o["name"] for o in site.served.zendesk.dump()["organizations"]}
        return po[customer], zd[org]

    if policy == "manual":
        assert conflict["winner"] is None and names() == (
            "Navn fra PowerOffice AS",
            "Navn fra Zendesk AS",
        )
        listed = site.cli("conflicts", "list").stdout
        assert f"customers-organizations/{customer}/Name" in listed
        site.cli(
            "conflicts", "resolve", f"customers-organizations/{customer}/Name", "--take", "zendesk"
        )
        site.sync()
        assert names() == ("Navn fra Zendesk AS", "Navn fra Zendesk AS")
    else:
        expected = "Navn fra PowerOffice AS" if policy == "poweroffice" else "Navn fra Zendesk AS"
        assert conflict["winner"] == policy
        assert names() == (expected, expected)
    assert changes(site.sync()) == 0


def _reads(stderr: str) -> dict[str, dict[str, Any]]:
    """The ``read.done`` events a run logged (``--log-format json``), by system."""
    events = (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    return {e["system"]: e for e in events if e.get("event") == "read.done"}


def test_a_full_sync_streams_its_read_and_whole_plans_every_record(site: Site) -> None:
    """After the first sync, ``sync --full`` compares each page with the saved state and
    plans only what differs (issue 13); ``--whole`` plans every record, with the same result."""
    site.sync()
    customer = str(site.cases.customer_ids[0])
    org = site.link("customers-organizations", customer)
    site.edit(site.poweroffice, Kind.CUSTOMER, customer, Name="Strømmet Kunde AS")
    reads = _reads(site.cli("sync", "--full").stderr)
    # Only the renamed customer differs on the PowerOffice side. The organizations the first
    # sync created were not read back (their values are known from the job), so the full
    # read brings their change times: they differ once, then the mirror holds them as read.
    assert reads["poweroffice"]["differ"] == 1 and reads["poweroffice"]["removed"] == 0
    assert 0 < reads["zendesk"]["differ"] < reads["zendesk"]["count"]
    assert reads["zendesk"]["removed"] == 0
    names = {str(o["id"]): o["name"] for o in site.served.zendesk.dump()["organizations"]}
    assert names[org] == "Strømmet Kunde AS"
    whole = site.cli("sync", "--whole", "--json")
    assert json.loads(whole.stdout)["full"] is True
    assert changes(json.loads(whole.stdout)) == 0
    # Sync twice: the mirror now holds every record as a read returns it.
    again = _reads(site.cli("sync", "--full").stderr)
    assert {(e["differ"], e["removed"]) for e in again.values()} == {(0, 0)}
