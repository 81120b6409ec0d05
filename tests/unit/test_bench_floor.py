"""The request floor's formula (bench/floor.py), checked on the benchmark's shape and by law."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import floor as fl  # the bench folder is on the path above, not a package

SHAPE = {
    "customers": 10_000,
    "contact_persons": 30_000,
    "departments": 500,
    "suppliers": 0,
    "users": 30_001,
    "organizations": 0,
}
WRITES = {
    ("zendesk", "create", "organization"): 10_500,
    ("zendesk", "update", "user"): 30_000,
}


def test_the_benchmarks_first_sync() -> None:
    plan = fl.floor(SHAPE, WRITES)
    assert plan == {
        "poweroffice POST /OAuth/Token": 1,
        "poweroffice GET /v2/Customers": 1,
        "poweroffice GET /v2/ContactPersons": 2,
        "poweroffice GET /v2/Departments": 1,
        "poweroffice GET /v2/Suppliers": 1,  # empty, still one call
        "zendesk GET /api/v2/users": 301,
        "zendesk GET /api/v2/organizations": 1,
        "zendesk POST /api/v2/organizations/create_many": 105,
        "zendesk PUT /api/v2/users/update_many": 300,
        "zendesk GET /api/v2/job_statuses/show_many": 14,  # 405 jobs in waves of 30
    }
    seconds = fl.least_seconds(plan)
    assert math.isclose(seconds["zendesk"], 721 / 700 * 60)
    assert math.isclose(seconds["poweroffice"], 0.6)


def test_the_export_plan_is_fewer_requests_but_slower() -> None:
    best = fl.cheapest(SHAPE, WRITES)
    assert best["requests"]["zendesk GET /api/v2/incremental/users/cursor"] == 31
    assert sum(best["requests"].values()) == sum(best["time"].values()) - 270
    # 31 export pages at 10 a minute outlast 721 requests at 700 a minute.
    assert math.isclose(fl.least_seconds(best["requests"])["zendesk"], 31 / 10 * 60)
    assert "zendesk GET /api/v2/users" in best["time"]


def test_deletes_go_100_a_destroy_many_and_are_polled() -> None:
    plan = fl.floor(SHAPE, {("zendesk", "delete", "organization"): 250})
    assert plan["zendesk DELETE /api/v2/organizations/destroy_many"] == 3
    assert plan["zendesk GET /api/v2/job_statuses/show_many"] == 1


@given(st.integers(min_value=0, max_value=100_000))
def test_polls_cover_every_job_in_waves_no_larger_than_the_queue(jobs: int) -> None:
    polls = fl.job_polls(jobs)
    # Enough polls for every job to be seen, each wave within the queue and one show_many ...
    assert polls * min(fl.ZD_JOBS_QUEUED, fl.ZD_JOB_IDS) >= jobs
    # ... and not one more than that needs.
    assert (polls - 1) * min(fl.ZD_JOBS_QUEUED, fl.ZD_JOB_IDS) < jobs or polls == 0


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=1, max_value=10**5))
def test_pages_hold_every_record_and_cost_at_least_one_call(n: int, size: int) -> None:
    calls = fl.pages(n, size)
    assert calls >= 1 and calls * size >= n and (calls - 1) * size < max(n, 1)
