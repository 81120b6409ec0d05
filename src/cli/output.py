"""What the CLI prints: plans, run summaries, status and queues; progress on stderr.

Data goes to stdout (plain lines, or rich tables); progress and diagnostics go to stderr.

The JSON printed by ``plan --json`` and ``sync --json`` is ``adapters.reportjson``'s: the one
converter that also shapes the run log; its fields are in docs/json.md.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

import attrs
import structlog
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# The one JSON shape, re-exported for the commands that print it (plan, sync, conflicts, …).
from adapters.reportjson import item_json as item_json
from adapters.reportjson import report_json as report_json
from talkcore.engine import RunReport
from talkcore.plan import (
    AdvanceBase,
    Ambiguity,
    Conflict,
    Create,
    Delete,
    DeleteCapReached,
    EndLink,
    FieldChange,
    FirstLinkChoice,
    InvalidValue,
    NameCollision,
    NewLink,
    PendingId,
    PlanItem,
    ReferenceProblem,
    UnsupportedChange,
    Update,
    item_kind,
)
from talkcore.records import Kind, Record, Snapshot, System
from talkcore.state import Link, SyncState


def stdout_console() -> Console:
    """A console on stdout; wide when not a terminal, so tables are not cut."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _v(value: object) -> str:
    if isinstance(value, PendingId):
        return f"<id of {value.item_id}>"
    return "(empty)" if value is None else repr(value)


def _change(change: FieldChange, explain: bool) -> str:
    line = f"{change.property} := {_v(change.value)} ({change.rule})"
    if explain:
        line += (
            f"  [base {_v(change.base)}, poweroffice {_v(change.poweroffice)},"
            f" zendesk {_v(change.zendesk)}]"
        )
    return line


def item_lines(item: PlanItem, explain: bool = False) -> list[str]:
    """One plan item as human-readable lines (the first names it, the rest detail it)."""
    return _lines(item, item_kind(item), explain)


# One small function per item type: each says only how its own type reads.
@singledispatch
def _lines(item: PlanItem, kind: str, explain: bool) -> list[str]:  # pragma: no cover
    raise TypeError(f"unknown plan item {item!r}")  # every type is registered below


@_lines.register
def _(item: Create, kind: str, explain: bool) -> list[str]:
    fields = ", ".join(f"{k}={_v(v)}" for k, v in item.fields.items())
    return [f"{kind}: {item.kind} in {item.system} from {item.source} ({fields})"]


@_lines.register
def _(item: Update, kind: str, explain: bool) -> list[str]:
    return [f"{kind}: {item.target}", *(f"    {_change(c, explain)}" for c in item.changes)]


@_lines.register
def _(item: Delete, kind: str, explain: bool) -> list[str]:
    return [f"{kind}: {item.target} because {item.because} is gone ({item.rule})"]


@_lines.register
def _(item: NewLink, kind: str, explain: bool) -> list[str]:
    on = f", matched on {item.matched_on!r}" if item.matched_on else ""
    lines = [f"{kind}: {item.poweroffice} <-> {item.zendesk} ({item.rule}{on})"]
    if explain and item.base:
        lines.append("    base: " + ", ".join(f"{k}={_v(v)}" for k, v in item.base.items()))
    return lines


@_lines.register
def _(item: EndLink, kind: str, explain: bool) -> list[str]:
    return [f"{kind}: {item.poweroffice} <-> {item.zendesk}: {item.gone} is {item.rule}"]


@_lines.register
def _(item: AdvanceBase, kind: str, explain: bool) -> list[str]:
    return [
        f"{kind}: poweroffice {item.poweroffice_id} {item.property} -> {_v(item.value)}"
        f" ({item.rule})"
    ]


@_lines.register
def _(item: Conflict, kind: str, explain: bool) -> list[str]:
    winner = f"{item.winner} wins" if item.winner else "held for a person"
    return [
        f"{kind}: {item.key}: {item.property} base {_v(item.base)}, poweroffice"
        f" {_v(item.poweroffice_value)}, zendesk {_v(item.zendesk_value)}:"
        f" {winner} ({item.policy}, {item.rule})"
    ]


@_lines.register
def _(item: FirstLinkChoice, kind: str, explain: bool) -> list[str]:
    return [
        f"{kind}: {item.poweroffice} <-> {item.zendesk} {item.property}: poweroffice"
        f" {_v(item.poweroffice_value)}, zendesk {_v(item.zendesk_value)}:"
        f" {item.winner} wins ({item.policy}, {item.rule})"
    ]


@_lines.register
def _(item: Ambiguity, kind: str, explain: bool) -> list[str]:
    names = ", ".join(str(c) for c in item.candidates)
    return [f"{kind}: {_v(item.value)} matches {names} ({item.rule})"]


@_lines.register
def _(item: ReferenceProblem | UnsupportedChange, kind: str, explain: bool) -> list[str]:
    line = f"{kind}: {item.record} {item.property}={_v(item.value)} ({item.rule})"
    return [line, *_how_to_allow(item)]


@_lines.register
def _(item: NameCollision, kind: str, explain: bool) -> list[str]:
    return [f"{kind}: {item.record} name {_v(item.name)} is held by {item.holder} ({item.rule})"]


@_lines.register
def _(item: InvalidValue, kind: str, explain: bool) -> list[str]:
    return [f"{kind}: {item.record} {item.property}: {item.message} ({item.rule})"]


@_lines.register
def _(item: DeleteCapReached, kind: str, explain: bool) -> list[str]:
    return [
        f"{kind}: {item.planned} deletes of {item.links} links exceed the cap of"
        f" {item.cap:.0%}; none propagated ({item.rule})"
    ]


def plan_items(report: RunReport, flow: str | None = None) -> list[PlanItem]:
    """The report's plan items, only those of ``flow`` when one is given."""
    return [item for item in report.plan if flow is None or item.flow == flow]


def pending_changes(items: Iterable[PlanItem]) -> bool:
    """Whether a sync would change anything: a write, or a link made or ended.

    Reports (a held conflict, an ambiguity) wait for a person, not for a sync, and
    ``advance_base`` only moves the saved state; neither is a pending change.
    """
    return any(isinstance(item, Create | Update | Delete | NewLink | EndLink) for item in items)


_KEY = re.compile(r"\b(poweroffice|zendesk):([a-z_]+):([^\s,:()<>]+)")


def record_label(record: Record) -> str | None:
    """A person's name for a record: the organization or customer name, or a person's name and
    e-mail (``Kari Nordmann <kari@acme.no>``); ``None`` when the record has neither."""
    name = record.get("name") or record.get("Name")
    if not name:
        parts = [record.get("firstName"), record.get("lastName")]
        name = " ".join(str(p) for p in parts if p) or None
    email = record.get("email") or record.get("emailAddress") or record.get("EmailAddress")
    if name and email:
        return f"{name} <{email}>"
    return str(name or email) if (name or email) else None


@attrs.frozen
class Names:
    """Names for the record keys in plan lines, from the mirrors of both systems."""

    snapshots: Mapping[System, Snapshot] = attrs.field(factory=dict)

    def label(self, system: str, kind: str, record_id: str) -> str | None:
        """The name of ``system:kind:id``, when the mirrors know the record."""
        try:
            snapshot = self.snapshots.get(System(system))
            record = None if snapshot is None else snapshot.of_kind(Kind(kind)).get(record_id)
        except ValueError:
            return None
        return None if record is None else record_label(record)

    def annotate(self, line: str) -> str:
        """``line`` with each known record key followed by its name in quotes."""

        def named(match: re.Match[str]) -> str:
            label = self.label(*match.groups())
            return match.group(0) + (f' "{label}"' if label else "")

        return _KEY.sub(named, line) if self.snapshots else line


def _how_to_allow(item: PlanItem) -> list[str]:
    """For a change the policy refuses, the setting that would allow it."""
    if isinstance(item, UnsupportedChange) and item.rule == "move_not_enabled":
        return [
            f"    moving a record to another customer is off: set allow_moves = true under"
            f" [flows.{item.flow}] in talksync.toml to let it through"
        ]
    return []


def render_plan(
    report: RunReport,
    *,
    explain: bool = False,
    flow: str | None = None,
    names: Names | None = None,
) -> None:
    """Print the plan flow by flow; state-only items (``advance_base``) only with ``explain``.

    With ``names``, records are shown by name beside their keys."""
    names = names or Names()
    by_flow: dict[str, list[PlanItem]] = {}
    for item in plan_items(report, flow):
        if isinstance(item, AdvanceBase) and not explain:
            continue
        by_flow.setdefault(item.flow, []).append(item)
    if not by_flow:
        typer.echo("Nothing to do: both systems agree with the last sync.")
    for flow, items in by_flow.items():
        typer.echo(f"{flow}:")
        for item in items:
            for line in item_lines(item, explain):
                typer.echo(f"  {names.annotate(line)}")
    for problem in report.problems:
        typer.echo(f"read problem: {problem}")


def summary_table(report: RunReport, title: str, *, flow: str | None = None) -> Table:
    """Counts per flow and item kind; a real run adds its applied and failed writes.

    A dry run has no writes, so it has no applied or failed rows (not ``applied 0``).
    """
    table = Table(title=title, show_header=True)
    table.add_column("flow")
    table.add_column("what")
    table.add_column("count", justify="right")
    counts = Counter((item.flow, item_kind(item)) for item in plan_items(report, flow))
    for (flow_id, kind), count in sorted(counts.items()):
        table.add_row(flow_id, kind, str(count))
    if not counts:
        table.add_row(flow or "all", "nothing to do", "0")
    if not report.dry_run:
        table.add_row("all", "applied", str(len(report.applied)))
        table.add_row("all", "failed", str(len(report.failures)))
    if report.problems:
        table.add_row("all", "read problems", str(len(report.problems)))
    return table


def render_failures(report: RunReport) -> None:
    """List every failed write with the error naming its record and field."""
    for result in report.failures:
        typer.echo(f"failed: {result.item_id}: {result.error}")


def _age(text: str | None, now: datetime) -> str:
    if not text:
        return "never"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int((now - when).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def status_data(
    state: SyncState, runs: Sequence[Mapping[str, Any]], flows: Iterable[str], now: datetime
) -> dict[str, Any]:
    """The status as JSON-ready data."""
    return {
        "last_full_sync": state.last_full_sync.isoformat() if state.last_full_sync else None,
        "links": {flow: len(state.table(flow)) for flow in flows},
        "conflicts": len(state.conflicts),
        "resolved_awaiting_sync": len(state.resolutions),
        "ambiguities": len(state.ambiguities),
        "cursors": {
            name: {"value": value, "age": _age(value, now)}
            for name, value in sorted(state.cursors.items())
        },
        "runs": [
            {
                "run_id": run.get("run_id"),
                "started": run.get("started"),
                "full": run.get("full"),
                "applied": (run.get("summary") or {}).get("applied"),
                "failed": (run.get("summary") or {}).get("failed"),
                "interrupted": bool(run.get("interrupted")),
            }
            for run in runs
        ],
    }


def render_status(data: Mapping[str, Any], now: datetime) -> None:
    """Print the status as tables."""
    console = stdout_console()
    running = data.get("running")
    if running:
        pid = running["pid"] if running["pid"] is not None else "unknown"
        console.print(
            Text(
                f"A run is in progress: pid {pid}, since {running['since']}"
                f" ({_age(running['since'], now)})"
            )
        )
    runs = Table(title="Last runs")
    for column in ("run", "started", "full", "applied", "failed"):
        runs.add_column(column)
    for run in data["runs"]:
        runs.add_row(
            str(run["run_id"]),
            f"{run['started']} ({_age(run['started'], now)})",
            "yes" if run["full"] else "no",
            f"{run['applied']} (interrupted)" if run.get("interrupted") else str(run["applied"]),
            str(run["failed"]),
        )
    if not data["runs"]:
        runs.add_row("(no runs yet)", "", "", "", "")
    console.print(runs)
    links = Table(title="Links per flow")
    links.add_column("flow")
    links.add_column("links", justify="right")
    for flow, count in data["links"].items():
        links.add_row(flow, str(count))
    console.print(links)
    cursors = Table(title="Cursors")
    cursors.add_column("cursor")
    cursors.add_column("age")
    for name, cursor in data["cursors"].items():
        cursors.add_row(name, cursor["age"])
    console.print(cursors)
    console.print(
        Text(
            f"Last full sync: {data['last_full_sync'] or 'never'}"
            f" ({_age(data['last_full_sync'], now)})\n"
            f"Conflicts waiting for a person: {data['conflicts']}"
            f" ({data['resolved_awaiting_sync']} resolved, applied on the next sync)\n"
            f"Ambiguities waiting for a person: {data['ambiguities']}"
        )
    )


def link_data(link: Link) -> dict[str, Any]:
    """One link as JSON-ready data."""
    return attrs.asdict(link)


class _RateColumn(ProgressColumn):
    """Records per second of a bar (blank until rich has seen it move)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


@attrs.define
class ProgressObserver:
    """Shows a run's phases: progress bars on a terminal, plain lines on stderr otherwise."""

    console: Console
    live: bool
    _progress: Progress | None = None
    _tasks: dict[str, TaskID] = attrs.field(factory=dict)
    _logged_tenth: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    def for_stderr(cls, enabled: bool = True) -> ProgressObserver:
        """Bars when stderr is a terminal (and ``enabled``), plain lines otherwise."""
        console = Console(file=sys.stderr)
        return cls(console, enabled and console.is_terminal)

    def __enter__(self) -> ProgressObserver:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _log_worthy(self, system: str, data: Mapping[str, object]) -> bool:
        """Whether a progress event gets a log line. Progress moves with every bulk call (and
        every PowerOffice request), so a line says the first, each tenth of the way, the end."""
        done, total = int(str(data.get("done", 0))), int(str(data.get("total", 0)))
        tenth = 10 * done // total if total else 10
        if tenth == self._logged_tenth.get(system) and done < total:
            return False
        self._logged_tenth[system] = tenth
        return True

    def event(self, name: str, data: Mapping[str, object]) -> None:
        """Advance the bar of the phase the event belongs to, or print it as a line."""
        system = str(data.get("system", ""))
        if self._progress is None:
            if name == "apply.progress" and not self._log_worthy(system, data):
                return
            # Through the logger, so ``--log-format json`` keeps stderr pure JSON lines.
            structlog.get_logger().info(name, **{k: v for k, v in data.items() if k != "summary"})
            return
        progress = self._progress
        if name == "read.start":
            self._tasks[f"read:{system}"] = progress.add_task(f"read {system}", total=None)
        elif name == "read.done":
            task = self._tasks.get(f"read:{system}")
            count = int(str(data.get("count", 0)))
            if task is not None:
                progress.update(task, total=count, completed=count)
        elif name == "apply.start":
            total = int(str(data.get("total", 0)))
            self._tasks[f"apply:{system}"] = progress.add_task(f"write {system}", total=total)
        elif name == "apply.progress":
            task = self._tasks.get(f"apply:{system}")
            if task is not None:
                progress.update(task, completed=int(str(data.get("done", 0))))
        elif name == "apply.done":
            task = self._tasks.get(f"apply:{system}")
            if task is not None:
                done = int(str(data.get("applied", 0))) + int(str(data.get("failed", 0)))
                progress.update(task, completed=done)
