"""Decision 3b across the wire: the first sync over a lived-in Zendesk account.

The real CLI (a child process, a real SQLite state file) against both sandboxes over loopback
HTTP. The Zendesk account existed before talksync: users sit in organizations no customer owns
("Kundeservice", "VIP"), organizations carry other spellings of the customers' names, and the
users' e-mail addresses are typed differently from PowerOffice's. The first sync must seed the
links from PowerOffice (the default ``first_link`` policy), report every value it replaces with
both sides, and leave nothing to report or write on the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest
from site_support import Site, changes, items

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.server import serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from cli.config import load_settings
from cli.wiring import RealWiring

pytestmark = pytest.mark.e2e


@attrs.frozen
class LivedIn:
    """What the lived-in seeding made, for the assertions to point at."""

    #: Customer id → the name PowerOffice holds / the other spelling Zendesk holds.
    renamed: dict[int, tuple[str, str]]
    #: Zendesk organizations no customer or department owns.
    unowned_orgs: tuple[int, ...]
    #: Users sitting in an unowned organization: user id → (contact person's party, org id).
    stray_users: dict[int, tuple[int, int]]
    #: Users already in the organization of their contact person's customer, or in none.
    settled_users: tuple[int, ...]


def seed_lived_in(po: PowerOfficeSandbox, zd: ZendeskSandbox) -> LivedIn:
    """PowerOffice customers with contact persons; a Zendesk account that was in use before."""
    unowned = (
        int(zd.add_organization(name="Kundeservice")["id"]),
        int(zd.add_organization(name="VIP")["id"]),
    )
    renamed: dict[int, tuple[str, str]] = {}
    stray: dict[int, tuple[int, int]] = {}
    settled: list[int] = []
    companies = [
        ("Nordmann Rør AS", "post@nordmann-ror.no"),
        ("Fjord Elektro AS", "post@fjord-elektro.no"),
        ("Berg & Sønner AS", "post@berg-sonner.no"),
    ]
    for index, (name, email) in enumerate(companies):
        customer = po.add_customer(Name=name, IsPerson=False, EmailAddress=email)
        cid = int(customer["Id"])
        domain = email.split("@")[1]
        org_id: int | None = None
        if index == 0:
            # An organization talksync made for this customer once (its origin key), renamed
            # by an agent since.
            other = "Nordmann Rør (gammel avtale)"
            org = zd.add_organization(name=other, external_id=f"poweroffice:customer:{cid}")
            org_id, renamed[cid] = int(org["id"]), (name, other)
        elif index == 1:
            # An agent's organization with the customer's name in other capitals: adopted.
            other = name.upper()
            org_id, renamed[cid] = int(zd.add_organization(name=other)["id"]), (name, other)
        for n, first in enumerate(("Ola", "Kari", "Per")):
            address = f"{first.lower()}.{index}@{domain}"
            po.add_contact_person(cid, FirstName=first, LastName="Hansen", EmailAddress=address)
            # Typed differently in Zendesk: capitals, a different display name.
            typed = address.replace(first.lower(), first, 1)
            if n < 2:
                sits_in = unowned[(index + n) % 2]
                user = zd.add_user(name=f"{first} H.", email=typed, organization_id=sits_in)
                stray[int(user["id"])] = (cid, sits_in)
            else:
                user = zd.add_user(name=f"{first} H.", email=typed, organization_id=org_id)
                settled.append(int(user["id"]))
    return LivedIn(renamed, unowned, stray, tuple(settled))


@pytest.fixture
def lived_in(tmp_path: Path) -> Iterator[tuple[Site, LivedIn]]:
    po, zd = PowerOfficeSandbox(), ZendeskSandbox()
    seeded = seed_lived_in(po, zd)
    with ExitStack() as stack:
        served = stack.enter_context(serve_sandboxes(po, zd))
        settings = load_settings(None, served.env(), state_path=tmp_path / "unused.db")
        poweroffice, zendesk = RealWiring().systems(settings, stack)
        # Site wants seed cases only for its own helpers, which this test does not use.
        yield Site(served, None, tmp_path, poweroffice, zendesk), seeded  # type: ignore[arg-type]


def zendesk_users(site: Site) -> dict[int, dict[str, Any]]:
    return {int(u["id"]): u for u in site.served.zendesk.dump()["users"]}


def test_the_first_sync_seeds_from_poweroffice_reports_both_sides_and_reaches_the_fixpoint(
    lived_in: tuple[Site, LivedIn],
) -> None:
    site, seeded = lived_in
    users_before = zendesk_users(site)

    explained = site.cli("plan", "--from-empty", "--explain").stdout
    for party, org in seeded.stray_users.values():
        assert f"poweroffice '{party}', zendesk '{org}': poweroffice wins" in explained, explained

    first = site.sync()
    reported = items(first, "first_link")
    # Every organization no customer owns is replaced by the contact person's customer's
    # organization: reported with both sides, whatever a timestamp says.
    by_user = {item["zendesk"]: item for item in reported if item["property"] == "partyId"}
    assert set(by_user) == {f"zendesk:user:{u}" for u in seeded.stray_users}
    for user, (party, org) in seeded.stray_users.items():
        item = by_user[f"zendesk:user:{user}"]
        assert (item["poweroffice_value"], item["zendesk_value"]) == (str(party), str(org))
        assert (item["winner"], item["rule"]) == ("poweroffice", "first_link_only_writable")
    # The organizations' other spellings are replaced by PowerOffice's names (the default).
    by_customer = {item["poweroffice"]: item for item in reported if item["property"] == "Name"}
    assert set(by_customer) == {f"poweroffice:customer:{c}" for c in seeded.renamed}
    for cid, (po_name, zd_name) in seeded.renamed.items():
        item = by_customer[f"poweroffice:customer:{cid}"]
        assert (item["poweroffice_value"], item["zendesk_value"]) == (po_name, zd_name)
        assert (item["winner"], item["policy"], item["rule"]) == (
            "poweroffice",
            "poweroffice",
            "first_link_poweroffice",
        )
    assert len(reported) == len(seeded.stray_users) + len(seeded.renamed)
    assert not items(first, "conflict") and not items(first, "reference_problem")

    # What the systems now hold: PowerOffice's values seeded the links.
    orgs = {int(o["id"]): o for o in site.served.zendesk.dump()["organizations"]}
    for cid, (po_name, _) in seeded.renamed.items():
        assert orgs[int(site.link("customers-organizations", str(cid)))]["name"] == po_name
    users = zendesk_users(site)
    memberships = site.served.zendesk.dump()["organization_memberships"]
    for user, (party, org) in seeded.stray_users.items():
        assert str(users[user]["organization_id"]) == site.link(
            "customers-organizations", str(party)
        )
        # The organization no customer owns is the agents' business: the user stays in it.
        assert (org, False) in {
            (m["organization_id"], m["default"]) for m in memberships if m["user_id"] == user
        }
    for user in seeded.settled_users:
        assert users[user]["email"] == users_before[user]["email"]  # equal after normalisation
    customers = {c["Id"]: c for c in site.served.poweroffice.dump()["customers"]}
    assert {cid: customers[cid]["Name"] for cid in seeded.renamed} == {
        cid: names[0] for cid, names in seeded.renamed.items()
    }

    # After the first sync the base exists: nothing is written, reported or replaced again.
    second = site.sync()
    assert changes(second) == 0, second["summary"]
    assert not any(second["summary"].values()), second["summary"]
    assert site.cli("plan").stdout.startswith("Nothing to do")
