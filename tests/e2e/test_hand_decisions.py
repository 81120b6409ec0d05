"""A person's decisions last (dataflow decision 10), through the real CLI against the sandboxes.

- ``ambiguities link`` accepts only the ambiguity's current candidates (either id form), shows
  the writes, wants confirmation (``--yes`` without a terminal) and refuses everything else;
  afterwards ``ambiguities list`` and ``plan`` agree.
- ``links unlink`` lasts through ``sync --full`` until ``links relink``; ``links list`` and
  ``status`` show the pair kept apart.
- a resolved conflict stays resolved until either side moves again; every decision is recorded
  with who and when, and listed by ``talksync decisions``.
- a wrong id or a wrong case gets a pointer to the right form.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import _check, _patch, _poweroffice, _zendesk, sandboxes, talksync

from adapters.sandbox.server import RunningSandboxes

pytestmark = pytest.mark.e2e

CONTACTS = "contact-persons-users"
CUSTOMERS = "customers-organizations"
SIZE = 60
SEED = 3  # this seed has contact persons sharing one user's e-mail


def ok(running: RunningSandboxes, state: Path, *args: str, code: int = 0) -> Any:
    result = talksync(running.env(), state, *args)
    assert result.returncode == code, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result


def as_json(running: RunningSandboxes, state: Path, *args: str) -> Any:
    return json.loads(ok(running, state, *args, "--json").stdout)


def links(running: RunningSandboxes, state: Path, flow: str) -> list[tuple[str, str, str]]:
    rows = as_json(running, state, "links", "list", "--flow", flow)
    return sorted((r["poweroffice_id"], r["zendesk_id"], r["state"]) for r in rows)


def planned_ambiguities(running: RunningSandboxes, state: Path) -> list[dict[str, Any]]:
    items = as_json(running, state, "plan")["items"]
    return [item for item in items if item["type"] == "ambiguity"]


def organization_name(running: RunningSandboxes, zd_id: str) -> str:
    orgs = running.zendesk.dump()["organizations"]
    return str(next(o["name"] for o in orgs if str(o["id"]) == zd_id))


def open_conflicts(run: Any, key: str) -> list[dict[str, Any]]:
    return [c for c in json.loads(run("conflicts", "list", "--json").stdout) if c["key"] == key]


def first_ambiguity(running: RunningSandboxes, state: Path) -> dict[str, Any]:
    found = [a for a in as_json(running, state, "ambiguities", "list") if a["flow"] == CONTACTS]
    assert found, "the seed must give an ambiguity in the contact persons flow"
    return dict(found[0])


def test_linking_an_ambiguity_takes_only_its_candidates_and_list_and_plan_agree(
    tmp_path: Path,
) -> None:
    state = tmp_path / "talksync.db"
    with sandboxes(size=SIZE, seed=SEED) as running:
        ok(running, state, "sync")
        amb = first_ambiguity(running, state)
        po_keys = [c for c in amb["candidates"] if c.startswith("poweroffice:")]
        zd_keys = [c for c in amb["candidates"] if c.startswith("zendesk:")]
        po_key, zd_key = po_keys[0], zd_keys[0]
        po_id, zd_id = po_key.rsplit(":", 1)[1], zd_key.rsplit(":", 1)[1]
        outsider = next(
            str(u["id"]) for u in running.zendesk.dump()["users"] if str(u["id"]) != zd_id
        )
        before = links(running, state, CONTACTS)

        refused = ok(
            running, state, "ambiguities", "link", CONTACTS, po_id, outsider, "--yes", code=2
        )
        assert f"zendesk:user:{outsider} is not a candidate" in refused.stderr
        assert zd_key in refused.stderr  # the message names the candidates
        missing = ok(
            running, state, "ambiguities", "link", CONTACTS, "999999", zd_id, "--yes", code=2
        )
        assert "is not a candidate" in missing.stderr
        wrong_side = ok(running, state, "ambiguities", "link", CONTACTS, zd_key, zd_id, code=2)
        assert "is not a poweroffice contact person" in wrong_side.stderr
        unconfirmed = ok(running, state, "ambiguities", "link", CONTACTS, po_key, zd_key, code=2)
        assert "confirm on a terminal, or add --yes" in unconfirmed.stderr
        assert "The next sync" in unconfirmed.stdout  # the writes were shown before asking
        assert links(running, state, CONTACTS) == before  # nothing was kept

        done = ok(running, state, "ambiguities", "link", CONTACTS, po_key, zd_key, "--yes")
        assert f"Link {po_key}" in done.stdout
        assert (po_id, zd_id, "linked") in links(running, state, CONTACTS)  # plain ids stored
        listed = as_json(running, state, "ambiguities", "list")
        assert listed == planned_ambiguities(running, state)

        ok(running, state, "sync")
        after = as_json(running, state, "plan")
        assert not [i for i in after["items"] if i["type"] in ("create", "update", "delete")]
        assert (po_id, zd_id, "linked") in links(running, state, CONTACTS)


def test_an_unlinked_pair_stays_apart_through_a_full_sync_until_relinked(tmp_path: Path) -> None:
    state = tmp_path / "talksync.db"
    with sandboxes(size=SIZE, seed=SEED) as running:
        ok(running, state, "sync")
        po_id, zd_id, _ = links(running, state, CUSTOMERS)[0]
        organizations = len(running.zendesk.dump()["organizations"])

        wrong_side = ok(running, state, "links", "unlink", CUSTOMERS, zd_id, code=2)
        assert f"`talksync links unlink {CUSTOMERS} {po_id}`" in wrong_side.stderr
        wrong_flow = ok(running, state, "links", "unlink", CUSTOMERS.upper(), po_id, code=2)
        assert f"did you mean {CUSTOMERS!r}" in wrong_flow.stderr
        said = ok(running, state, "links", "unlink", CUSTOMERS, po_id)
        assert f"talksync links relink {CUSTOMERS} {po_id}" in said.stdout
        for _ in range(2):
            ok(running, state, "sync", "--full")
            assert (po_id, zd_id, "kept_apart") in links(running, state, CUSTOMERS)
            assert (po_id, zd_id, "linked") not in links(running, state, CUSTOMERS)
        assert len(running.zendesk.dump()["organizations"]) == organizations  # no second org
        status = as_json(running, state, "status")
        assert {"flow": CUSTOMERS, "poweroffice_id": po_id, "zendesk_id": zd_id} in status[
            "kept_apart"
        ]
        assert "kept apart" in ok(running, state, "links", "list").stdout

        ok(running, state, "links", "relink", CUSTOMERS, po_id)
        ok(running, state, "sync")
        assert (po_id, zd_id, "linked") in links(running, state, CUSTOMERS)
        assert as_json(running, state, "status")["kept_apart"] == []

        trail = as_json(running, state, "decisions")
        assert [d["action"] for d in trail] == ["relink", "unlink"]  # newest first
        assert {d["who"] for d in trail} == {getpass.getuser()}
        assert all(d["when"] for d in trail)


def test_a_resolved_conflict_stays_resolved_until_a_side_moves_again(tmp_path: Path) -> None:
    state = tmp_path / "talksync.db"
    config = tmp_path / "manual.toml"
    config.write_text(f'[flows.{CUSTOMERS}]\nconflict = "manual"\n', encoding="utf-8")
    with sandboxes(size=SIZE, seed=SEED) as running:

        def run(*args: str, code: int = 0) -> Any:
            return ok(running, state, "--config", str(config), *args, code=code)

        run("sync")
        po_id, zd_id, _ = links(running, state, CUSTOMERS)[0]
        with _zendesk(running) as zd, _poweroffice(running) as po:
            _patch(po, f"/Customers/{po_id}", "Name", "Navn fra PowerOffice AS")
            _check(zd.put(f"/organizations/{zd_id}.json", json={"organization": {"name": "ZD AS"}}))
        run("sync")
        key = f"{CUSTOMERS}/{po_id}/Name"
        assert key in run("conflicts", "list").stdout

        wrong_case = run(
            "conflicts", "resolve", key.replace("/Name", "/name"), "--take", "zendesk", code=2
        )
        assert f"did you mean {key!r}" in wrong_case.stderr
        run("conflicts", "resolve", key, "--take", "zendesk")
        # PowerOffice moves again before the pick is applied: the pick lapses, the conflict
        # is held with the new value, and nothing is written over it.
        with _poweroffice(running) as po:
            _patch(po, f"/Customers/{po_id}", "Name", "Navn igjen AS")
        run("sync")
        mine = open_conflicts(run, key)
        assert mine and mine[0]["resolved"] is None
        assert mine[0]["poweroffice_value"] == "Navn igjen AS"
        assert organization_name(running, zd_id) == "ZD AS"

        run("conflicts", "resolve", key, "--take", "zendesk")
        run("sync")
        assert open_conflicts(run, key) == []
        customer = next(c for c in running.poweroffice.dump()["customers"] if str(c["Id"]) == po_id)
        assert customer["Name"] == "ZD AS"
        run("sync")  # and it stays resolved: nothing more to do
        assert open_conflicts(run, key) == []

        trail = json.loads(run("decisions", "--json").stdout)
        assert [d["action"] for d in trail] == ["resolve", "resolve"]
        assert all(d["who"] == getpass.getuser() for d in trail)
