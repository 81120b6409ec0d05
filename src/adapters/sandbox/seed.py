"""Generated, deterministic data sets for both sandboxes, with Norwegian-flavoured names.

`seed_sandboxes` builds `size` customers (about a fifth of them persons), about three contact
persons per company customer, `size // 20` departments (at least one), a few suppliers, and
Zendesk users matching most contact persons and person customers, plus the awkward cases a
sync must handle (see `SeedCases`).
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.zendesk import ZendeskSandbox


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Kari Ola Ingrid Lars Nora Jonas Sigrid Magnus Astrid Henrik Solveig Eirik Marit Håkon "
    "Ragnhild Øystein Liv Torbjørn Åse Bjørn Hanne Knut Silje Sindre Tuva Vegard Maja Even "
    "Gunnhild Trygve Ida Aksel Frøydis Sverre Oda Mats"
)
LAST_NAMES = _words(
    "Nordmann Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen "
    "Johnsen Pettersen Eriksen Berg Haugen Hagen Bakken Solberg Dahl Lie Strand Lund Moen "
    "Sæther Bråthen Kvamme Fjeld Haugland Østby Aasen Vik Myhre Ødegård Holm Rønning"
)
PLACES = _words(
    "Bergen Tromsø Bodø Ålesund Drammen Hamar Lillehammer Molde Harstad Florø Voss Røros "
    "Kongsberg Arendal Steinkjer Narvik Gjøvik Sandnes Haugesund Tønsberg"
)
TRADES = _words(
    "Bygg Rør Elektro Regnskap Transport Eiendom Maskin Fisk Trelast Data Marine Bakeri "
    "Entreprenør Consult Design Auto Maling Tak Glass Snekker"
)
DEPARTMENT_NAMES = _words(
    "Salg Service Innkjøp Økonomi Lager Drift Kundestøtte Prosjekt Marked Produksjon"
)
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "Æ": "Ae", "Ø": "O", "Å": "A", " ": ""})


def _slug(text: str) -> str:
    return "".join(ch for ch in text.translate(_ASCII).lower() if ch.isalnum())


@attrs.frozen
class SeedCases:
    """Ids of the records that carry each awkward case (for tests and demos to point at)."""

    customer_ids: tuple[int, ...]
    person_customer_ids: tuple[int, ...]
    contact_person_ids: tuple[int, ...]
    department_ids: tuple[int, ...]
    supplier_ids: tuple[int, ...]
    zendesk_user_ids: tuple[int, ...]
    zendesk_organization_ids: tuple[int, ...]
    #: A Zendesk organization named like a customer, not linked to it (customer id, org id).
    org_named_like_customer: tuple[int, int] | None
    #: A department with the same name as a customer (department id, customer id).
    department_named_like_customer: tuple[int, int] | None
    #: Two contact persons (under different customers) sharing one e-mail address.
    contact_persons_sharing_email: tuple[int, int] | None
    #: A contact person whose ContactId is a supplier, not a customer.
    contact_person_under_supplier: int | None
    #: Zendesk users whose e-mail matches a contact person (user id, contact person id).
    users_matching_contact_persons: tuple[tuple[int, int], ...]
    #: Zendesk users whose e-mail matches a person customer (user id, customer id).
    users_matching_person_customers: tuple[tuple[int, int], ...]


@attrs.define
class _Names:
    """What both systems' generated data share: one random stream (so a seed gives one data
    set), and the names and e-mail addresses given out so far (unique across both)."""

    rng: random.Random
    names: set[str] = attrs.Factory(set)
    emails: set[str] = attrs.Factory(set)

    def name(self, make: str) -> str:
        """``make``, or ``make 2``, ``make 3``... the first not given out (ignoring case)."""
        name, n = make, 2
        while name.casefold() in self.names:
            name, n = f"{make} {n}", n + 1
        self.names.add(name.casefold())
        return name

    def email(self, local: str, domain: str) -> str:
        """``local@domain``, or ``local2@domain``... the first not given out (ignoring case)."""
        email, n = f"{local}@{domain}", 2
        while email.lower() in self.emails:
            email, n = f"{local}{n}@{domain}", n + 1
        self.emails.add(email.lower())
        return email


@attrs.frozen
class _PowerOfficeSeed:
    """The PowerOffice records seeded, with the awkward cases among them."""

    customers: list[dict[str, Any]]
    persons: list[dict[str, Any]]
    companies: list[dict[str, Any]]
    contact_persons: list[dict[str, Any]]
    departments: list[dict[str, Any]]
    suppliers: list[dict[str, Any]]
    supplier_person: dict[str, Any]
    shared_email: tuple[int, int] | None
    department_like_customer: tuple[int, int] | None


@attrs.frozen
class _ZendeskSeed:
    """The Zendesk records seeded, and which of them match PowerOffice records."""

    organizations: list[dict[str, Any]]
    users: list[dict[str, Any]]
    org_like_customer: tuple[int, int] | None
    by_contact: list[tuple[int, int]]
    by_person: list[tuple[int, int]]


def seed_sandboxes(
    po: PowerOfficeSandbox, zd: ZendeskSandbox, *, size: int, seed: int
) -> SeedCases:
    """Fill both sandboxes with a generated data set of `size` customers, the same for a seed."""
    names = _Names(random.Random(seed))
    # PowerOffice first: the Zendesk side is made to match (and to clash with) its records.
    power = _seed_poweroffice(po, names, size)
    zen = _seed_zendesk(zd, names, size, power)
    return SeedCases(
        customer_ids=_ids(power.customers, "Id"),
        person_customer_ids=_ids(power.persons, "Id"),
        contact_person_ids=_ids([*power.contact_persons, power.supplier_person], "Id"),
        department_ids=_ids(power.departments, "Id"),
        supplier_ids=_ids(power.suppliers, "Id"),
        zendesk_user_ids=_ids(zen.users, "id"),
        zendesk_organization_ids=_ids(zen.organizations, "id"),
        org_named_like_customer=zen.org_like_customer,
        department_named_like_customer=power.department_like_customer,
        contact_persons_sharing_email=power.shared_email,
        contact_person_under_supplier=int(power.supplier_person["Id"]),
        users_matching_contact_persons=tuple(zen.by_contact),
        users_matching_person_customers=tuple(zen.by_person),
    )


def _ids(records: list[dict[str, Any]], key: str) -> tuple[int, ...]:
    return tuple(int(r[key]) for r in records)


# -- PowerOffice -------------------------------------------------------------------------------


def _seed_poweroffice(po: PowerOfficeSandbox, names: _Names, size: int) -> _PowerOfficeSeed:
    """`size` customers (every fifth a person) with their contact persons, departments and
    suppliers, then the awkward cases: a contact person under a supplier, two contact persons
    sharing an address, a department named like a customer."""
    rng = names.rng
    customers: list[dict[str, Any]] = []
    persons: list[dict[str, Any]] = []
    contact_persons: list[dict[str, Any]] = []
    for index in range(size):
        if index % 5 == 1:
            persons.append(_add_person_customer(po, names))
            customers.append(persons[-1])
        else:
            customers.append(_add_company(po, names, contact_persons))
    departments = [
        po.add_department(
            Name=names.name(f"{DEPARTMENT_NAMES[n % len(DEPARTMENT_NAMES)]} {n // 10 + 1}"),
            Code=str(100 + n),
        )
        for n in range(max(1, size // 20))
    ]
    suppliers = [
        po.add_supplier(Name=names.name(f"{rng.choice(LAST_NAMES)} Leverandør AS"))
        for _ in range(max(1, size // 25))
    ]
    supplier_person = po.add_contact_person(
        suppliers[0]["Id"],
        FirstName="Per",
        LastName="Leverandør",
        EmailAddress=names.email("per", f"{_slug(str(suppliers[0]['Name']))}.no"),
    )
    companies = [c for c in customers if not c["IsPerson"]]
    shared: tuple[int, int] | None = None
    if len(companies) >= 2:
        shared_email = names.email("faktura", "fellesinnboks.no")
        a = po.add_contact_person(
            companies[0]["Id"], FirstName="Felles", LastName="Faktura", EmailAddress=shared_email
        )
        b = po.add_contact_person(
            companies[1]["Id"], FirstName="Felles", LastName="Innboks", EmailAddress=shared_email
        )
        contact_persons.extend([a, b])
        shared = (int(a["Id"]), int(b["Id"]))
    same_name_department: tuple[int, int] | None = None
    if companies:
        target = companies[-1]
        department = po.add_department(Name=str(target["Name"]), Code=f"D{target['Id']}")
        departments.append(department)
        same_name_department = (int(department["Id"]), int(target["Id"]))
    return _PowerOfficeSeed(
        customers,
        persons,
        companies,
        contact_persons,
        departments,
        suppliers,
        supplier_person,
        shared,
        same_name_department,
    )


def _add_person_customer(po: PowerOfficeSandbox, names: _Names) -> dict[str, Any]:
    rng = names.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{_slug(first)}.{_slug(last)}"
    email = names.email(local, rng.choice(("gmail.com", "online.no", "hotmail.no")))
    return po.add_customer(
        Name=names.name(f"{first} {last}"),
        IsPerson=True,
        FirstName=first,
        LastName=last,
        EmailAddress=email,
    )


def _add_company(
    po: PowerOfficeSandbox, names: _Names, contact_persons: list[dict[str, Any]]
) -> dict[str, Any]:
    """A company customer with one to five contact persons (appended to ``contact_persons``)."""
    rng = names.rng
    style = rng.randrange(3)
    last = rng.choice(LAST_NAMES)
    if style == 0:
        name = f"{last} {rng.choice(TRADES)} AS"
    elif style == 1:
        name = f"{rng.choice(PLACES)} {rng.choice(TRADES)} AS"
    else:
        name = f"{last} & Sønner AS"
    name = names.name(name)
    domain = f"{_slug(name.removesuffix(' AS'))}.no"
    customer = po.add_customer(
        Name=name,
        IsPerson=False,
        EmailAddress=names.email("post", domain),
        OrganizationNumber=str(900_000_000 + rng.randrange(99_999_999)),
    )
    for _ in range(rng.choice((1, 2, 3, 3, 4, 5))):
        first, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = names.email(f"{_slug(first)}.{_slug(surname)}", domain)
        # Some addresses are typed with capitals in PowerOffice; matching must ignore case.
        if rng.random() < 0.1:
            email = email.capitalize()
        contact_persons.append(
            po.add_contact_person(
                customer["Id"], FirstName=first, LastName=surname, EmailAddress=email
            )
        )
    return customer


# -- Zendesk -----------------------------------------------------------------------------------


def _seed_zendesk(
    zd: ZendeskSandbox, names: _Names, size: int, power: _PowerOfficeSeed
) -> _ZendeskSeed:
    """Organizations (one named like a customer but not linked to it), users matching most
    contact persons and every other person customer, and users of Zendesk's own."""
    rng = names.rng
    organizations: list[dict[str, Any]] = []
    org_like_customer: tuple[int, int] | None = None
    if power.companies:
        target = power.companies[len(power.companies) // 2]
        org = zd.add_organization(name=str(target["Name"]))
        organizations.append(org)
        org_like_customer = (int(target["Id"]), int(org["id"]))
    for n in range(max(1, size // 50)):
        organizations.append(zd.add_organization(name=f"Zendesk-kunde {n + 1}"))

    users: list[dict[str, Any]] = []
    by_contact: list[tuple[int, int]] = []
    by_person: list[tuple[int, int]] = []
    zendesk_emails: set[str] = set()
    for person in power.contact_persons:
        email = str(person["EmailAddress"]).lower()
        if email in zendesk_emails or (by_contact and rng.random() >= 0.7):
            continue
        zendesk_emails.add(email)
        user = zd.add_user(name=f"{person['FirstName']} {person['LastName']}", email=email)
        users.append(user)
        by_contact.append((int(user["id"]), int(person["Id"])))
    for customer in power.persons[::2]:
        email = str(customer["EmailAddress"]).lower()
        user = zd.add_user(name=str(customer["Name"]), email=email)
        users.append(user)
        zendesk_emails.add(email)
        by_person.append((int(user["id"]), int(customer["Id"])))
    for n in range(max(2, size // 10)):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = names.email(f"{_slug(first)}.{_slug(last)}", "kunde.example")
        org_id = int(organizations[n % len(organizations)]["id"]) if n % 3 == 0 else None
        users.append(zd.add_user(name=f"{first} {last}", email=email, organization_id=org_id))
    return _ZendeskSeed(organizations, users, org_like_customer, by_contact, by_person)
