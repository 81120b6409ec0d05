"""The real Zendesk adapter writing to the Zendesk sandbox, in process: e-mail changes and
organization moves.

- no write talksync makes mails anyone a verification link (a property over any mix of e-mail
  changes and user creates, with the old addresses kept or removed);
- an address another user holds is refused with a named failure, and only then;
- a move to another organization keeps every membership but the one the flow owned, and makes
  the new one the default (a property over any memberships a user may have).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sandbox_support import zendesk_port

from adapters.sandbox import ZendeskSandbox
from adapters.zendesk.user_changes import EMAIL_HELD
from talkcore.ports import ApplyHooks, WriteOp, WriteRequest
from talkcore.records import Kind

ADDRESSES = ("a@x.no", "b@x.no", "c@x.no", "d@x.no", "e@x.no")
SEEDED = 3

email_change = st.tuples(
    st.just("email"),
    st.integers(0, SEEDED - 1),
    st.sampled_from(ADDRESSES),
    st.booleans(),  # written in upper case (Zendesk stores addresses lower-cased)
)
user_create = st.tuples(st.just("create"), st.sampled_from((None, *ADDRESSES)))
steps = st.lists(st.one_of(email_change, user_create), min_size=1, max_size=8)


def holders(zd: ZendeskSandbox) -> dict[str, int]:
    """Every address an active user holds (primary or not), and who holds it."""
    active = {u["id"] for u in zd.dump()["users"] if u["active"]}
    return {i["value"]: i["user_id"] for i in zd.dump()["identities"] if i["user_id"] in active}


def addresses_of(zd: ZendeskSandbox, user_id: int) -> set[str]:
    return {i["value"] for i in zd.dump()["identities"] if i["user_id"] == user_id}


@given(steps=steps, remove_old=st.booleans())
def test_no_write_by_talksync_would_mail_a_verification_link(
    steps: list[tuple[Any, ...]], remove_old: bool
) -> None:
    zd = ZendeskSandbox(job_polls=0)
    users = [zd.add_user(name=f"Bruker {n}", email=ADDRESSES[n])["id"] for n in range(SEEDED)]
    port = zendesk_port(zd, remove_old_emails=remove_old)
    for number, step in enumerate(steps):
        before = holders(zd)
        if step[0] == "create":
            fields = {"name": f"Ny {number}", "email": step[1]}
            origin = f"poweroffice:contact_person:{number}"
            port.apply(
                [WriteRequest(f"c{number}", WriteOp.CREATE, Kind.USER, None, fields, origin)]
            )
            continue
        _, index, address, upper = step
        user_id = users[index]
        old = zd.users[user_id]["email"]
        write = WriteRequest(
            f"e{number}",
            WriteOp.UPDATE,
            Kind.USER,
            str(user_id),
            {"email": address.upper() if upper else address},
            current={"email": old},
        )
        [result] = port.apply([write])
        holder = before.get(address)
        if holder is not None and holder != user_id:
            # Refused by name, and nothing changed for this user.
            assert result.error is not None and result.error.code == EMAIL_HELD
            assert address in result.error.message.casefold()
            assert zd.users[user_id]["email"] == old
        else:
            assert result.ok, result.error
            assert zd.users[user_id]["email"] == address
            assert (old in addresses_of(zd, user_id)) is (old == address or not remove_old)
    assert zd.verification_mails == []


ORGANIZATIONS = 4


@given(
    held=st.sets(st.integers(0, ORGANIZATIONS - 1), min_size=1),
    default=st.integers(0, ORGANIZATIONS - 1),
    to=st.integers(0, ORGANIZATIONS - 1),
    owned=st.booleans(),
    several=st.booleans(),
)
def test_a_move_keeps_every_membership_but_the_one_the_flow_owned(
    held: set[int], default: int, to: int, owned: bool, several: bool
) -> None:
    zd = ZendeskSandbox(job_polls=0, multiple_organizations=several)
    orgs = [zd.add_organization(name=f"Org {n}")["id"] for n in range(ORGANIZATIONS)]
    held = held | {default} if several else {default}
    user = zd.add_user(name="Kari", email="kari@x.no", organization_id=orgs[default])
    for index in sorted(held - {default}):
        zd.add_membership(user["id"], orgs[index])
    releases = {"organization_id": str(orgs[default])} if owned else {}
    write = WriteRequest(
        "m",
        WriteOp.UPDATE,
        Kind.USER,
        str(user["id"]),
        {"organization_id": str(orgs[to])},
        current={"organization_id": str(orgs[default])},
        releases=releases,
    )
    [result] = zendesk_port(zd).apply([write])
    assert result.ok, result.error
    assert result.record is not None and result.record.get("organization_id") == str(orgs[to])
    after = {m["organization_id"]: m["default"] for m in zd.dump()["organization_memberships"]}
    if several:
        kept = {orgs[i] for i in held} - ({orgs[default]} if owned and to != default else set())
        assert set(after) == kept | {orgs[to]}
    else:
        assert set(after) == {orgs[to]}  # one organization per user: the move replaces it
    assert [org for org, is_default in after.items() if is_default] == [orgs[to]]
    assert zd.users[user["id"]]["organization_id"] == orgs[to]


def test_a_create_whose_earlier_job_ran_on_after_a_stop_is_found_not_failed() -> None:
    """A run stopped with a ``create_many`` job in doubt; the job was still running when the
    next run planned the same creates again. The new job's items are refused as taken, and the
    writer finds each by its own origin key: done, not failed, and nothing created twice."""
    from adapters.sandbox import FakeClock

    clock = FakeClock()
    zd = ZendeskSandbox(clock=clock, job_polls=1_000, job_seconds=2)
    writes = [
        WriteRequest(
            f"c{n}", WriteOp.CREATE, Kind.ORGANIZATION, None, {"name": f"Kunde {n} AS"}, f"po:{n}"
        )
        for n in range(3)
    ]
    # The first run stops once its bulk call is sent: the job is left in doubt.
    stopped = zendesk_port(zd).apply(writes[:2], ApplyHooks(should_stop=lambda: bool(zd.jobs)))
    assert [r.error.code if r.error else None for r in stopped] == ["in_doubt", "in_doubt"]
    assert zd.dump()["organizations"] == []
    # The next run, one second on, sends them again; its polls wait on the sandbox's clock.
    clock.advance(1)
    port = zendesk_port(zd)
    port._writer.jobs.sleep = clock.advance
    results = port.apply(writes)
    assert all(r.ok for r in results), [r.error for r in results]
    names = sorted(o["name"] for o in zd.dump()["organizations"])
    assert names == ["Kunde 0 AS", "Kunde 1 AS", "Kunde 2 AS"]
    assert {r.record.get("external_id") for r in results if r.record} == {"po:0", "po:1", "po:2"}
