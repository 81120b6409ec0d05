"""The request floor: the fewest requests the documented APIs allow for a sync's work, and the
least time the documented rate limits allow for it (issue 13; derivation in bench/README.md,
"The floor").

Pure arithmetic over the work's sizes, so the benchmarks compute it from what they seeded and
what the run wrote, never from hard-coded totals. Every constant names its documented source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PO_PAGE = 20_000
"""PowerOffice ``ResourceParameters.MaxPageSize`` ("20 000 by default"; PageSize "Not allowed to
be larger than MaxPageSize"), in ../shared/fixtures/poweroffice-openapi/openapi.yaml."""
PO_PER_SECOND = 10
"""PowerOffice's gateway limit the benchmark enforces (api-notes: 10 requests a second)."""
ZD_CURSOR_PAGE = 100
"""Zendesk cursor pagination: ``page[size]`` at most 100 (developer.zendesk.com, Pagination)."""
ZD_EXPORT_PAGE = 1_000
"""Zendesk incremental exports: up to 1,000 items a page (Incremental Exports reference)."""
ZD_BULK = 100
"""Zendesk ``create_many`` / ``update_many`` / ``destroy_many``: up to 100 records a call."""
ZD_JOB_IDS = 100
"""Zendesk ``GET /job_statuses/show_many?ids=``: up to 100 job ids a call."""
ZD_JOBS_QUEUED = 30
"""Zendesk queues at most 30 background jobs per account (``TooManyJobs`` beyond)."""
ZD_PER_MINUTE = 700
"""Zendesk's account limit on the Enterprise plan (Rate limits: Team 200 ... Enterprise 700)."""
ZD_EXPORT_PER_MINUTE = 10
"""Zendesk incremental exports: "You can make up to 10 requests per minute to these endpoints"."""

PO_READS = {
    "customers": "Customers",
    "contact_persons": "ContactPersons",
    "departments": "Departments",
    "suppliers": "Suppliers",
}
USERS_BY = ("cursor", "export")
"""How the floor reads Zendesk users in full: cursor pages of 100 at the account limit, or the
cursor-based incremental export's pages of 1,000 at the export limit (10 a minute)."""

Write = tuple[str, str, str]
"""(system, op, kind) of a write, e.g. ``("zendesk", "create", "organization")``."""


def pages(n: int, size: int) -> int:
    """Calls to read ``n`` records in pages of ``size``: an empty collection still costs one."""
    return max(1, math.ceil(n / size))


def job_polls(jobs: int) -> int:
    """The fewest status polls ``jobs`` bulk jobs need: each job must be seen finished once (its
    results carry the created ids and the failures), at most 30 can be queued at a time, so the
    jobs go in waves of 30 and every wave needs at least one ``show_many`` (whose 100 ids hold a
    whole wave). Assumes each job is finished by its first poll, as the benchmark's sandbox does."""
    if jobs <= 0:
        return 0
    return max(math.ceil(jobs / ZD_JOBS_QUEUED), math.ceil(jobs / ZD_JOB_IDS))


def floor(
    counts: Mapping[str, int], writes: Mapping[Write, int], *, users_by: str = "cursor"
) -> dict[str, int]:
    """The fewest requests per endpoint for a first sync of ``counts`` making ``writes``.

    One PowerOffice token; every PowerOffice collection in pages of 20,000; Zendesk users in
    cursor pages of 100 or (``users_by="export"``) export pages of 1,000, organizations in
    cursor pages; Zendesk creates, updates and deletes 100 a bulk call, with :func:`job_polls`
    polls; no read-back (the values sent and the jobs' results are known); one call per
    PowerOffice write (its API has no bulk writes). Endpoint names are the sandboxes' counters'.
    """
    if users_by not in USERS_BY:
        raise ValueError(f"users_by must be one of {USERS_BY}, not {users_by!r}")
    out = {"poweroffice POST /OAuth/Token": 1}
    for key, path in PO_READS.items():
        out[f"poweroffice GET /v2/{path}"] = pages(counts[key], PO_PAGE)
    if users_by == "cursor":
        out["zendesk GET /api/v2/users"] = pages(counts["users"], ZD_CURSOR_PAGE)
    else:
        out["zendesk GET /api/v2/incremental/users/cursor"] = pages(counts["users"], ZD_EXPORT_PAGE)
    out["zendesk GET /api/v2/organizations"] = pages(counts["organizations"], ZD_CURSOR_PAGE)
    jobs = 0
    for (system, op, kind), n in sorted(writes.items()):
        if n <= 0:
            continue
        if system == "zendesk":
            plural = "users" if kind == "user" else "organizations"
            verb = {"create": "POST", "update": "PUT", "delete": "DELETE"}[op]
            action = "destroy_many" if op == "delete" else f"{op}_many"
            name = f"zendesk {verb} /api/v2/{plural}/{action}"
            calls = math.ceil(n / ZD_BULK)
            out[name] = out.get(name, 0) + calls
            jobs += calls
        else:
            name = f"poweroffice {op} {kind} (one call each)"
            out[name] = out.get(name, 0) + n
    if jobs:
        out["zendesk GET /api/v2/job_statuses/show_many"] = job_polls(jobs)
    return out


def least_seconds(requests: Mapping[str, int]) -> dict[str, float]:
    """The least time the limits allow for ``requests`` (per endpoint), per system: Zendesk's
    account limit over all its requests and the exports' own over theirs (both must hold),
    PowerOffice's per second. The systems are independent, so a sync needs the larger."""
    zendesk = sum(n for name, n in requests.items() if name.startswith("zendesk"))
    exports = sum(n for name, n in requests.items() if "/incremental/" in name)
    poweroffice = sum(n for name, n in requests.items() if name.startswith("poweroffice"))
    return {
        "zendesk": 60.0 * max(zendesk / ZD_PER_MINUTE, exports / ZD_EXPORT_PER_MINUTE),
        "poweroffice": poweroffice / PO_PER_SECOND,
    }


def cheapest(counts: Mapping[str, int], writes: Mapping[Write, int]) -> dict[str, dict[str, int]]:
    """The floor for requests and the plan the floor for time takes, by name: ``requests`` is
    the plan of fewest requests, ``time`` the plan the limits allow to finish first (they differ
    when the export's 10 a minute outweighs its 10-fold larger pages)."""
    plans = {by: floor(counts, writes, users_by=by) for by in USERS_BY}
    fewest = min(plans.values(), key=lambda plan: sum(plan.values()))
    fastest = min(plans.values(), key=lambda plan: max(least_seconds(plan).values()))
    return {"requests": fewest, "time": fastest}
