"""How long the one JSON converter takes to shape a big run report (issue 11).

A first sync of 20,000 customers plans 60,000 items (a create, an update pointing a user at the
created organization, a link per customer); the report is shaped once for the run log and once
more when ``sync --json`` prints it. This times ``report_json`` and the JSON text of it, best of
five, at each size.

    python bench/report_json.py                 # 6,000 / 60,000 / 600,000 items
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from adapters.reportjson import report_json
from talkcore.engine import RunReport
from talkcore.plan import Create, FieldChange, NewLink, PendingId, Plan, PlanItem, Update
from talkcore.records import Kind, RecordKey

FLOW = "customers-organizations"


def first_sync_report(customers: int) -> RunReport:
    """The report of a first sync of ``customers``: three items per customer."""
    items: list[PlanItem] = []
    for n in range(customers):
        created = f"create:{FLOW}:{n}"
        items += [
            Create(
                created,
                FLOW,
                Kind.ORGANIZATION,
                RecordKey.of(Kind.CUSTOMER, n),
                f"poweroffice:customer:{n}",
                {"name": f"Customer {n} AS"},
            ),
            Update(
                f"update:contact-persons-users:zendesk:user:{n}",
                "contact-persons-users",
                RecordKey.of(Kind.USER, n),
                str(n),
                (
                    FieldChange(
                        "organization_id",
                        PendingId(created),
                        "poweroffice_changed",
                        None,
                        str(n),
                        None,
                        "partyId",
                    ),
                ),
            ),
            NewLink(
                f"link:contact-persons-users:{n}",
                "contact-persons-users",
                RecordKey.of(Kind.CONTACT_PERSON, n),
                RecordKey.of(Kind.USER, n),
                "identity",
                {"emailAddress": f"person{n}@example.no"},
                f"person{n}@example.no",
            ),
        ]
    now = datetime.now(UTC)
    return RunReport("bench", now, now, full=True, dry_run=False, plan=Plan(tuple(items)))


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings of ``work``, in seconds."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="*", default=[2_000, 20_000, 200_000])
    args = parser.parse_args()
    print("| items | report_json | + JSON text |")
    print("|---:|---:|---:|")
    for customers in args.customers:
        report = first_sync_report(customers)
        shaped = best_of(5, lambda report=report: report_json(report))
        text = best_of(
            5,
            lambda report=report: json.dumps(report_json(report), ensure_ascii=False),
        )
        print(f"| {len(report.plan):,} | {shaped:.3f} s | {text:.3f} s |")


if __name__ == "__main__":
    main()
