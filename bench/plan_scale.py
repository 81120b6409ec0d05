"""Full-plan time and peak memory at 10k, 100k and 1M records per side, 1% changed.

Each size runs in its own process (so peak RSS is that size's), building: N/2 customers linked to
N/2 organizations, N/2 contact persons linked to N/2 users (with bases), then changing 1% of the
records (customer names in PowerOffice, user e-mails in Zendesk). It times ``plan_changes`` and,
in the same process, a naive dict-join baseline that only compares linked names and e-mails.

    python bench/plan_scale.py                 # 10k, 100k and 1M
    python bench/plan_scale.py 10000 100000    # chosen sizes
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

from talkcore.dataflow import CONTACT_PERSONS, CUSTOMERS, DEFAULT_DATAFLOW
from talkcore.planning import plan_changes
from talkcore.policy import SyncPolicy
from talkcore.records import Kind, Record, RecordKey, Snapshot, System
from talkcore.state import Link, LinkTable, SyncState

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def pair_records(i: int, changed: bool = False) -> tuple[Record, Record, Record, Record]:
    """The ``i``-th customer, organization, contact person and user (``changed``: the
    customer renamed and the user's e-mail changed since the links were made)."""
    cid, oid, pid, uid = (str(i + 1), str(10_000_000 + i), str(20_000_000 + i), str(30_000_000 + i))
    name = f"Kunde {i} AS"
    email = f"person{i}@example.no"
    return (
        Record(
            RecordKey.of(Kind.CUSTOMER, cid),
            {"Name": name + (" (ny)" if changed else ""), "IsPerson": "false"},
            WHEN,
        ),
        Record(RecordKey.of(Kind.ORGANIZATION, oid), {"name": name}, WHEN),
        Record(
            RecordKey.of(Kind.CONTACT_PERSON, pid), {"emailAddress": email, "partyId": cid}, WHEN
        ),
        Record(
            RecordKey.of(Kind.USER, uid),
            {"email": f"ny{i}@example.no" if changed else email, "organization_id": oid},
            WHEN,
        ),
    )


def build(n: int, changed_share: float = 0.01) -> tuple[Snapshot, Snapshot, SyncState]:
    """N/2 linked customer–organization pairs and N/2 linked contact–user pairs per side."""
    half = n // 2
    changed = int(n * changed_share) // 2
    customers, orgs, persons, users = {}, {}, {}, {}
    org_links, user_links = [], []
    for i in range(half):
        customer, org, person, user = pair_records(i, i < changed)
        customers[customer.id], orgs[org.id] = customer, org
        persons[person.id], users[user.id] = person, user
        name, email = f"Kunde {i} AS", f"person{i}@example.no"
        org_links.append(Link(CUSTOMERS, customer.id, org.id, {"Name": name}))
        base = {"emailAddress": email, "partyId": customer.id}
        user_links.append(Link(CONTACT_PERSONS, person.id, user.id, base))
    po = Snapshot(
        System.POWEROFFICE,
        {Kind.CUSTOMER: customers, Kind.CONTACT_PERSON: persons},
        frozenset({Kind.CUSTOMER, Kind.CONTACT_PERSON}),
    )
    zd = Snapshot(
        System.ZENDESK,
        {Kind.ORGANIZATION: orgs, Kind.USER: users},
        frozenset({Kind.ORGANIZATION, Kind.USER}),
    )
    state = SyncState(
        links={CUSTOMERS: LinkTable.of(org_links), CONTACT_PERSONS: LinkTable.of(user_links)}
    )
    return po, zd, state


def naive_join(po: Snapshot, zd: Snapshot, state: SyncState) -> int:
    """The baseline: walk the links, look both records up, compare the raw values."""
    differ = 0
    customers, orgs = po.of_kind(Kind.CUSTOMER), zd.of_kind(Kind.ORGANIZATION)
    for link in state.table(CUSTOMERS):
        if customers[link.poweroffice_id].get("Name") != orgs[link.zendesk_id].get("name"):
            differ += 1
    persons, users = po.of_kind(Kind.CONTACT_PERSON), zd.of_kind(Kind.USER)
    for link in state.table(CONTACT_PERSONS):
        if persons[link.poweroffice_id].get("emailAddress") != users[link.zendesk_id].get("email"):
            differ += 1
    return differ


def measure(n: int) -> dict[str, float | int]:
    po, zd, state = build(n)
    start = time.perf_counter()
    plan = plan_changes(po, zd, state, DEFAULT_DATAFLOW, SyncPolicy())
    plan_s = time.perf_counter() - start
    start = time.perf_counter()
    differ = naive_join(po, zd, state)
    naive_s = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records_per_side": n,
        "plan_s": round(plan_s, 3),
        "naive_s": round(naive_s, 3),
        "writes": len(plan.writes()),
        "naive_differ": differ,
        "peak_rss_mib": round(peak_mib),
    }


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        print(json.dumps(measure(int(argv[1]))))
        return
    sizes = [int(a) for a in argv] or [10_000, 100_000, 1_000_000]
    print(f"{'records/side':>12} {'plan s':>8} {'naive s':>8} {'writes':>7} {'peak RSS MiB':>12}")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True
        ).stdout
        r = json.loads(out)
        print(
            f"{r['records_per_side']:>12} {r['plan_s']:>8} {r['naive_s']:>8} "
            f"{r['writes']:>7} {r['peak_rss_mib']:>12}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
