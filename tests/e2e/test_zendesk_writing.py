"""How talksync writes to Zendesk, seen on the wire: the real CLI against both sandboxes.

- delete propagation goes by ``destroy_many`` (100 ids a call, ending in a job), never one
  DELETE per record;
- a permission 403 on ``update_many`` fails those writes once, with one clear error;
- an e-mail change keeps the old address as a secondary one, so a later change of another user
  onto it is refused by name (and the run goes on); with ``remove_old_emails`` it is deleted
  and the later change goes through. No one is mailed a verification link either way;
- a user moved to another customer's organization keeps memberships no flow owns: only the
  organization the flow owned is left, and the new one becomes the default.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from site_support import Site, items

from talkcore.ports import WriteOp, WriteRequest
from talkcore.records import Kind

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


def _hand_over_an_old_address(site: Site) -> tuple[int, int, str, dict[str, object]]:
    """A's e-mail changes (sync), then B's contact person takes A's old address (sync).

    Returns A's and B's user ids, the old address and the second sync's report."""
    site.sync()
    (user_a, person_a), (user_b, person_b) = site.cases.users_matching_contact_persons[:2]
    persons = {p["Id"]: p for p in site.served.poweroffice.dump()["contact_persons"]}
    old = {u["id"]: u["email"] for u in site.served.zendesk.dump()["users"]}[user_a]

    def set_email(person: int, address: str) -> None:
        party = {"partyId": str(persons[person]["ContactId"])}
        site.edit(site.poweroffice, Kind.CONTACT_PERSON, str(person), party, emailAddress=address)

    set_email(person_a, "a.ny@kunde.no")
    site.sync()
    set_email(person_b, old)
    customer = next(c for c in site.served.poweroffice.dump()["customers"] if not c["IsPerson"])
    site.edit(site.poweroffice, Kind.CUSTOMER, str(customer["Id"]), Name="Omdøpt AS")
    report = site.sync(expect=None)
    return user_a, user_b, old, report


def test_an_old_address_kept_on_one_user_is_refused_by_name_for_another(site: Site) -> None:
    user_a, user_b, old, report = _hand_over_an_old_address(site)
    failures = [f["error"] for f in report["failures"]]
    assert [(f["code"], f["record"], f["field"]) for f in failures] == [
        ("email_held_by_another_user", f"zendesk user {user_b}", "email")
    ]
    assert old in failures[0]["message"]
    dump = site.served.zendesk.dump()
    assert {u["id"]: u["email"] for u in dump["users"]}[user_b] != old
    assert (old, user_a) in {(i["value"], i["user_id"]) for i in dump["identities"]}
    # The rest of the run went on.
    assert "Omdøpt AS" in {o["name"] for o in dump["organizations"]}
    assert site.served.zendesk.verification_mails == []


def test_with_remove_old_emails_the_old_address_is_deleted_and_free_for_another(
    site: Site,
) -> None:
    configure(site, "[zendesk]\nremove_old_emails = true\n")
    user_a, user_b, old, report = _hand_over_an_old_address(site)
    assert report["failures"] == []
    dump = site.served.zendesk.dump()
    assert {u["id"]: u["email"] for u in dump["users"]}[user_b] == old
    assert {i["value"] for i in dump["identities"] if i["user_id"] == user_a} == {"a.ny@kunde.no"}
    assert site.served.zendesk.verification_mails == []


def test_a_move_to_another_customer_keeps_memberships_no_flow_owns(site: Site) -> None:
    site.sync()
    zd = site.served.zendesk
    user_id, person_id = site.cases.users_matching_contact_persons[0]
    person = {p["Id"]: p for p in site.served.poweroffice.dump()["contact_persons"]}[person_id]
    old_party = str(person["ContactId"])
    old_org = int(site.link("customers-organizations", old_party))
    assert zd.users[user_id]["organization_id"] == old_org
    # An agent put the user in a group of their own as well.
    own_group = int(zd.add_organization(name="Kundeservice VIP")["id"])
    zd.add_membership(user_id, own_group)
    # In PowerOffice the person now works for another customer: re-created under it (a contact
    # person's customer is part of its address, so it cannot be moved).
    new_party = next(
        str(c["Id"])
        for c in site.served.poweroffice.dump()["customers"]
        if not c["IsPerson"] and str(c["Id"]) != old_party
    )
    gone = WriteRequest(
        "gone", WriteOp.DELETE, Kind.CONTACT_PERSON, str(person_id), current={"partyId": old_party}
    )
    assert all(r.ok for r in site.poweroffice.apply([gone]))
    site.served.poweroffice.add_contact_person(
        int(new_party),
        FirstName=person["FirstName"],
        LastName=person["LastName"],
        EmailAddress=person["EmailAddress"],
    )
    new_org = int(site.link("customers-organizations", new_party))
    # A full read sees the delete and ends the old link, and the same run links the new person
    # to the user the ended link freed (its first sync: PowerOffice's customer wins over the
    # one the flow owned).
    report = json.loads(site.cli("sync", "--full", "--json").stdout)
    assert [i["zendesk"] for i in items(report, "unlink")] == [f"zendesk:user:{user_id}"]
    assert [i["zendesk"] for i in items(report, "link")] == [f"zendesk:user:{user_id}"]
    assert report["summary"]["failed"] == 0
    (moved,) = [u for u in items(report, "update") if u["target"] == f"zendesk:user:{user_id}"]
    assert [c["value"] for c in moved["changes"]] == [str(new_org)]
    after = {
        m["organization_id"]: m["default"]
        for m in zd.dump()["organization_memberships"]
        if m["user_id"] == user_id
    }
    assert after == {own_group: False, new_org: True}
    assert zd.users[user_id]["organization_id"] == new_org
    # The next run finds nothing to do: the default organization is what the flow wrote.
    assert site.sync()["summary"]["update"] == 0
