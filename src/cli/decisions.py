"""The commands of a person's decisions: ``links``, ``conflicts``, ``ambiguities``, ``decisions``.

The three queues share one way to list (a table with headers on a terminal, tab-separated
lines otherwise, JSON on request, always naming the records and ending with the command that
acts on them), one way to read an id a person typed, and one way to make a decision: under
the run lock, checked against what the state and the mirrors hold now, recorded with who and
when (dataflow decision 10).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import attrs
import typer
from rich.console import Console
from rich.table import Table

from cli.helptext import AsJson, FlowId, OnlyFlow, PowerOfficeId, examples
from cli.logs import tell
from cli.output import emit_json, item_json, item_lines
from cli.wiring import AppContext
from talkcore.dataflow import DEFAULT_DATAFLOW, Flow
from talkcore.plan import Ambiguity, Write
from talkcore.planning import plan_changes
from talkcore.ports import StateStore
from talkcore.records import Kind, Record, RecordKey, System
from talkcore.state import (
    Decision,
    SyncState,
    keep_together,
    link_by_hand,
    resolve_conflict,
    unlink,
    with_decision,
)

USAGE = 2  # the CLI's exit code for a usage error (cli.main documents them all)

links_app = typer.Typer(
    help="Linked record pairs, and pairs kept apart.", invoke_without_command=True
)
conflicts_app = typer.Typer(help="Conflicts held for a person.", invoke_without_command=True)
ambiguities_app = typer.Typer(help="Matches that were not one-to-one.", invoke_without_command=True)


class Refused(Exception):
    """A decision or look-up a person asked for that cannot be done; the message says why."""


def _fail(message: str) -> typer.Exit:
    tell(message)
    return typer.Exit(USAGE)


def _app(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


def _guarded(ctx: typer.Context) -> Any:
    """The CLI's error translation (cli.main), looked up late so this module does not import
    main at import time (main registers these commands)."""
    from cli.main import failing_cleanly

    del ctx
    return failing_cleanly()


# -- reading what a person typed -------------------------------------------------------------


def flow_named(text: str) -> Flow:
    """The flow ``text`` names, or a refusal listing the flows (and the likely one)."""
    try:
        return DEFAULT_DATAFLOW.flow(text)
    except KeyError:
        pass
    close = [f for f in DEFAULT_DATAFLOW.ids if f.casefold() == text.strip().casefold()]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise Refused(f"no flow {text!r}{hint} flows are: {', '.join(DEFAULT_DATAFLOW.ids)}")


def record_key(text: str, kind: Kind) -> RecordKey:
    """The key of a record of ``kind`` given by its id (``5000056``) or its full key
    (``poweroffice:contact_person:5000056``, as listings print it)."""
    text = text.strip()
    if ":" not in text:
        if not text:
            raise Refused(f"empty {kind.system} id")
        return RecordKey.of(kind, text)
    try:
        key = RecordKey.parse(text)
    except ValueError:
        key = None
    if key is not None and key.kind is kind:
        return key
    raise Refused(
        f"{text!r} is not a {kind.system} {kind.value.replace('_', ' ')};"
        f" give its id, e.g. {kind.system}:{kind.value}:123 or 123"
    )


def _plain(text: str) -> str:
    """The bare id of an id a person typed in either form (for messages and the trail)."""
    text = text.strip()
    try:
        return RecordKey.parse(text).id
    except ValueError:
        return text


# -- naming records --------------------------------------------------------------------------


def record_names(store: StateStore, keys: Iterable[RecordKey]) -> dict[RecordKey, str]:
    """A name a person recognises for each key: name, e-mail and customer, from the mirrors."""
    wanted = list(dict.fromkeys(keys))
    found = store.records(wanted)
    parents = {
        RecordKey.of(Kind.CUSTOMER, str(party))
        for record in found.values()
        if record.kind is Kind.CONTACT_PERSON and (party := record.get("partyId"))
    }
    customers = store.records(sorted(parents)) if parents else {}
    return {key: _name(found.get(key), customers) for key in wanted}


def _name(record: Record | None, customers: Mapping[RecordKey, Record]) -> str:
    if record is None:
        return "(not in the mirror)"
    get = record.get
    person = " ".join(
        str(v)
        for v in (get("FirstName") or get("firstName"), get("LastName") or get("lastName"))
        if v
    )
    name = get("Name") or get("name") or person or ""
    email = get("EmailAddress") or get("emailAddress") or get("email")
    text = f"{name} <{email}>" if name and email else str(name or email or "(no name)")
    party = get("partyId") if record.kind is Kind.CONTACT_PERSON else None
    if party:
        customer = customers.get(RecordKey.of(Kind.CUSTOMER, str(party)))
        text += f", customer {customer.get('Name') if customer else party}"
    if not record.active:
        text += " (inactive)"
    return text


# -- listing ---------------------------------------------------------------------------------


@attrs.frozen
class Listing:
    """Rows for a person (table or tab-separated lines) and for scripts (JSON)."""

    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    data: Sequence[Mapping[str, Any]]
    noun: str
    """Plural noun for the count line."""
    next_step: str
    """The command that acts on what is listed."""


def show(listing: Listing, *, as_json: bool) -> None:
    """Print ``listing``: JSON, a table on a terminal, or tab-separated lines in a pipe.

    The count and the next command go to stdout on a terminal and to stderr in a pipe, so
    the lines stay one record each for scripts.
    """
    if as_json:
        emit_json(list(listing.data))
        return
    footer = f"{len(listing.rows)} {listing.noun}."
    if listing.rows:
        footer += f" {listing.next_step}"
    if sys.stdout.isatty():
        console = Console()
        if listing.rows:
            table = Table(title=listing.title)
            for header in listing.headers:
                table.add_column(header)
            for row in listing.rows:
                table.add_row(*row)
            console.print(table)
        console.print(footer, highlight=False)
        return
    for row in listing.rows:
        typer.echo("\t".join(row))
    tell(footer, level="info", count=len(listing.rows))


# -- deciding --------------------------------------------------------------------------------


def decide(
    obj: AppContext,
    change: Callable[[StateStore, SyncState], SyncState],
    action: str,
    flow: str,
    subject: str,
) -> None:
    """Apply a person's decision under the run lock, record who/when/what, and save."""
    store = obj.store()
    with store.lock():
        state = store.load_state()
        try:
            new = change(store, state)
        except (KeyError, ValueError, Refused) as exc:
            raise _fail(str(exc.args[0])) from None
        decision = Decision(datetime.now(UTC), _who(), action, flow, subject)
        store.save(with_decision(new, decision), [])


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "unknown"


def _list(
    ctx: typer.Context,
    build: Callable[[StateStore, SyncState], Listing],
    *,
    as_json: bool,
) -> None:
    """Show the listing ``build`` makes of the saved state."""
    with _guarded(ctx):
        store, state = _load(_app(ctx))
    show(build(store, state), as_json=as_json)


def _load(obj: AppContext) -> tuple[StateStore, SyncState]:
    # Listings only look: they open the state read-only, so nothing is created or locked.
    store = obj.store(read_only=True)
    return store, store.load_state()


def listing_group(
    group: typer.Typer,
    noun: str,
    build: Callable[[StateStore, SyncState], Listing],
    *,
    summary: str,
) -> None:
    """Give ``group`` the ``list`` command (help line ``summary``) showing what ``build``
    lists, and make the group alone (``talksync NOUN``) list too."""

    @group.callback()
    def default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            _list(ctx, build, as_json=False)

    @group.command(
        "list",
        help=summary,
        epilog=examples(f"talksync {noun} list", f"talksync {noun} list --json"),
    )
    def list_command(ctx: typer.Context, as_json: AsJson = False) -> None:
        _list(ctx, build, as_json=as_json)


# -- links -----------------------------------------------------------------------------------


@links_app.callback()
def links_default(ctx: typer.Context) -> None:
    """Linked record pairs (``links`` alone lists them)."""
    if ctx.invoked_subcommand is None:
        list_links(ctx)


@links_app.command(
    "list",
    epilog=examples(
        "talksync links list --flow customers-organizations",
        "talksync links list --id 5000016 --json",
    ),
)
def list_links(
    ctx: typer.Context,
    flow: OnlyFlow = None,
    record_id: Annotated[
        str | None, typer.Option("--id", help="Only links of this record id (either side).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List links and the pairs kept apart, optionally of one flow or one record."""
    try:
        flows = [flow_named(flow)] if flow is not None else list(DEFAULT_DATAFLOW)
    except Refused as exc:
        raise _fail(str(exc)) from None
    wanted = _plain(record_id) if record_id else None
    with _guarded(ctx):
        store, state = _load(_app(ctx))
    pairs: list[tuple[Flow, str, str, str]] = []
    for f in flows:
        pairs += [(f, ln.poweroffice_id, ln.zendesk_id, "linked") for ln in state.table(f.id)]
        pairs += [
            (f, k.poweroffice_id, k.zendesk_id, "kept apart")
            for k in sorted(state.kept_apart)
            if k.flow == f.id
        ]
    pairs = [p for p in pairs if wanted is None or wanted in (p[1], p[2])]
    keys = [
        k
        for f, po, zd, _ in pairs
        for k in (RecordKey.of(f.poweroffice_kind, po), RecordKey.of(f.zendesk_kind, zd))
    ]
    names = record_names(store, keys) if not as_json else {}
    rows = [
        (
            f.id,
            po,
            names.get(RecordKey.of(f.poweroffice_kind, po), ""),
            zd,
            names.get(RecordKey.of(f.zendesk_kind, zd), ""),
            how,
        )
        for f, po, zd, how in pairs
    ]
    data = [
        {
            **(
                {"flow": f.id, "poweroffice_id": po, "zendesk_id": zd} | _base(state, f.id, po, how)
            ),
            "state": how.replace(" ", "_"),
        }
        for f, po, zd, how in pairs
    ]
    show(
        Listing(
            "Links",
            ("flow", "PowerOffice", "PowerOffice record", "Zendesk", "Zendesk record", "state"),
            rows,
            data,
            "pair(s)",
            "End one: talksync links unlink FLOW POWEROFFICE_ID;"
            " undo that: talksync links relink FLOW POWEROFFICE_ID",
        ),
        as_json=as_json,
    )


def _base(state: SyncState, flow: str, po: str, how: str) -> dict[str, Any]:
    link = state.table(flow).for_poweroffice(po) if how == "linked" else None
    return {"base": dict(link.base)} if link is not None else {}


@links_app.command("unlink", epilog=examples("talksync links unlink contact-persons-users 5000016"))
def unlink_command(
    ctx: typer.Context,
    flow: FlowId,
    poweroffice_id: PowerOfficeId,
) -> None:
    """End a link by hand and keep the pair apart (neither record is changed).

    No sync links the two again until you undo it with `talksync links relink`.
    """
    parted: list[str] = []

    def change(store: StateStore, state: SyncState) -> SyncState:
        del store
        f = flow_named(flow)
        po = record_key(poweroffice_id, f.poweroffice_kind).id
        link = state.table(f.id).for_poweroffice(po)
        if link is None:
            raise Refused(_no_link(state, f, po))
        parted.extend([f.id, po, link.zendesk_id])
        return unlink(state, f.id, po)

    with _guarded(ctx):
        decide(_app(ctx), change, "unlink", flow, f"poweroffice {_plain(poweroffice_id)}")
    f_id, po, zd = parted
    typer.echo(
        f"Unlinked PowerOffice {po} from Zendesk {zd} in {f_id}; they stay apart until"
        f" `talksync links relink {f_id} {po}`."
    )


def _no_link(state: SyncState, flow: Flow, po: str) -> str:
    """Why there is no link to end, pointing at the id a person likely meant."""
    message = f"no link in {flow.id} for PowerOffice record {po}"
    other = state.table(flow.id).for_zendesk(po)
    if other is not None:
        return (
            f"{message}; {po} is the Zendesk side of a link: give the PowerOffice id,"
            f" `talksync links unlink {flow.id} {other.poweroffice_id}`"
        )
    if any(k.flow == flow.id and k.poweroffice_id == po for k in state.kept_apart):
        return f"{message}; it is already kept apart (`talksync links list --id {po}`)"
    return f"{message}; see `talksync links list --flow {flow.id}`"


@links_app.command("relink", epilog=examples("talksync links relink contact-persons-users 5000016"))
def relink_command(
    ctx: typer.Context,
    flow: FlowId,
    poweroffice_id: PowerOfficeId,
) -> None:
    """Undo `links unlink`: the next sync may link the pair again (by its usual rules)."""

    def change(store: StateStore, state: SyncState) -> SyncState:
        del store
        f = flow_named(flow)
        return keep_together(state, f, record_key(poweroffice_id, f.poweroffice_kind).id)

    with _guarded(ctx):
        decide(_app(ctx), change, "relink", flow, f"poweroffice {_plain(poweroffice_id)}")
    typer.echo(f"PowerOffice {_plain(poweroffice_id)} in {flow} is no longer kept apart; run sync.")


# -- conflicts -------------------------------------------------------------------------------


def _conflicts(store: StateStore, state: SyncState) -> Listing:
    held = list(state.conflicts.items())
    names = record_names(store, [k for _, c in held for k in (c.poweroffice, c.zendesk)])
    rows = [
        (
            key,
            names[c.poweroffice],
            f"{c.poweroffice_value!r}",
            names[c.zendesk],
            f"{c.zendesk_value!r}",
            f"{state.resolutions[key]} wins on next sync"
            if key in state.resolutions
            else "held for a person",
        )
        for key, c in held
    ]
    data = [{**item_json(c), "key": key, "resolved": state.resolutions.get(key)} for key, c in held]
    return Listing(
        "Conflicts",
        ("conflict", "PowerOffice record", "PowerOffice", "Zendesk record", "Zendesk", "state"),
        rows,
        data,
        "conflict(s)",
        "Decide one: talksync conflicts resolve CONFLICT --take poweroffice|zendesk",
    )


listing_group(
    conflicts_app,
    "conflicts",
    _conflicts,
    summary="List held conflicts with both values; resolved ones say who wins.",
)


def conflict_named(state: SyncState, key: str) -> str:
    """The open conflict ``key`` names, or a refusal pointing at the right form."""
    if key in state.conflicts:
        return key
    close = [k for k in state.conflicts if k.casefold() == key.strip().casefold()]
    if close:
        raise Refused(f"no open conflict {key!r}; did you mean {close[0]!r}? (case matters)")
    parts = key.split("/")
    same = [k for k in state.conflicts if parts and k.split("/")[:2] == parts[:2]]
    hint = f"; that record's are: {', '.join(same)}" if same else ""
    raise Refused(
        f"no open conflict {key!r}{hint}; ids look like FLOW/POWEROFFICE_ID/Property"
        " (see `talksync conflicts list`)"
    )


@conflicts_app.command(
    "resolve",
    epilog=examples("talksync conflicts resolve customers-organizations/123/Name --take zendesk"),
)
def resolve_command(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The conflict id (flow/poweroffice id/property).")],
    take: Annotated[System, typer.Option("--take", help="The side whose value wins.")],
) -> None:
    """Decide a held conflict; the next sync writes the winning value.

    The decision holds for the values shown now: if either side moves again first, the
    conflict is held anew.
    """

    def change(store: StateStore, state: SyncState) -> SyncState:
        del store
        return resolve_conflict(state, conflict_named(state, key), take)

    with _guarded(ctx):
        decide(_app(ctx), change, "resolve", key.split("/")[0], f"{key}: {take} wins")
    typer.echo(f"Resolved {key}: {take} wins; run sync to apply it.")


# -- ambiguities -----------------------------------------------------------------------------


def _ambiguities(store: StateStore, state: SyncState) -> Listing:
    names = record_names(store, [k for a in state.ambiguities for k in a.candidates])
    rows = [
        (a.flow, a.value or "", str(key), names[key])
        for a in state.ambiguities
        for key in a.candidates
    ]
    return Listing(
        "Ambiguities (one row per candidate)",
        ("flow", "shared value", "candidate", "record"),
        rows,
        [item_json(a) for a in state.ambiguities],
        f"candidate(s) in {len(state.ambiguities)} ambiguity(ies)",
        "Link two of one: talksync ambiguities link FLOW POWEROFFICE_ID ZENDESK_ID",
    )


listing_group(
    ambiguities_app,
    "ambiguities",
    _ambiguities,
    summary="List matches that were not one-to-one, with every candidate named.",
)


def ambiguity_of(state: SyncState, flow: Flow, po: RecordKey, zd: RecordKey) -> Ambiguity:
    """The ambiguity of ``flow`` naming both records, or a refusal saying what is wrong."""
    for amb in state.ambiguities:
        if amb.flow == flow.id and po in amb.candidates and zd in amb.candidates:
            return amb
    for amb in state.ambiguities:
        if amb.flow == flow.id and (po in amb.candidates or zd in amb.candidates):
            shown = ", ".join(str(k) for k in amb.candidates)
            outsider = zd if po in amb.candidates else po
            raise Refused(
                f"{outsider} is not a candidate of the ambiguity on {amb.value!r};"
                f" its candidates are: {shown}"
            )
    raise Refused(f"no ambiguity in {flow.id} names {po} or {zd}; see `talksync ambiguities list`")


@ambiguities_app.command(
    "link",
    epilog=examples(
        "talksync ambiguities link contact-persons-users 5000016 7000000011",
        "talksync ambiguities link contact-persons-users 5000016 7000000011 --yes",
    ),
)
def link_command(
    ctx: typer.Context,
    flow: FlowId,
    poweroffice_id: Annotated[
        str, typer.Argument(help="The PowerOffice candidate (id, or its full key as listed).")
    ],
    zendesk_id: Annotated[
        str, typer.Argument(help="The Zendesk candidate (id, or its full key as listed).")
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Link without asking (for scripts).")
    ] = False,
) -> None:
    """Decide an ambiguity by linking two of its candidates.

    Only the ambiguity's current candidates are accepted. The writes the link will cause are
    shown first; on a terminal you are asked to confirm, elsewhere --yes is required.
    """
    obj = _app(ctx)
    with _guarded(ctx):
        settings = obj.settings()

        def change(store: StateStore, state: SyncState) -> SyncState:
            f = flow_named(flow)
            po = record_key(poweroffice_id, f.poweroffice_kind)
            zd = record_key(zendesk_id, f.zendesk_kind)
            amb = ambiguity_of(state, f, po, zd)
            found = store.records([po, zd])
            gone = [str(k) for k in (po, zd) if k not in found or not found[k].active]
            if gone:
                raise Refused(f"{', '.join(gone)} no longer exists; run `talksync sync` to refresh")
            linked = link_by_hand(state, f.id, po.id, zd.id)
            plan = plan_changes(
                store.load_mirror(System.POWEROFFICE),
                store.load_mirror(System.ZENDESK),
                linked,
                DEFAULT_DATAFLOW,
                settings.policy,
                focus=frozenset(amb.candidates),
            )
            writes = [item for item in plan if isinstance(item, Write) and _touches(item, {po, zd})]
            names = record_names(store, [po, zd])
            typer.echo(f"Link {po} ({names[po]}) with {zd} ({names[zd]}) in {f.id}.")
            if writes:
                typer.echo("The next sync will then write:")
                for item in writes:
                    for line in item_lines(item):
                        typer.echo(f"  {line}")
            else:
                typer.echo("The next sync writes nothing for this pair: they agree.")
            if not yes:
                if not sys.stdin.isatty():
                    raise Refused("not linked: confirm on a terminal, or add --yes")
                if not typer.confirm("Link them?", default=False):
                    raise Refused("not linked")
            # What is still ambiguous after the link, as the plan sees it, so that
            # `ambiguities list` and `plan` agree.
            left = [
                item
                for item in plan
                if isinstance(item, Ambiguity)
                and item.flow == f.id
                and item.id not in {a.id for a in linked.ambiguities}
                and item.id == amb.id
            ]
            return attrs.evolve(linked, ambiguities=(*linked.ambiguities, *left))

        po_id, zd_id = _plain(poweroffice_id), _plain(zendesk_id)
        decide(obj, change, "link", flow, f"poweroffice {po_id} + zendesk {zd_id}")
    typer.echo(f"Linked PowerOffice {po_id} with Zendesk {zd_id} in {flow}.")


def _touches(item: Write, keys: set[RecordKey]) -> bool:
    target = getattr(item, "target", None)
    source = getattr(item, "source", None)
    return target in keys or source in keys


# -- the decision trail ----------------------------------------------------------------------


def list_decisions(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """List every decision made by hand: when, who (OS user), what."""
    with _guarded(ctx):
        _, state = _load(_app(ctx))
    trail = list(reversed(state.decisions))
    show(
        Listing(
            "Decisions made by hand (newest first)",
            ("when", "who", "action", "flow", "what"),
            [
                (d.when.isoformat(timespec="seconds"), d.who, d.action, d.flow, d.subject)
                for d in trail
            ],
            [decision_data(d) for d in trail],
            "decision(s)",
            "Undo an unlink: talksync links relink FLOW POWEROFFICE_ID",
        ),
        as_json=as_json,
    )


def decision_data(decision: Decision) -> dict[str, Any]:
    """One decision as JSON-ready data."""
    return {**attrs.asdict(decision), "when": decision.when.isoformat()}


def status_extra(state: SyncState) -> dict[str, Any]:
    """What ``status`` adds about decisions: pairs kept apart and the latest decisions."""
    return {
        "kept_apart": [attrs.asdict(k) for k in sorted(state.kept_apart)],
        "decisions": [decision_data(d) for d in reversed(state.decisions[-5:])],
    }


def render_status_extra(data: Mapping[str, Any]) -> None:
    """Print ``status_extra`` for a person."""
    typer.echo(f"Pairs kept apart by hand: {len(data['kept_apart'])}")
    for pair in data["kept_apart"]:
        typer.echo(
            f"  {pair['flow']}: poweroffice {pair['poweroffice_id']} / zendesk {pair['zendesk_id']}"
        )
    if data["decisions"]:
        typer.echo("Latest decisions (talksync decisions lists all):")
        for d in data["decisions"]:
            typer.echo(f"  {d['when']} {d['who']} {d['action']} {d['flow']}: {d['subject']}")


def register(app: typer.Typer) -> None:
    """Add the decision commands to ``app``."""
    app.add_typer(links_app, name="links")
    app.add_typer(conflicts_app, name="conflicts")
    app.add_typer(ambiguities_app, name="ambiguities")
    app.command("decisions", epilog=examples("talksync decisions", "talksync decisions --json"))(
        list_decisions
    )
