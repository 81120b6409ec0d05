"""The Zendesk sandbox's behaviour: auth, cursor paging, uniqueness, jobs, identities,
soft deletes, incremental exports and the per-minute rate limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_support import zendesk_client

from adapters.sandbox import FakeClock, ZendeskSandbox
from adapters.sandbox.zendesk import EXPORT_RATE_LIMIT


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def zd(clock: FakeClock) -> ZendeskSandbox:
    return ZendeskSandbox(clock=clock, job_polls=2)


@pytest.fixture
def client(zd: ZendeskSandbox) -> httpx.Client:
    return zendesk_client(zd)


def test_auth_token_and_bearer(zd: ZendeskSandbox) -> None:
    assert zendesk_client(zd).get("/api/v2/users/me.json").json()["user"]["role"] == "admin"
    assert zendesk_client(zd, bearer=True).get("/api/v2/users/me").status_code == 200
    anonymous = httpx.Client(transport=httpx.WSGITransport(app=zd.app), base_url="http://z")
    assert anonymous.get("/api/v2/users").status_code == 401
    wrong = anonymous.get("/api/v2/users", auth=(f"{zd.credentials.email}/token", "nope"))
    assert wrong.status_code == 401
    password_style = anonymous.get(
        "/api/v2/users", auth=(zd.credentials.email, zd.credentials.api_token)
    )
    assert password_style.status_code == 401


def test_cursor_paging_walks_every_user_once(zd: ZendeskSandbox, client: httpx.Client) -> None:
    ids = {zd.add_user(name=f"Bruker {n}", email=f"b{n}@x.no")["id"] for n in range(7)}
    ids.add(zd.admin_id)
    seen: list[int] = []
    response = client.get("/api/v2/users.json", params={"page[size]": 3})
    pages = 1
    while True:
        body = response.json()
        seen.extend(u["id"] for u in body["users"])
        if not body["meta"]["has_more"]:
            break
        response = client.get(body["links"]["next"])
        pages += 1
    assert sorted(seen) == sorted(ids)
    assert pages == 3
    # As in real traffic, the last page still links on: only has_more says it is the last.
    assert body["links"]["next"] is not None
    beyond = client.get(body["links"]["next"]).json()
    assert (beyond["users"], beyond["meta"]["has_more"]) == ([], False)
    assert client.get("/api/v2/users", params={"page[size]": 101}).status_code == 400
    after = client.get("/api/v2/users", params={"page[size]": 2, "page[after]": "garbage"})
    assert after.status_code == 400


def test_deleted_users_are_soft_deleted(zd: ZendeskSandbox, client: httpx.Client) -> None:
    user = zd.add_user(name="Kari", email="kari@x.no")
    deleted = client.delete(f"/api/v2/users/{user['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["user"]["active"] is False
    assert deleted.json()["user"]["updated_at"] > user["updated_at"]
    listed = client.get("/api/v2/users", params={"page[size]": 100}).json()["users"]
    assert user["id"] not in {u["id"] for u in listed}
    assert client.get(f"/api/v2/users/{user['id']}").json()["user"]["active"] is False
    # Its address is free again.
    assert (
        client.post(
            "/api/v2/users", json={"user": {"name": "Kari 2", "email": "kari@x.no"}}
        ).status_code
        == 201
    )


@pytest.mark.parametrize("resource", ["user", "organization"])
def test_a_name_that_is_not_text_is_refused_not_a_crash(
    client: httpx.Client, resource: str
) -> None:
    for name in (5, ["Kari"], {"first": "Kari"}):
        sent = client.post(f"/api/v2/{resource}s", json={resource: {"name": name}})
        assert sent.status_code == 422, sent.text
        assert sent.json()["details"]["name"][0]["error"] in ("InvalidValue", "BlankValue")


def test_organization_names_unique_ignoring_case_and_spaces(client: httpx.Client) -> None:
    first = client.post("/api/v2/organizations", json={"organization": {"name": "Fjord AS"}})
    assert first.status_code == 201
    clash = client.post("/api/v2/organizations", json={"organization": {"name": "  fjord as "}})
    assert clash.status_code == 422
    body = clash.json()
    assert body["error"] == "RecordInvalid"
    assert body["details"]["name"][0]["error"] == "DuplicateValue"
    other = client.post(
        "/api/v2/organizations", json={"organization": {"name": "Annen AS", "external_id": "p:1"}}
    )
    assert other.status_code == 201
    renamed = client.put(
        f"/api/v2/organizations/{other.json()['organization']['id']}",
        json={"organization": {"name": "FJORD AS"}},
    )
    assert renamed.status_code == 422
    ext = client.post(
        "/api/v2/organizations", json={"organization": {"name": "Tredje", "external_id": "P:1"}}
    )
    assert ext.status_code == 422
    assert ext.json()["details"]["external_id"][0]["error"] == "DuplicateValue"
    found = client.get("/api/v2/organizations/search", params={"name": "fjord as"}).json()
    assert [o["name"] for o in found["organizations"]] == ["Fjord AS"]
    by_ext = client.get("/api/v2/organizations/search.json", params={"external_id": "p:1"}).json()
    assert [o["name"] for o in by_ext["organizations"]] == ["Annen AS"]
    org_id = first.json()["organization"]["id"]
    assert client.delete(f"/api/v2/organizations/{org_id}").status_code == 204
    names = [o["name"] for o in client.get("/api/v2/organizations").json()["organizations"]]
    assert names == ["Annen AS"]
    assert (
        client.post(
            "/api/v2/organizations", json={"organization": {"name": "Fjord AS"}}
        ).status_code
        == 201
    )


def test_user_emails_lower_cased_and_unique(client: httpx.Client) -> None:
    made = client.post("/api/v2/users", json={"user": {"name": "Ola", "email": "Ola@Fjord.NO"}})
    assert made.status_code == 201
    assert made.json()["user"]["email"] == "ola@fjord.no"
    clash = client.post("/api/v2/users", json={"user": {"name": "Ola 2", "email": "OLA@fjord.no"}})
    assert clash.status_code == 422
    assert clash.json()["details"]["email"][0]["error"] == "DuplicateValue"
    bad = client.post("/api/v2/users", json={"user": {"name": "X", "email": "ikke epost"}})
    assert bad.status_code == 422
    nameless = client.post("/api/v2/users", json={"user": {"email": "n@x.no"}})
    assert nameless.status_code == 422
    assert "name" in nameless.json()["details"]
    ext = client.post("/api/v2/users", json={"user": {"name": "A", "external_id": "k:1"}})
    assert ext.status_code == 201
    ext2 = client.post("/api/v2/users", json={"user": {"name": "B", "external_id": "K:1"}})
    assert ext2.status_code == 422


def test_updated_at_moves_on_each_write(zd: ZendeskSandbox, client: httpx.Client) -> None:
    user = zd.add_user(name="Kari")
    stamps = [user["updated_at"]]
    for name in ("Kari A", "Kari B"):
        response = client.put(f"/api/v2/users/{user['id']}", json={"user": {"name": name}})
        stamps.append(response.json()["user"]["updated_at"])
    assert stamps == sorted(set(stamps))


def test_bulk_job_completes_after_polls_with_per_item_results(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    zd.add_user(name="Finnes", email="finnes@x.no")
    submitted = client.post(
        "/api/v2/users/create_many.json",
        json={
            "users": [
                {"name": "Ny", "email": "ny@x.no"},
                {"name": "Dup", "email": "finnes@x.no"},
                {"name": "Uten navn"},
            ]
        },
    )
    assert submitted.status_code == 200
    job = submitted.json()["job_status"]
    assert job["status"] == "queued"
    assert job["results"] is None
    assert "ny@x.no" not in str(zd.dump()["users"])  # not applied before it completes
    first = client.get(f"/api/v2/job_statuses/{job['id']}.json").json()["job_status"]
    assert first["status"] == "working"
    done = client.get(f"/api/v2/job_statuses/{job['id']}").json()["job_status"]
    assert done["status"] == "completed"
    results = done["results"]
    assert [r["status"] for r in results] == ["Created", "Failed", "Created"]
    assert results[1]["index"] == 1
    assert results[1]["error"] == "DuplicateValue"
    assert "finnes@x.no" in results[1]["details"]
    shown = client.get("/api/v2/users/show_many", params={"ids": f"{results[0]['id']}"}).json()
    assert shown["users"][0]["email"] == "ny@x.no"


def test_show_many_job_statuses_polls_several_jobs_in_one_call(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    """``GET /job_statuses/show_many?ids=a,b`` answers ``{"job_statuses": [...]}`` (the shape
    of Zendesk's Show Many Job Statuses); each listed job counts a poll, as a single show does."""
    ids = [
        client.post(
            "/api/v2/organizations/create_many.json",
            json={"organizations": [{"name": f"Jobb {n} AS"}]},
        ).json()["job_status"]["id"]
        for n in range(3)
    ]
    query = {"ids": ",".join([*ids, "V3-unknown"])}
    first = client.get("/api/v2/job_statuses/show_many.json", params=query)
    assert first.status_code == 200
    assert [j["id"] for j in first.json()["job_statuses"]] == ids  # an unknown id is left out
    assert {j["status"] for j in first.json()["job_statuses"]} == {"working"}
    done = client.get("/api/v2/job_statuses/show_many", params=query).json()["job_statuses"]
    assert {j["status"] for j in done} == {"completed"}
    assert all(j["results"][0]["status"] == "Created" for j in done)
    assert client.get("/api/v2/job_statuses/show_many.json").status_code == 400
    too_many = client.get(
        "/api/v2/job_statuses/show_many.json", params={"ids": ",".join(["x"] * 101)}
    )
    assert (too_many.status_code, too_many.json()["error"]) == (400, "TooManyValues")


def test_bulk_limits_and_switch(zd: ZendeskSandbox, client: httpx.Client) -> None:
    many = {"users": [{"name": f"U{n}"} for n in range(101)]}
    too_many = client.post("/api/v2/users/create_many", json=many)
    assert too_many.status_code == 400
    assert too_many.json()["error"] == "TooManyValues"
    zd.bulk_users_enabled = False
    assert (
        client.post("/api/v2/users/create_many", json={"users": [{"name": "A"}]}).status_code == 403
    )
    assert (
        client.post("/api/v2/users/create_or_update_many", json={"users": [{"name": "A"}]})
    ).status_code == 403
    # The switch is about importing users in bulk: updating them in bulk is not behind it.
    assert client.put("/api/v2/users/update_many", json={"users": []}).status_code == 200
    orgs = client.post(
        "/api/v2/organizations/create_many", json={"organizations": [{"name": "A"}, {"name": "a "}]}
    )
    assert orgs.status_code == 200
    zd.settle_jobs()
    job = client.get(f"/api/v2/job_statuses/{orgs.json()['job_status']['id']}").json()
    assert [r["status"] for r in job["job_status"]["results"]] == ["Created", "Failed"]


def test_job_completes_after_seconds(clock: FakeClock) -> None:
    zd = ZendeskSandbox(clock=clock, job_polls=100, job_seconds=5)
    client = zendesk_client(zd)
    job = client.post(
        "/api/v2/organizations/create_many", json={"organizations": [{"name": "Tid AS"}]}
    ).json()["job_status"]
    assert client.get(f"/api/v2/job_statuses/{job['id']}").json()["job_status"]["status"] != (
        "completed"
    )
    clock.advance(5)
    assert [o["name"] for o in zd.dump()["organizations"]] == []
    client.get("/api/v2/organizations")  # any request settles due jobs
    assert [o["name"] for o in zd.dump()["organizations"]] == ["Tid AS"]


def test_identities_and_primary_email(zd: ZendeskSandbox, client: httpx.Client) -> None:
    user = zd.add_user(name="Kari", email="kari@gammel.no")
    base = f"/api/v2/users/{user['id']}"
    # A plain PUT of email adds a secondary address; the primary stays.
    put = client.put(base, json={"user": {"email": "kari@ny.no"}})
    assert put.status_code == 200
    assert put.json()["user"]["email"] == "kari@gammel.no"
    identities = client.get(f"{base}/identities.json").json()["identities"]
    assert [(i["value"], i["primary"]) for i in identities] == [
        ("kari@gammel.no", True),
        ("kari@ny.no", False),
    ]
    third = client.post(
        f"{base}/identities", json={"identity": {"type": "email", "value": "Kari@Tredje.no"}}
    )
    assert third.status_code == 201
    identity_id = third.json()["identity"]["id"]
    made = client.put(f"{base}/identities/{identity_id}/make_primary")
    assert made.status_code == 200
    assert [i["primary"] for i in made.json()["identities"]] == [False, False, True]
    assert client.get(base).json()["user"]["email"] == "kari@tredje.no"
    other = zd.add_user(name="Ola", email="ola@x.no")
    taken = client.post(
        f"/api/v2/users/{other['id']}/identities",
        json={"identity": {"type": "email", "value": "kari@ny.no"}},
    )
    assert taken.status_code == 422
    assert taken.json()["details"]["value"][0]["error"] == "DuplicateValue"
    # The user's own address again (a retried POST after a lost answer) is refused too.
    again = client.post(
        f"{base}/identities", json={"identity": {"type": "email", "value": "kari@tredje.no"}}
    )
    assert again.status_code == 422
    assert len(client.get(f"{base}/identities.json").json()["identities"]) == 3


def test_an_identity_mails_a_verification_link_unless_told_to_skip_it(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    user = zd.add_user(name="Kari", email="kari@gammel.no")
    base = f"/api/v2/users/{user['id']}/identities"
    quiet = {"type": "email", "value": "kari@stille.no", "skip_verify_email": True}
    assert client.post(base, json={"identity": quiet}).status_code == 201
    assert zd.verification_mails == []
    loud = {"type": "email", "value": "kari@hoyt.no"}
    assert client.post(base, json={"identity": loud}).status_code == 201
    assert zd.verification_mails == [(user["id"], "kari@hoyt.no")]


def test_incremental_user_export_sees_changes_and_deletes(
    zd: ZendeskSandbox, client: httpx.Client, clock: FakeClock
) -> None:
    start = int(clock()) - 120
    users = [zd.add_user(name=f"U{n}", email=f"u{n}@x.no") for n in range(3)]
    first = client.get("/api/v2/incremental/users/cursor.json", params={"start_time": start})
    body = first.json()
    assert body["end_of_stream"] is True
    assert len(body["users"]) == 4  # the admin and three users
    clock.advance(30)
    client.delete(f"/api/v2/users/{users[1]['id']}")
    resumed = client.get(
        "/api/v2/incremental/users/cursor", params={"cursor": body["after_cursor"]}
    )
    changed = resumed.json()["users"]
    assert [(u["id"], u["active"]) for u in changed] == [(users[1]["id"], False)]
    quiet = client.get(resumed.json()["after_url"]).json()
    assert quiet["users"] == []
    assert quiet["end_of_stream"] is True
    too_recent = client.get(
        "/api/v2/incremental/users/cursor", params={"start_time": int(clock()) - 10}
    )
    assert too_recent.status_code == 400


def test_incremental_organization_export_by_time(
    zd: ZendeskSandbox, client: httpx.Client, clock: FakeClock
) -> None:
    start = int(clock()) - 120
    for n in range(3):
        zd.add_organization(name=f"Org {n}")
        clock.advance(1)
    clock.advance(120)  # start_time must be over a minute in the past, next pages' too
    page = client.get(
        "/api/v2/incremental/organizations.json", params={"start_time": start, "per_page": 2}
    ).json()
    assert [o["name"] for o in page["organizations"]] == ["Org 0", "Org 1"]
    assert page["end_of_stream"] is False
    rest = client.get(page["next_page"]).json()
    # Time-based pages may repeat the boundary record; ids dedupe them.
    assert {o["name"] for o in rest["organizations"]} == {"Org 1", "Org 2"}
    assert rest["end_of_stream"] is True
    assert rest["end_time"] >= page["end_time"]


def test_time_export_moves_past_a_second_holding_more_than_a_page(
    zd: ZendeskSandbox, client: httpx.Client, clock: FakeClock
) -> None:
    """Records sharing a second all go on one page, even past ``per_page``; a page that would
    hold nothing but its own start second (served whole by the page before) goes on into the
    next second, so ``end_time`` always moves on while ``end_of_stream`` is false. Bulk jobs
    finished by one batched status poll stamp hundreds of records with the same second."""
    start = int(clock())
    zd.add_organization(name="Org A")
    clock.advance(1)
    for name in ("B", "C", "D"):  # three in one second, over a page of two
        zd.add_organization(name=f"Org {name}")
    clock.advance(1)
    zd.add_organization(name="Org E")
    clock.advance(120)
    first = client.get(
        "/api/v2/incremental/organizations.json", params={"start_time": start, "per_page": 2}
    ).json()
    assert [o["name"] for o in first["organizations"]] == ["Org A", "Org B", "Org C", "Org D"]
    assert (first["end_time"], first["end_of_stream"]) == (start + 1, False)
    second = client.get(first["next_page"]).json()
    assert second["end_time"] > first["end_time"]
    assert [o["name"] for o in second["organizations"]] == ["Org B", "Org C", "Org D", "Org E"]
    assert second["end_of_stream"] is True


def test_rate_limit_per_minute_with_headers(clock: FakeClock) -> None:
    clock.now = 1_700_000_000.0 - 1_700_000_000.0 % 60  # the start of a minute
    zd = ZendeskSandbox(clock=clock, rate_limit=5)
    client = zendesk_client(zd)
    answers = [client.get("/api/v2/users/me") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert answers[0].headers["X-Rate-Limit"] == "5"
    # The names the current docs give, and the 2023 names, say the same.
    pairs = (("ratelimit-limit", "ratelimit-remaining"), ("rate-limit", "rate-limit-remaining"))
    for limit, remaining in pairs:
        counts = [(a.headers[limit], a.headers[remaining]) for a in answers[:2]]
        assert counts == [("5", "4"), ("5", "3")]
    assert answers[0].headers["ratelimit-reset"] == answers[0].headers["rate-limit-reset"] == "60"
    assert answers[5].headers["Retry-After"] == "60"
    clock.advance(45)
    assert client.get("/api/v2/users/me").headers["Retry-After"] == "15"
    clock.advance(15)
    assert client.get("/api/v2/users/me").status_code == 200


def test_rate_limit_off_by_default(client: httpx.Client) -> None:
    assert {client.get("/api/v2/users/me").status_code for _ in range(50)} == {200}


def test_search_and_show_many(zd: ZendeskSandbox, client: httpx.Client) -> None:
    a = zd.add_user(name="Kari Nordmann", email="kari@x.no", external_id="poweroffice:cp:1")
    zd.add_user(name="Ola", email="ola@x.no")
    by_email = client.get("/api/v2/users/search", params={"query": "email:KARI@x.no"}).json()
    assert [u["id"] for u in by_email["users"]] == [a["id"]]
    by_ext = client.get("/api/v2/users/show_many", params={"external_ids": "poweroffice:cp:1"})
    assert [u["id"] for u in by_ext.json()["users"]] == [a["id"]]
    upsert = client.post(
        "/api/v2/users/create_or_update", json={"user": {"email": "kari@x.no", "name": "Kari N."}}
    )
    assert upsert.status_code == 200
    assert upsert.json()["user"]["id"] == a["id"]
    new = client.post(
        "/api/v2/users/create_or_update", json={"user": {"email": "ny@x.no", "name": "Ny"}}
    )
    assert new.status_code == 201


# -- the incremental exports: admins only, their own budget, a stalled export ----------------

EXPORTS = (
    ("/api/v2/incremental/organizations.json", {"start_time": 0}),
    ("/api/v2/incremental/users/cursor.json", {"start_time": 0}),
    ("/api/v2/incremental/users.json", {"start_time": 0}),
)


def export(client: httpx.Client, n: int) -> httpx.Response:
    """One request to export number ``n`` of EXPORTS."""
    path, params = EXPORTS[n]
    return client.get(path, params=params)


def test_an_agent_caller_is_refused_the_exports_and_nothing_else(clock: FakeClock) -> None:
    zd = ZendeskSandbox(clock=clock, caller_role="agent")
    client = zendesk_client(zd)
    assert client.get("/api/v2/users/me").json()["user"]["role"] == "agent"
    for n in range(len(EXPORTS)):
        refused = export(client, n)
        assert refused.status_code == 403, EXPORTS[n]
        assert refused.json()["error"] == "Forbidden"
    assert client.get("/api/v2/users", params={"page[size]": 10}).status_code == 200
    assert client.get("/api/v2/organizations", params={"page[size]": 10}).status_code == 200
    with pytest.raises(ValueError, match="agent or an admin"):
        ZendeskSandbox(caller_role="end-user")


def test_an_admin_demoted_to_agent_loses_the_exports(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    assert export(client, 0).status_code == 200
    zd.users[zd.admin_id]["role"] = "agent"
    assert export(client, 0).status_code == 403


def test_exports_have_their_own_budget_of_ten_a_minute(clock: FakeClock) -> None:
    clock.now = 1_700_000_000.0 - 1_700_000_000.0 % 60 + 15  # 15 s into a minute
    zd = ZendeskSandbox(clock=clock, export_rate_limit=EXPORT_RATE_LIMIT)
    client = zendesk_client(zd)
    answers = [export(client, n % 3) for n in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert answers[10].headers["Retry-After"] == "45"
    assert "incremental export" in answers[10].json()["description"]
    # Other endpoints do not spend from it (and are not refused by it).
    assert client.get("/api/v2/users/me").status_code == 200
    clock.advance(45)
    assert export(client, 0).status_code == 200


def test_the_export_budget_is_off_unless_asked_for(client: httpx.Client) -> None:
    assert {export(client, 0).status_code for _ in range(25)} == {200}


def test_a_stalled_organization_export_stops_advancing(
    zd: ZendeskSandbox, client: httpx.Client, clock: FakeClock
) -> None:
    for n in range(3):
        zd.add_organization(name=f"Org {n}")
        clock.advance(10)
    clock.advance(120)
    start = int(clock()) - 600
    zd.stall_organization_export = True
    page = client.get("/api/v2/incremental/organizations.json", params={"start_time": start})
    body = page.json()
    assert (body["end_time"], body["end_of_stream"]) == (start, False)
    again = client.get(body["next_page"]).json()
    assert (again["end_time"], again["end_of_stream"]) == (start, False)
    zd.stall_organization_export = False
    healed = client.get(body["next_page"]).json()
    assert healed["end_of_stream"] is True
    assert len(healed["organizations"]) == 3


def test_destroy_many_deletes_by_ids_in_a_job(zd: ZendeskSandbox, client: httpx.Client) -> None:
    orgs = [zd.add_organization(name=f"Slett {n} AS")["id"] for n in range(3)]
    member = zd.add_user(name="Medlem", email="m@x.no", organization_id=orgs[0])
    gone = zd.add_user(name="Borte", email="borte@x.no")
    ids = f"{orgs[0]},{orgs[1]},999"
    job = client.delete("/api/v2/organizations/destroy_many.json", params={"ids": ids})
    assert job.status_code == 200
    status = job.json()["job_status"]
    assert status["status"] == "queued"
    assert len(zd.dump()["organizations"]) == 3  # nothing happens before the job runs
    zd.settle_jobs()
    done = client.get(f"/api/v2/job_statuses/{status['id']}").json()["job_status"]
    by_id = {r["id"]: r for r in done["results"]}
    assert by_id[orgs[0]]["status"] == by_id[orgs[1]]["status"] == "Deleted"
    assert by_id[999]["error"] == "RecordNotFound"
    assert [o["id"] for o in zd.dump()["organizations"]] == [orgs[2]]
    assert zd.users[member["id"]]["organization_id"] is None
    users = client.delete("/api/v2/users/destroy_many", params={"ids": str(gone["id"])})
    zd.settle_jobs()
    assert users.status_code == 200
    assert zd.users[gone["id"]]["active"] is False  # a user is soft-deleted, as by DELETE
    over = ",".join(str(n) for n in range(1, 102))
    assert client.delete("/api/v2/users/destroy_many", params={"ids": over}).status_code == 400
    assert client.delete("/api/v2/users/destroy_many", params={"ids": "a,b"}).status_code == 400


def test_writes_forbidden_answers_403_to_every_write_of_that_kind(zd: ZendeskSandbox) -> None:
    zd.writes_forbidden = frozenset({"organizations"})
    client = zendesk_client(zd)
    org = zd.add_organization(name="Låst AS")
    body = {"organizations": [{"id": org["id"], "name": "Ny AS"}]}
    refused = client.put("/api/v2/organizations/update_many.json", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"
    assert (
        client.put(f"/api/v2/organizations/{org['id']}", json={"organization": {}}).status_code
        == 403
    )
    assert client.get(f"/api/v2/organizations/{org['id']}").status_code == 200
    assert client.post("/api/v2/users", json={"user": {"name": "Fri"}}).status_code == 201


def test_a_user_created_with_an_email_is_mailed_unless_told_to_skip_it(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    zd.add_user(name="Seeded", email="seeded@x.no")  # data that was there before: no mail
    quiet = {"name": "Stille", "email": "stille@x.no", "skip_verify_email": True}
    assert client.post("/api/v2/users", json={"user": quiet}).status_code == 201
    assert client.post("/api/v2/users", json={"user": {"name": "Uten adresse"}}).status_code == 201
    assert zd.verification_mails == []
    loud = client.post("/api/v2/users", json={"user": {"name": "Høy", "email": "hoy@x.no"}})
    assert zd.verification_mails == [(loud.json()["user"]["id"], "hoy@x.no")]
    # A plain PUT of email adds an identity with no documented way to skip verifying it.
    put = client.put(
        f"/api/v2/users/{loud.json()['user']['id']}", json={"user": {"email": "b@x.no"}}
    )
    assert put.status_code == 200
    assert zd.verification_mails[-1] == (loud.json()["user"]["id"], "b@x.no")


def test_deleting_a_secondary_identity_frees_the_address(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    kari = zd.add_user(name="Kari", email="kari@x.no")
    old = zd.add_identity(kari["id"], "kari@gammel.no")
    ola = zd.add_user(name="Ola", email="ola@x.no")
    ola_identities = f"/api/v2/users/{ola['id']}/identities"
    wanted = {"identity": {"type": "email", "value": "kari@gammel.no", "skip_verify_email": True}}
    taken = client.post(ola_identities, json=wanted)
    assert taken.status_code == 422
    detail = taken.json()["details"]["value"][0]
    assert detail["error"] == "DuplicateValue"
    assert detail["description"] == "Value: kari@gammel.no is already being used by another user"
    primary = [i for i in zd.dump()["identities"] if i["user_id"] == kari["id"] and i["primary"]]
    kari_identities = f"/api/v2/users/{kari['id']}/identities"
    assert client.delete(f"{kari_identities}/{primary[0]['id']}").status_code == 422
    assert client.delete(f"{kari_identities}/{old['id']}.json").status_code == 204
    assert client.delete(f"{kari_identities}/{old['id']}.json").status_code == 404
    assert client.post(ola_identities, json=wanted).status_code == 201


def memberships(client: httpx.Client, user_id: int) -> list[tuple[int, bool]]:
    """A user's memberships as (organization id, default), as the API lists them."""
    body = client.get(f"/api/v2/users/{user_id}/organization_memberships.json").json()
    return [(m["organization_id"], m["default"]) for m in body["organization_memberships"]]


def test_organization_id_is_the_default_membership_and_writing_it_keeps_the_others(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    own, other, third = (zd.add_organization(name=f"Org {n}")["id"] for n in range(3))
    user = zd.add_user(name="Kari", email="kari@x.no", organization_id=own)
    assert memberships(client, user["id"]) == [(own, True)]
    zd.add_membership(user["id"], other)
    assert memberships(client, user["id"]) == [(own, True), (other, False)]
    put = client.put(f"/api/v2/users/{user['id']}", json={"user": {"organization_id": third}})
    assert put.json()["user"]["organization_id"] == third
    # The reading of Users' organization_id this sandbox takes: the user joins the organization,
    # which becomes the default; the memberships it had stay.
    assert memberships(client, user["id"]) == [(own, False), (other, False), (third, True)]


def test_memberships_are_added_made_default_and_removed(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    own, other = (zd.add_organization(name=f"Org {n}")["id"] for n in range(2))
    user = zd.add_user(name="Kari", email="kari@x.no", organization_id=own)
    body = {"organization_membership": {"user_id": user["id"], "organization_id": other}}
    made = client.post("/api/v2/organization_memberships.json", json=body)
    assert made.status_code == 201
    membership = made.json()["organization_membership"]
    assert (membership["organization_id"], membership["default"]) == (other, False)
    assert membership["organization_name"] == "Org 1"
    again = client.post("/api/v2/organization_memberships", json=body)
    assert again.status_code == 422
    assert again.json()["details"]["user_id"][0]["error"] == "DuplicateValue"
    base = f"/api/v2/users/{user['id']}/organization_memberships/{membership['id']}"
    listed = client.put(f"{base}/make_default.json").json()["organization_memberships"]
    assert [(m["organization_id"], m["default"]) for m in listed] == [(own, False), (other, True)]
    shown = client.get(f"/api/v2/users/{user['id']}").json()["user"]
    assert shown["organization_id"] == other
    assert shown["updated_at"] > user["updated_at"]
    assert client.delete(f"/api/v2/organization_memberships/{membership['id']}").status_code == 204
    # The default gone, the one left takes its place.
    assert memberships(client, user["id"]) == [(own, True)]
    assert client.get(f"/api/v2/users/{user['id']}").json()["user"]["organization_id"] == own
    assert client.delete(f"{base}.json").status_code == 404
    missing = {"organization_membership": {"user_id": user["id"], "organization_id": 1}}
    assert client.post("/api/v2/organization_memberships", json=missing).status_code == 422


def test_deleting_an_organization_ends_its_memberships(
    zd: ZendeskSandbox, client: httpx.Client
) -> None:
    own, other = (zd.add_organization(name=f"Org {n}")["id"] for n in range(2))
    user = zd.add_user(name="Kari", email="kari@x.no", organization_id=own)
    zd.add_membership(user["id"], other)
    assert client.delete(f"/api/v2/organizations/{own}").status_code == 204
    assert memberships(client, user["id"]) == [(other, True)]
    assert zd.users[user["id"]]["organization_id"] == other


def test_an_account_with_one_organization_per_user(clock: FakeClock) -> None:
    zd = ZendeskSandbox(clock=clock, multiple_organizations=False)
    client = zendesk_client(zd)
    own, other = (zd.add_organization(name=f"Org {n}")["id"] for n in range(2))
    user = zd.add_user(name="Kari", email="kari@x.no", organization_id=own)
    body = {"organization_membership": {"user_id": user["id"], "organization_id": other}}
    refused = client.post("/api/v2/organization_memberships", json=body)
    assert refused.status_code == 422
    assert "organization_id" in refused.json()["details"]
    client.put(f"/api/v2/users/{user['id']}", json={"user": {"organization_id": other}})
    assert memberships(client, user["id"]) == [(other, True)]


# -- the resource tables' law ------------------------------------------------------------------

_VALUES = st.sampled_from(["Nord", "nord ", "Sør", "x1", "X1", "", None])
_WRITES = st.lists(
    st.tuples(
        st.sampled_from(["users", "organizations"]),
        st.sampled_from(["POST", "PUT", "DELETE"]),
        st.integers(0, 3),  # which stored record a PUT or DELETE aims at
        st.fixed_dictionaries({}, optional={"name": _VALUES, "external_id": _VALUES}),
    ),
    max_size=25,
)


@settings(max_examples=60)
@given(writes=_WRITES)
def test_unique_indexes_hold_exactly_the_live_records_values(
    writes: list[tuple[str, str, int, dict[str, Any]]],
) -> None:
    """Whatever is created, renamed, re-keyed or deleted (and whatever is refused on the way),
    each unique field is held by exactly the live records that carry a value for it: no two
    share one, and a deleted record's values are free for others."""
    zd = ZendeskSandbox(clock=FakeClock())
    client = zendesk_client(zd)
    for plural, method, pick, fields in writes:
        singular = plural[:-1]
        ids = sorted(zd.users if plural == "users" else zd.organizations)
        url = f"/api/v2/{plural}.json"
        if method != "POST":
            url = f"/api/v2/{plural}/{ids[pick % len(ids)] if ids else 1}.json"
        response = client.request(method, url, json={singular: fields})
        assert response.status_code in (200, 201, 204, 404, 422)
    for table in (zd._user_table, zd._org_table):
        live = [r for r in table.rows.values() if r.get("active", True)]
        for unique in table.unique:
            held = [r for r in live if r[unique.field] is not None]
            expected = {unique.key(r[unique.field]): int(r["id"]) for r in held}
            assert table.index[unique.field] == expected, (table.plural, unique.field)
            assert len(expected) == len(held), (table.plural, unique.field)
