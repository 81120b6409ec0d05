"""Bad input on either side, each case run through the real ``talksync`` CLI (a subprocess)
against both sandboxes served on loopback, with a real SQLite state file.

Every data case seeds the same small good baseline (tests/e2e/bad_input_support.py) plus one
bad record — either before the first sync, or after a clean first sync (a linked record turning
bad). Each case then proves:

(a) the run names the bad record (system, kind, id) and the field — as a read problem, a report
    item or a write failure — or, for input that is odd but valid (emoji, right-to-left text,
    padding, e-mail case, unknown fields, numeric strings), that it is synced faithfully;
(b) every good record still syncs: organizations with origin key and name, users in their
    organization, links in the state file;
(c) nothing is half-written: organizations created carry their origin key once; the bad value
    reached neither system; the next sync plans no change at all.

Configuration cases: exit code 2 and a message naming the key, and no request reaches either
system.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from bad_input_support import (
    TALKSYNC,
    Site,
    changes,
    check_good_records,
    check_nothing_half_written,
    dropping,
    mentions,
    setting,
    site,
    stable_dump,
)

pytestmark = pytest.mark.e2e

PO, ZD = "poweroffice", "zendesk"


@attrs.frozen
class Reported:
    """The run must name this record and field; ``then`` checks more (e.g. a user untouched)."""

    system: str
    kind: str
    rid: str | None
    field: str
    then: Callable[[Site], None] | None = None


@attrs.frozen
class Accepted:
    """Odd but valid input: it must sync, as ``check`` says."""

    check: Callable[[Site], None]


Expectation = Reported | Accepted


@attrs.frozen
class Case:
    id: str
    setup: Callable[[Site], Expectation]
    after_first_sync: bool = False
    full: bool = False
    bug: str | None = None


# -- small helpers for the cases --------------------------------------------------------------


def _org_of(s: Site, origin: str) -> dict[str, Any] | None:
    with s.wire.paused():
        orgs = s.zd.dump()["organizations"]
    return next((o for o in orgs if o.get("external_id") == origin), None)


def _user(s: Site, user_id: int) -> dict[str, Any]:
    with s.wire.paused():
        return next(u for u in s.zd.dump()["users"] if int(u["id"]) == user_id)


def _customer(s: Site, name: str, **extra: Any) -> int:
    return int(s.po.add_customer(Name=name, IsPerson=False, **extra)["Id"])


def _first(mapping: dict[int, Any] | Any) -> int:
    return int(next(iter(mapping)))


def _user_left_alone(user_id: int) -> Callable[[Site], None]:
    def check(s: Site) -> None:
        assert _user(s, user_id)["organization_id"] is None

    return check


def _no_org_for(origin: str) -> Callable[[Site], None]:
    def check(s: Site) -> None:
        assert _org_of(s, origin) is None, f"an organization was created for {origin}"

    return check


def _org_named(origin: str, name: str) -> Callable[[Site], None]:
    def check(s: Site) -> None:
        org = _org_of(s, origin)
        assert org is not None, f"no organization for {origin}"
        assert org["name"] == name

    return check


# -- PowerOffice records bad before the first sync ------------------------------------------


def bad_customer_name(name: str) -> Callable[[Site], Expectation]:
    def setup(s: Site) -> Expectation:
        cid = _customer(s, name)
        return Reported(
            PO, "customer", str(cid), "Name", _no_org_for(f"poweroffice:customer:{cid}")
        )

    return setup


def odd_customer_name(name: str, stored: str | None = None) -> Callable[[Site], Expectation]:
    def setup(s: Site) -> Expectation:
        cid = _customer(s, name)
        return Accepted(_org_named(f"poweroffice:customer:{cid}", stored or name))

    return setup


def customer_wire(field: str, **wire: Any) -> Callable[[Site], Expectation]:
    """A customer whose wire form carries ``wire`` (wrong types and the like)."""

    def setup(s: Site) -> Expectation:
        cid = _customer(s, f"Feiltype {field} {len(wire)} {next(iter(wire.values()))!r} AS")
        s.wire.poweroffice("Customer", cid, setting(**wire), touch=False)
        return Reported(PO, "customer", str(cid), field, _no_org_for(f"poweroffice:customer:{cid}"))

    return setup


def customer_without_id(s: Site) -> Expectation:
    cid = _customer(s, "Uten Id AS")
    s.wire.poweroffice("Customer", cid, dropping("Id"), touch=False)
    return Reported(PO, "customer", None, "Id", _no_org_for(f"poweroffice:customer:{cid}"))


def customer_id_as_string(s: Site) -> Expectation:
    cid = _customer(s, "Streng Id AS")
    s.wire.poweroffice("Customer", cid, setting(Id=str(cid)), touch=False)
    return Reported(PO, "customer", str(cid), "Id", _no_org_for(f"poweroffice:customer:{cid}"))


def customer_unknown_fields(s: Site) -> Expectation:
    cid = _customer(s, "Ekstra Felt AS")
    extra = {"FavouriteColour": "blå", "Nested": {"a": [1, None]}, "isperson2": True}
    s.wire.poweroffice("Customer", cid, setting(**extra), touch=False)
    return Accepted(_org_named(f"poweroffice:customer:{cid}", "Ekstra Felt AS"))


def _new_person(s: Site, owner: int, email: str, user_email: str | None = None) -> tuple[int, int]:
    """A contact person under ``owner`` and a Zendesk user it would match."""
    person = s.po.add_contact_person(owner, FirstName="Ny", LastName="Kontakt", EmailAddress=email)
    user = s.zd.add_user(name="Ny Kontakt", email=user_email or email.lower())
    return int(person["Id"]), int(user["id"])


def contact_person_null_contact_id(s: Site) -> Expectation:
    person, user = _new_person(s, _first(s.base.customers), "null.kontakt@fjordbygg.no")
    s.wire.poweroffice("Contact person", person, setting(ContactId=None), touch=False)
    return Reported(PO, "contact_person", str(person), "ContactId", _user_left_alone(user))


def contact_person_contact_id_as_string(s: Site) -> Expectation:
    owner = _first(s.base.customers)
    person, user = _new_person(s, owner, "streng.kontakt@fjordbygg.no")
    s.wire.poweroffice("Contact person", person, setting(ContactId=str(owner)), touch=False)
    return Reported(PO, "contact_person", str(person), "ContactId", _user_left_alone(user))


def contact_person_dangling(s: Site) -> Expectation:
    person, user = _new_person(s, 987_654, "borte.kunde@ingen.no")
    return Reported(PO, "contact_person", str(person), "partyId", _user_left_alone(user))


def contact_person_under_supplier(s: Site) -> Expectation:
    person, user = _new_person(s, s.base.supplier, "per@leverandor.no")
    return Reported(PO, "contact_person", str(person), "partyId", _user_left_alone(user))


def contact_person_without_id(s: Site) -> Expectation:
    person, user = _new_person(s, _first(s.base.customers), "uten.id@fjordbygg.no")
    s.wire.poweroffice("Contact person", person, dropping("Id"), touch=False)
    return Reported(PO, "contact_person", None, "Id", _user_left_alone(user))


def contact_person_email_case(s: Site) -> Expectation:
    owner = _first(s.base.customers)
    _, user = _new_person(s, owner, "Per.Olsen@FjordBygg.NO", user_email="per.olsen@fjordbygg.no")

    def check(s: Site) -> None:
        org = _org_of(s, f"poweroffice:customer:{owner}")
        assert org is not None and _user(s, user)["organization_id"] == org["id"]
        assert _user(s, user)["email"] == "per.olsen@fjordbygg.no"

    return Accepted(check)


def contact_persons_same_email_but_case(s: Site) -> Expectation:
    c1, c2 = list(s.base.customers)[:2]
    a = s.po.add_contact_person(
        c1, FirstName="Felles", LastName="A", EmailAddress="Felles@Innboks.no"
    )
    s.po.add_contact_person(c2, FirstName="Felles", LastName="B", EmailAddress="felles@innboks.no")
    user = int(s.zd.add_user(name="Felles", email="felles@innboks.no")["id"])
    return Reported(PO, "contact_person", str(a["Id"]), "emailAddress", _user_left_alone(user))


def customer_and_department_same_name(s: Site) -> Expectation:
    cid = _customer(s, "Tvilling AS")
    did = int(s.po.add_department(Name="tvilling as ", Code="900")["Id"])

    def check(s: Site) -> None:
        _org_named(f"poweroffice:customer:{cid}", "Tvilling AS")(s)
        _no_org_for(f"poweroffice:department:{did}")(s)

    return Reported(PO, "department", str(did), "Name", check)


def two_customers_same_name(s: Site) -> Expectation:
    first = _customer(s, "Dobbel AS")
    second = _customer(s, "Dobbel AS")

    def check(s: Site) -> None:
        _org_named(f"poweroffice:customer:{first}", "Dobbel AS")(s)
        _no_org_for(f"poweroffice:customer:{second}")(s)

    return Reported(PO, "customer", str(second), "Name", check)


# -- Zendesk records bad before the first sync ----------------------------------------------


def _user_matching_new_person(s: Site, email: str) -> tuple[int, int]:
    owner = _first(s.base.customers)
    person, user = _new_person(s, owner, email)
    return person, user


def user_wire(field: str, **wire: Any) -> Callable[[Site], Expectation]:
    def setup(s: Site) -> Expectation:
        _, user = _user_matching_new_person(s, f"feil.{field.replace('_', '')}@fjordbygg.no")
        s.wire.zendesk("user", user, setting(**wire), touch=False)
        return Reported(ZD, "user", str(user), field, _user_left_alone(user))

    return setup


def user_without_id(s: Site) -> Expectation:
    _, user = _user_matching_new_person(s, "uten.zendeskid@fjordbygg.no")
    s.wire.zendesk("user", user, dropping("id"), touch=False)
    return Reported(ZD, "user", None, "id", _user_left_alone(user))


def user_id_not_a_number(s: Site) -> Expectation:
    _, user = _user_matching_new_person(s, "bokstav.id@fjordbygg.no")
    s.wire.zendesk("user", user, setting(id=f"u-{user}"), touch=False)
    return Reported(ZD, "user", f"u-{user}", "id", _user_left_alone(user))


def user_ids_as_strings(s: Site) -> Expectation:
    owner = _first(s.base.customers)
    _, user = _user_matching_new_person(s, "streng.id@fjordbygg.no")
    s.wire.zendesk("user", user, setting(id=str(user)), touch=False)

    def check(s: Site) -> None:
        org = _org_of(s, f"poweroffice:customer:{owner}")
        assert org is not None and _user(s, user)["organization_id"] == org["id"]

    return Accepted(check)


def user_unknown_fields(s: Site) -> Expectation:
    owner = _first(s.base.customers)
    _, user = _user_matching_new_person(s, "ekstra.felt@fjordbygg.no")
    extra = {"shoe_size": 44, "custom": {"x": [1, None]}, "Email2": "x@y.no"}
    s.wire.zendesk("user", user, setting(**extra), touch=False)

    def check(s: Site) -> None:
        org = _org_of(s, f"poweroffice:customer:{owner}")
        assert org is not None and _user(s, user)["organization_id"] == org["id"]

    return Accepted(check)


def users_email_differing_in_case(s: Site) -> Expectation:
    _, user = _user_matching_new_person(s, "dobbel@fjordbygg.no")
    other = int(s.zd.add_user(name="Dobbel To", email="annen@fjordbygg.no")["id"])
    s.wire.zendesk("user", other, setting(email="DOBBEL@FjordBygg.no"), touch=False)

    def check(s: Site) -> None:
        _user_left_alone(user)(s)
        _user_left_alone(other)(s)

    return Reported(ZD, "user", str(other), "email", check)


def organization_name_is_number(s: Site) -> Expectation:
    org = int(s.zd.add_organization(name="Tallnavn")["id"])
    s.wire.zendesk("organization", org, setting(name=12345), touch=False)
    cid = _customer(s, "12345")

    def check(s: Site) -> None:
        # The number reads as the name "12345": the one customer so named adopts it.
        from adapters.sqlite import SqliteStateStore
        from talkcore.dataflow import CUSTOMERS

        with SqliteStateStore(s.state_path) as store:
            link = store.load_state().table(CUSTOMERS).for_poweroffice(str(cid))
        assert link is not None and link.zendesk_id == str(org)

    return Accepted(check)


# -- linked records that turn bad after a clean first sync ----------------------------------


def _cp1(s: Site) -> tuple[int, int, int, str]:
    person, (user, customer, email) = next(iter(s.base.persons.items()))
    return person, user, customer, email


def linked_contact_person_email_invalid(s: Site) -> Expectation:
    person, _, _, _ = _cp1(s)
    s.wire.poweroffice(
        "Contact person", person, setting(EmailAddress="ola.hansen(at)fjordbygg"), touch=True
    )
    return Reported(PO, "contact_person", str(person), "emailAddress")


def linked_user_email_invalid(s: Site) -> Expectation:
    _, user, _, _ = _cp1(s)
    s.wire.zendesk("user", user, setting(email="ola@@fjordbygg"), touch=True)
    return Reported(ZD, "user", str(user), "email")


def linked_user_without_email(s: Site) -> Expectation:
    _, user, _, _ = _cp1(s)
    s.wire.zendesk("user", user, setting(email=None), touch=True)
    return Reported(ZD, "user", str(user), "email")


def linked_customer_name_emptied(s: Site) -> Expectation:
    customer = _first(s.base.customers)
    s.wire.poweroffice("Customer", customer, setting(Name="  "), touch=True)
    return Reported(PO, "customer", str(customer), "Name")


def linked_customer_name_control_chars(s: Site) -> Expectation:
    customer = _first(s.base.customers)
    s.wire.poweroffice("Customer", customer, setting(Name="Fjord\x1bBygg AS"), touch=True)
    return Reported(PO, "customer", str(customer), "Name")


def _org_of_first_customer(s: Site) -> int:
    org = _org_of(s, f"poweroffice:customer:{_first(s.base.customers)}")
    assert org is not None
    return int(org["id"])


def linked_org_name(name: str) -> Callable[[Site], Expectation]:
    def setup(s: Site) -> Expectation:
        org = _org_of_first_customer(s)
        s.wire.zendesk("organization", org, setting(name=name), touch=True)
        return Reported(ZD, "organization", str(org), "name")

    return setup


def renamed_org_is_accepted(name: str) -> Callable[[Site], Expectation]:
    def setup(s: Site) -> Expectation:
        customer = _first(s.base.customers)
        org = _org_of_first_customer(s)
        # A real rename (valid data), stored by the sandbox as an agent's edit would be.
        with s.zd._lock:
            s.zd._update_org(s.zd.organizations[org], {"name": name})

        def check(s: Site) -> None:
            with s.wire.paused():
                stored = {c["Id"]: c["Name"] for c in s.po.dump()["customers"]}
            assert stored[customer] == name

        # The rename reaches PowerOffice: from now on the good baseline carries the new name.
        s.base = attrs.evolve(s.base, customers={**s.base.customers, customer: name})
        return Accepted(check)

    return setup


def new_customer_name_taken_other_case(s: Site) -> Expectation:
    cid = _customer(s, "FJORD BYGG AS")
    return Reported(PO, "customer", str(cid), "Name", _no_org_for(f"poweroffice:customer:{cid}"))


def linked_user_in_department_org(s: Site) -> Expectation:
    _, user, _, _ = _cp1(s)
    department = _first(s.base.departments)
    org = _org_of(s, f"poweroffice:department:{department}")
    assert org is not None
    s.wire.zendesk("user", user, setting(organization_id=org["id"]), touch=True)
    return Reported(ZD, "user", str(user), "organization_id")


def linked_user_in_unknown_org(s: Site) -> Expectation:
    _, user, _, _ = _cp1(s)
    s.wire.zendesk("user", user, setting(organization_id=8_999_999_999), touch=True)
    return Reported(ZD, "user", str(user), "organization_id")


def linked_user_org_id_as_string(s: Site) -> Expectation:
    _, user, customer, _ = _cp1(s)
    org = _org_of(s, f"poweroffice:customer:{customer}")
    assert org is not None
    s.wire.zendesk("user", user, setting(organization_id=str(org["id"])), touch=True)
    return Accepted(lambda s: None)  # the same id, spelled as a string: nothing to do


def linked_user_unreadable(s: Site) -> Expectation:
    _, user, _, _ = _cp1(s)
    s.wire.zendesk("user", user, setting(name=["Ola", "Hansen"]), touch=True)
    return Reported(ZD, "user", str(user), "name")


def linked_customer_unreadable(s: Site) -> Expectation:
    customer = _first(s.base.customers)
    s.wire.poweroffice("Customer", customer, setting(Name=42), touch=True)
    return Reported(PO, "customer", str(customer), "Name")


BEFORE_CASES = [
    # PowerOffice records, bad from the start
    Case("po-customer-empty-name", bad_customer_name("")),
    Case("po-customer-blank-name", bad_customer_name("   ")),
    Case("po-customer-10000-char-name", bad_customer_name("Langt navn " * 910)),
    Case("po-customer-null-byte", bad_customer_name("Null\x00Byte AS")),
    Case("po-customer-control-chars", bad_customer_name("Bjelle\x07Tegn\x1fAS")),
    Case("po-customer-emoji-rtl", odd_customer_name("Sjømat 🐟 شركة الصقر AS")),
    Case("po-customer-padded-name", odd_customer_name("  Havblikk AS \t", "Havblikk AS")),
    Case("po-customer-name-number", customer_wire("Name", Name=42)),
    Case("po-customer-name-list", customer_wire("Name", Name=["Feil", "Type"])),
    Case("po-customer-isperson-string", customer_wire("IsPerson", IsPerson="true")),
    Case("po-customer-without-id", customer_without_id),
    Case("po-customer-id-as-string", customer_id_as_string),
    Case("po-customer-unknown-fields", customer_unknown_fields),
    Case("po-contact-null-contact-id", contact_person_null_contact_id),
    Case("po-contact-contact-id-as-string", contact_person_contact_id_as_string),
    Case("po-contact-dangling-contact-id", contact_person_dangling),
    Case("po-contact-under-supplier", contact_person_under_supplier),
    Case("po-contact-without-id", contact_person_without_id),
    Case("po-contact-email-case", contact_person_email_case),
    Case("po-contacts-email-differ-in-case", contact_persons_same_email_but_case),
    Case("po-customer-and-department-same-name", customer_and_department_same_name),
    Case("po-two-customers-same-name", two_customers_same_name),
    # Zendesk records, bad from the start
    Case("zd-user-name-list", user_wire("name", name=["Feil", "Type"])),
    Case("zd-user-active-string", user_wire("active", active="yes")),
    Case("zd-user-organization-id-list", user_wire("organization_id", organization_id=[1])),
    Case("zd-user-without-id", user_without_id),
    Case("zd-user-id-not-a-number", user_id_not_a_number),
    Case("zd-user-id-as-string", user_ids_as_strings),
    Case("zd-user-unknown-fields", user_unknown_fields),
    Case("zd-users-email-differ-in-case", users_email_differing_in_case),
    Case("zd-organization-name-number", organization_name_is_number),
]
"""All in one site: every bad record at once next to the baseline, so one bad record stopping
the run, or two of them interfering, would show too. Names and e-mails are unique per case."""


AFTER_CASES = [
    Case("po-linked-email-invalid", linked_contact_person_email_invalid),
    Case("po-linked-name-emptied", linked_customer_name_emptied),
    Case("po-linked-name-control-chars", linked_customer_name_control_chars),
    Case("po-linked-customer-unreadable-full", linked_customer_unreadable, full=True),
    Case("po-new-customer-name-taken-other-case", new_customer_name_taken_other_case),
    Case("zd-linked-email-invalid", linked_user_email_invalid),
    Case("zd-linked-user-without-email", linked_user_without_email),
    Case("zd-linked-org-name-null-byte", linked_org_name("Fjord\x00Bygg AS")),
    Case("zd-linked-org-name-10000-chars", linked_org_name("B" * 10_000)),
    Case("zd-linked-org-name-emoji-rtl", renamed_org_is_accepted("Fjord 🏗 بناء AS")),
    Case("zd-user-org-linked-to-department", linked_user_in_department_org),
    Case("zd-user-org-dangling", linked_user_in_unknown_org),
    Case("zd-user-org-id-as-string", linked_user_org_id_as_string),
    Case("zd-linked-user-unreadable", linked_user_unreadable),
    # Was a bug: a Zendesk full read with an unreadable record claimed to be complete, so the
    # record looked deleted and its link ended.
    Case("zd-linked-user-unreadable-full", linked_user_unreadable, full=True),
]
"""One site each, after a clean first sync: a linked record turns bad."""


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


def _assert_named(report: dict[str, Any], expect: Reported) -> None:
    hits = mentions(report, expect.system, expect.kind, expect.rid, expect.field)
    quiet = ("create", "link", "update")
    assert hits, (
        f"nothing names {expect.system} {expect.kind} {expect.rid} {expect.field}: "
        f"problems={report['problems']} failures={report['failures']} "
        f"reports={[i for i in report['items'] if i['kind'] not in quiet]}"
    )


def _check_expectation(s: Site, expect: Expectation) -> None:
    if isinstance(expect, Accepted):
        expect.check(s)
    elif expect.then is not None:
        expect.then(s)


@attrs.frozen
class SharedRun:
    """The one site all the from-the-start cases run in, and what its two syncs said."""

    site: Site
    expectations: dict[str, Expectation]
    before: dict[str, Any]
    first: dict[str, Any]
    second: dict[str, Any]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedRun]:
    with site(tmp_path_factory.mktemp("bad-from-start")) as s:
        expectations = {case.id: case.setup(s) for case in BEFORE_CASES}
        with s.wire.paused():
            s.org_ids_before = {int(o["id"]) for o in s.zd.dump()["organizations"]}
        before = stable_dump(s)
        first = s.sync()
        second = s.sync()
        yield SharedRun(s, expectations, before, first, second)


@pytest.mark.parametrize("case", [_param(c) for c in BEFORE_CASES])
def test_bad_record_from_the_start_is_named_and_the_rest_syncs(
    case: Case, shared_run: SharedRun
) -> None:
    s, expect = shared_run.site, shared_run.expectations[case.id]
    # (a) the bad record and its field are named, or odd-but-valid input is synced
    if isinstance(expect, Reported):
        _assert_named(shared_run.first, expect)
    _check_expectation(s, expect)
    # (b) every good record still syncs
    check_good_records(s)
    # (c) nothing half-written: origin keys; PowerOffice (never a target here) untouched; the
    # second sync plans no change at all
    check_nothing_half_written(s)
    after = stable_dump(s)
    for kind in ("customers", "contact_persons", "departments", "suppliers"):
        key = f"poweroffice.{kind}"
        assert after[key] == shared_run.before[key], f"PowerOffice {kind} were written"
    assert shared_run.first["failures"] == [], shared_run.first["failures"]
    assert shared_run.second["exit_code"] == 0
    assert changes(shared_run.second) == [], changes(shared_run.second)


@pytest.mark.parametrize("case", [_param(c) for c in AFTER_CASES])
def test_linked_record_turning_bad_is_named_and_the_rest_syncs(case: Case, tmp_path: Path) -> None:
    with site(tmp_path) as s:
        clean = s.sync()
        assert clean["exit_code"] == 0 and not clean["problems"], clean["summary"]
        check_good_records(s)
        with s.wire.paused():
            s.org_ids_before = {int(o["id"]) for o in s.zd.dump()["organizations"]}
        expect = case.setup(s)
        before = stable_dump(s)
        report = s.sync(*(("--full",) if case.full else ()))
        # (a)
        if isinstance(expect, Reported):
            _assert_named(report, expect)
        assert report["failures"] == [], report["failures"]
        # (b)
        check_good_records(s)
        _check_expectation(s, expect)
        # (c) the bad value reached neither system; the next sync plans no change
        check_nothing_half_written(s)
        if isinstance(expect, Reported):
            assert stable_dump(s) == before, "the bad run changed a system"
        again = s.sync()
        assert again["exit_code"] == 0, again["failures"]
        assert changes(again) == [], changes(again)
        check_good_records(s)


# -- bad configuration ----------------------------------------------------------------------


@attrs.frozen
class ConfigCase:
    id: str
    toml: str | None
    names: tuple[str, ...]
    args: tuple[str, ...] = ("sync", "--json")
    drop_env: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    hidden: str | None = None


CONFIG_CASES = [
    ConfigCase("unknown-key", '[sync]\nfull_reconcile_evry = "1h"\n', ("full_reconcile_evry",)),
    ConfigCase("unknown-section", "[zendesk_extra]\nx = 1\n", ("zendesk_extra",)),
    ConfigCase(
        "wrong-type-int",
        '[zendesk]\nrate_limit_per_minute = "fast"\n',
        ("zendesk.rate_limit_per_minute",),
    ),
    ConfigCase(
        "wrong-type-bool",
        '[flows.customers-organizations]\ncreate = "yes"\n',
        ("flows.customers-organizations.create",),
    ),
    ConfigCase(
        "secret-in-toml",
        '[zendesk]\napi_token = "s3cr3t-token-value"\n',
        ("zendesk.api_token",),
        hidden="s3cr3t-token-value",
    ),
    ConfigCase(
        "missing-credentials",
        None,
        ("TALKSYNC_POWEROFFICE_CLIENT_KEY",),
        drop_env=("TALKSYNC_POWEROFFICE_CLIENT_KEY",),
    ),
    ConfigCase(
        "missing-zendesk-token",
        None,
        ("TALKSYNC_ZENDESK_API_TOKEN",),
        drop_env=("TALKSYNC_ZENDESK_API_TOKEN", "TALKSYNC_ZENDESK_OAUTH_TOKEN"),
    ),
    ConfigCase("unparseable-toml", "[sync\nname_collision = adopt\n", ("talksync.toml", "line 1")),
    ConfigCase("bad-every", None, ("--every", "5x"), args=("sync", "--json", "--every", "5x")),
    ConfigCase(
        "unknown-conflict-policy",
        '[flows.customers-organizations]\nconflict = "loudest"\n',
        ("flows.customers-organizations.conflict", "loudest"),
    ),
    ConfigCase(
        "unknown-flow", "[flows.customers-tickets]\ncreate = true\n", ("flows.customers-tickets",)
    ),
    ConfigCase(
        "delete-cap-out-of-range",
        "[flows.departments-organizations]\ndelete_cap = 5\n",
        ("flows.departments-organizations.delete_cap",),
    ),
    ConfigCase(
        "bad-full-reconcile-every",
        '[sync]\nfull_reconcile_every = "soon"\n',
        ("sync.full_reconcile_every",),
    ),
    ConfigCase(
        "bad-rate-limit-env",
        None,
        ("TALKSYNC_ZENDESK_RATE_LIMIT",),
        extra_env=(("TALKSYNC_ZENDESK_RATE_LIMIT", "lots"),),
    ),
]


@pytest.fixture(scope="module")
def config_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # Nothing is written by a run stopped by its configuration, so one site serves every case.
    with site(tmp_path_factory.mktemp("config")) as s:
        yield s


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_bad_configuration_exits_2_naming_the_key(
    case: ConfigCase, config_site: Site, tmp_path: Path
) -> None:
    s = attrs.evolve(config_site, folder=tmp_path)
    if case.toml is not None:
        (tmp_path / "talksync.toml").write_text(case.toml, encoding="utf-8")
    before = dict(s.served.controller.requests)
    env = s.env(case.drop_env)
    env.update(dict(case.extra_env))
    done = subprocess.run(
        [str(TALKSYNC), "--log-format", "json", *case.args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    for name in case.names:
        assert name in done.stderr, (name, done.stderr)
    assert "Traceback" not in done.stderr
    if case.hidden is not None:
        assert case.hidden not in done.stderr + done.stdout
    assert not (tmp_path / "state.db").exists(), "a state file was made by a refused run"
    assert dict(s.served.controller.requests) == before, "a refused run reached a system"
