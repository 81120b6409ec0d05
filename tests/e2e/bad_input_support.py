"""Helpers for the bad-input proofs: one small hand-made baseline of good records on both sides,
ways to put broken records on the wire, the real CLI run against served sandboxes, and the
checks every case shares (the report names the bad record and field; every good record still
syncs; nothing is half-written).

Broken wire shapes (a missing ``Id``, a name that is a list, unknown fields) cannot be stored
through the sandboxes' own validated paths, and storing them raw would break the sandboxes'
own bookkeeping (indexes keyed by id). So the sandbox keeps a sane record and a per-record
*wire override* rewrites it on the way out, which is exactly what the adapters then read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.server import RunningSandboxes, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.sqlite import SqliteStateStore
from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS, DEPARTMENTS, PERSON_CUSTOMERS

TALKSYNC = Path(sys.executable).parent / "talksync"
CHANGES = ("create", "update", "delete", "link", "unlink", "advance_base")
Override = Callable[[dict[str, Any]], dict[str, Any]]


# -- the good baseline ----------------------------------------------------------------------


@attrs.frozen
class Baseline:
    """Ids of the good records and what each must look like once synced."""

    customers: Mapping[int, str]  # customer id -> name (every customer gets an organization)
    departments: Mapping[int, str]  # department id -> name
    persons: Mapping[int, tuple[int, int, str]]  # contact person -> (user, customer, e-mail)
    person_customers: Mapping[int, int]  # person customer -> user
    supplier: int


def seed_baseline(po: PowerOfficeSandbox, zd: ZendeskSandbox) -> Baseline:
    """Two company customers with a contact person each, a person customer, a department and
    a supplier in PowerOffice; a Zendesk user for each contact person and the person customer."""
    c1 = po.add_customer(Name="Fjord Bygg AS", IsPerson=False, EmailAddress="post@fjordbygg.no")
    c2 = po.add_customer(Name="Nord Elektro AS", IsPerson=False, EmailAddress="post@nordel.no")
    p1 = po.add_customer(
        Name="Kari Nordmann",
        IsPerson=True,
        FirstName="Kari",
        LastName="Nordmann",
        EmailAddress="kari.nordmann@online.no",
    )
    cp1 = po.add_contact_person(
        c1["Id"], FirstName="Ola", LastName="Hansen", EmailAddress="ola.hansen@fjordbygg.no"
    )
    cp2 = po.add_contact_person(
        c2["Id"], FirstName="Ingrid", LastName="Berg", EmailAddress="ingrid.berg@nordel.no"
    )
    d1 = po.add_department(Name="Kundestøtte", Code="100")
    s1 = po.add_supplier(Name="Leverandør Holm AS")
    u1 = zd.add_user(name="Ola Hansen", email="ola.hansen@fjordbygg.no")
    u2 = zd.add_user(name="Ingrid Berg", email="ingrid.berg@nordel.no")
    u3 = zd.add_user(name="Kari Nordmann", email="kari.nordmann@online.no")
    return Baseline(
        customers={int(c["Id"]): str(c["Name"]) for c in (c1, c2, p1)},
        departments={int(d1["Id"]): str(d1["Name"])},
        persons={
            int(cp1["Id"]): (int(u1["id"]), int(c1["Id"]), "ola.hansen@fjordbygg.no"),
            int(cp2["Id"]): (int(u2["id"]), int(c2["Id"]), "ingrid.berg@nordel.no"),
        },
        person_customers={int(p1["Id"]): int(u3["id"])},
        supplier=int(s1["Id"]),
    )


# -- broken records on the wire -------------------------------------------------------------


class WireOverrides:
    """Per-record rewrites of what the sandboxes send (and dump), keyed by kind and id."""

    def __init__(self, po: PowerOfficeSandbox, zd: ZendeskSandbox) -> None:
        self.po, self.zd = po, zd
        self._po: dict[tuple[str, int], Override] = {}
        self._zd: dict[tuple[str, int], Override] = {}
        self.enabled = True
        dto, render_user, render_org = po._dto, zd._render_user, zd._render_org

        def po_dto(table: Any, row_id: int) -> dict[str, Any]:
            out = dto(table, row_id)
            rewrite = self._po.get((table.label, row_id)) if self.enabled else None
            return rewrite(dict(out)) if rewrite else out

        def zd_user(user: dict[str, Any], base_url: str) -> dict[str, Any]:
            out = render_user(user, base_url)
            rewrite = self._zd.get(("user", int(user["id"]))) if self.enabled else None
            return rewrite(out) if rewrite else out

        def zd_org(org: dict[str, Any], base_url: str) -> dict[str, Any]:
            out = render_org(org, base_url)
            rewrite = self._zd.get(("organization", int(org["id"]))) if self.enabled else None
            return rewrite(out) if rewrite else out

        # Instance attributes shadow the methods the sandboxes call through ``self``.
        setattr(po, "_dto", po_dto)  # noqa: B010
        setattr(zd, "_render_user", zd_user)  # noqa: B010
        setattr(zd, "_render_org", zd_org)  # noqa: B010

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The sandboxes' stored records as they are, without the rewrites (for checks made
        between runs, while nothing is served)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def poweroffice(self, label: str, row_id: int, rewrite: Override, *, touch: bool) -> None:
        """Rewrite a PowerOffice record (table label e.g. "Customer"); ``touch`` moves its
        LastChangedDateTimeOffset so an incremental read picks it up."""
        self._po[(label, row_id)] = rewrite
        if touch:
            table = {
                t.label: t
                for t in (
                    self.po.customers,
                    self.po.contact_persons,
                    self.po.departments,
                    self.po.suppliers,
                )
            }[label]
            with self.po._lock:
                self.po._put(table, row_id, table.rows[row_id], self.po._stamp())

    def zendesk(self, kind: str, record_id: int, rewrite: Override, *, touch: bool) -> None:
        """Rewrite a Zendesk user or organization; ``touch`` moves its updated_at."""
        self._zd[(kind, record_id)] = rewrite
        if touch:
            store = self.zd.users if kind == "user" else self.zd.organizations
            with self.zd._lock:
                self.zd._touch(kind, store[record_id])


def setting(**values: Any) -> Override:
    """A rewrite that sets wire fields."""
    return lambda out: {**out, **values}


def dropping(*names: str) -> Override:
    """A rewrite that leaves wire fields out."""
    return lambda out: {k: v for k, v in out.items() if k not in names}


# -- a site: served sandboxes, a state file, the real CLI -----------------------------------


@attrs.define
class Site:
    """Both sandboxes (baseline seeded) served on loopback, a folder with the state file."""

    served: RunningSandboxes
    base: Baseline
    wire: WireOverrides
    folder: Path
    org_ids_before: set[int] = attrs.Factory(set)

    @property
    def po(self) -> PowerOfficeSandbox:
        return self.served.poweroffice

    @property
    def zd(self) -> ZendeskSandbox:
        return self.served.zendesk

    @property
    def state_path(self) -> Path:
        return self.folder / "state.db"

    def env(self, drop: tuple[str, ...] = ()) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALKSYNC_")}
        env.update(self.served.env())
        env["TALKSYNC_STATE"] = str(self.state_path)
        for name in drop:
            env.pop(name, None)
        return env

    def cli(self, *args: str, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TALKSYNC), "--log-format", "json", *args],
            env=self.env(drop),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def sync(self, *extra: str) -> dict[str, Any]:
        """One ``sync --json``; a crash or an exit code other than 0/1 fails the case."""
        done = self.cli("sync", "--json", *extra)
        assert done.returncode in (0, 1), (done.returncode, done.stderr[-3000:])
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except json.JSONDecodeError as exc:  # pragma: no cover - shown when it happens
            raise AssertionError(f"sync printed no JSON report: {done.stdout[-2000:]}") from exc
        report["exit_code"] = done.returncode
        return report


@contextmanager
def site(folder: Path) -> Iterator[Site]:
    """A fresh pair of sandboxes with the baseline, served, with wire overrides installed."""
    po, zd = PowerOfficeSandbox(), ZendeskSandbox(job_polls=0)
    base = seed_baseline(po, zd)
    wire = WireOverrides(po, zd)
    with serve_sandboxes(po, zd) as served:
        yield Site(served, base, wire, folder)


# -- what the report says -------------------------------------------------------------------


def _same(left: object, right: str) -> bool:
    return isinstance(left, str) and left.casefold() == right.casefold()


def mentions(
    report: Mapping[str, Any], system: str, kind: str, rid: str | None, field: str
) -> list[dict[str, Any]]:
    """Every problem, report item or write failure naming the record and the field.

    ``rid`` None is for a record with no usable id: a read problem of that system and kind
    saying the field is missing.
    """
    prefix = f"{system}:{kind}:"

    def key_matches(key: object) -> bool:
        if not isinstance(key, str) or not key.startswith(prefix):
            return False
        return rid is None or key == prefix + rid

    hits: list[dict[str, Any]] = []
    for problem in report.get("problems", []):
        if (
            problem["system"] == system
            and problem["kind"] == kind
            and (rid == problem["record_id"] or (rid is None and "missing" in problem["message"]))
            and _same(problem["field"], field)
        ):
            hits.append(problem)
    for item in report.get("items", []):
        kind_of = item["type"]
        if kind_of in ("invalid_value", "reference_problem", "unsupported_change"):
            if key_matches(item["record"]) and _same(item["property"], field):
                hits.append(item)
        elif (
            # A collision is about the organization name by definition.
            kind_of == "name_collision"
            and field.casefold() == "name"
            and key_matches(item["record"])
        ) or (
            # An ambiguity is about the identity property (e-mail) by definition.
            kind_of == "ambiguity"
            and "email" in field.casefold()
            and any(key_matches(c) for c in item["candidates"])
        ):
            hits.append(item)
    for failure in report.get("failures", []):
        error = failure.get("error") or {}
        label = f"{system} {kind} {rid}" if rid is not None else f"{system} {kind}"
        if str(error.get("record") or "").startswith(label) and _same(error.get("field"), field):
            hits.append(failure)
    return hits


def changes(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Items that would write to a system or change link state."""
    return [item for item in report["items"] if item["type"] in CHANGES]


# -- the shared checks ----------------------------------------------------------------------


def _stable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in row.items()
        if k != "url" and not k.endswith("_at") and "datetime" not in k.lower()
    }


def stable_dump(s: Site) -> dict[str, Any]:
    """Both sandboxes' stored records without timestamps and self-links (which move on a mere
    touch), rewrites paused."""
    with s.wire.paused():
        dumps = {"poweroffice": s.po.dump(), "zendesk": s.zd.dump()}
    return {
        f"{system}.{kind}": [_stable(row) for row in rows]
        for system, dump in dumps.items()
        for kind, rows in dump.items()
        if kind != "jobs"
    }


def check_good_records(s: Site) -> None:
    """Every baseline record is synced: organizations carry their origin key and name, users
    their e-mail and organization, and the state file links each pair."""
    with s.wire.paused():
        zd = s.zd.dump()
    by_origin = {o["external_id"]: o for o in zd["organizations"] if o.get("external_id")}
    users = {int(u["id"]): u for u in zd["users"] if "id" in u}
    with SqliteStateStore(s.state_path) as store:
        state = store.load_state()
    for customer, name in s.base.customers.items():
        org = by_origin.get(f"poweroffice:customer:{customer}")
        assert org is not None, f"customer {customer} has no organization"
        assert org["name"] == name
        link = state.table(CUSTOMERS).for_poweroffice(str(customer))
        assert link is not None and link.zendesk_id == str(org["id"])
    for department, name in s.base.departments.items():
        org = by_origin.get(f"poweroffice:department:{department}")
        assert org is not None, f"department {department} has no organization"
        assert org["name"] == name
        link = state.table(DEPARTMENTS).for_poweroffice(str(department))
        assert link is not None and link.zendesk_id == str(org["id"])
    for person, (user, customer, email) in s.base.persons.items():
        org = by_origin[f"poweroffice:customer:{customer}"]
        assert users[user]["email"] == email
        assert users[user]["organization_id"] == org["id"], f"user {user} not in its org"
        link = state.table(CONTACT_PERSONS).for_poweroffice(str(person))
        assert link is not None and link.zendesk_id == str(user)
    for customer, user in s.base.person_customers.items():
        link = state.table(PERSON_CUSTOMERS).for_poweroffice(str(customer))
        assert link is not None and link.zendesk_id == str(user)


def check_nothing_half_written(s: Site) -> None:
    """Organizations this product created all carry an origin key, once each."""
    with s.wire.paused():
        orgs = s.zd.dump()["organizations"]
    created = [o for o in orgs if int(o["id"]) not in s.org_ids_before]
    assert all(str(o.get("external_id") or "").startswith("poweroffice:") for o in created), [
        (o["id"], o["name"], o.get("external_id")) for o in created
    ]
    counts = Counter(o["external_id"] for o in orgs if o.get("external_id"))
    assert all(n == 1 for n in counts.values()), counts
