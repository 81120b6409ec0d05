"""Rules whose breakage shows only across the wire: the real CLI against both sandboxes.

- the run report (``sync --json``) names the ids Zendesk gave, never the placeholders that
  stood for them while the plan was made;
- a PowerOffice e-mail change onto an address another Zendesk user holds is reported, and no
  request changes either user.
"""

from __future__ import annotations

from typing import Any

import pytest
from site_support import Site, items

from talkcore.records import Kind

pytestmark = pytest.mark.e2e


def organization_ids(site: Site) -> set[str]:
    return {str(o["id"]) for o in site.served.zendesk.dump()["organizations"]}


def test_rule_7_the_sync_report_names_written_ids_never_placeholders(site: Site) -> None:
    report = site.sync()
    assert report["summary"]["create"] >= 1
    text = repr(report)
    assert "pending" not in text.casefold() and "create:" not in _values_of(report, "value")
    orgs = organization_ids(site)
    moves = [
        change
        for item in items(report, "update")
        for change in item["changes"]
        if change["property"] == "organization_id"
    ]
    assert moves, "the seeded first sync moves users into created organizations"
    assert all(str(change["value"]) in orgs for change in moves)


def _values_of(report: dict[str, Any], key: str) -> str:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key:
                    found.append(str(v))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(report)
    return " ".join(found)


def test_a_poweroffice_email_onto_another_users_address_is_reported_and_nothing_sent(
    site: Site,
) -> None:
    site.sync()
    (user_a, person_a), (user_b, _) = site.cases.users_matching_contact_persons[:2]
    users = {u["id"]: u for u in site.served.zendesk.dump()["users"]}
    taken = users[user_b]["email"]
    persons = {p["Id"]: p for p in site.served.poweroffice.dump()["contact_persons"]}
    party = {"partyId": str(persons[person_a]["ContactId"])}
    site.edit(
        site.poweroffice, Kind.CONTACT_PERSON, str(person_a), party, emailAddress=taken.upper()
    )
    before = site.served.zendesk.dump()["users"]
    report = site.sync()
    invalid = [i for i in items(report, "invalid_value") if i["rule"] == "email_taken"]
    assert [i["record"] for i in invalid] == [f"poweroffice:contact_person:{person_a}"]
    assert report["summary"]["update"] == 0
    assert site.served.zendesk.dump()["users"] == before
    assert {u["id"]: u["email"] for u in before}[user_a] != taken


def test_a_synced_email_change_mails_the_customer_nothing_and_keeps_the_old_address(
    site: Site,
) -> None:
    site.sync()
    user_id, person_id = site.cases.users_matching_contact_persons[0]
    persons = {p["Id"]: p for p in site.served.poweroffice.dump()["contact_persons"]}
    old = {u["id"]: u["email"] for u in site.served.zendesk.dump()["users"]}[user_id]
    party = {"partyId": str(persons[person_id]["ContactId"])}
    site.edit(
        site.poweroffice, Kind.CONTACT_PERSON, str(person_id), party, emailAddress="ny@kunde.no"
    )
    report = site.sync()
    assert report["summary"]["update"] == 1 and report["summary"]["failed"] == 0
    dump = site.served.zendesk.dump()
    assert {u["id"]: u["email"] for u in dump["users"]}[user_id] == "ny@kunde.no"
    # The old address stays as a secondary identity, so mail from it still reaches the person.
    mine = [(i["value"], i["primary"]) for i in dump["identities"] if i["user_id"] == user_id]
    assert (old, False) in mine and ("ny@kunde.no", True) in mine
    assert site.served.zendesk.verification_mails == []
