"""The one JSON shape of plans and run reports (docs/json.md).

``plan --json`` and ``sync --json`` print it, and every state store keeps it in its run log:
one cattrs converter makes it, so the three cannot drift apart. The state stores' JSON-kept
values (held conflicts, ambiguities, journal entries) go through the same converter, so a
conflict reads the same in the run log, in ``conflicts --json`` and in the state file.

``talkcore`` never imports cattrs (the architecture's one rule), so the converter lives at the
edge: the engine hands the store a ``RunReport`` value and the store turns it into this shape.

The shape is versioned by ``FORMAT`` (the ``format`` field): adding a field keeps the number;
renaming, removing or changing the meaning of one raises it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from talkcore.engine import RunReport
from talkcore.plan import ITEM_KINDS, Create, PendingId, Plan, PlanItem, WriteValue
from talkcore.records import RecordKey

FORMAT = 1
"""The version of the plan/report JSON shape (its ``format`` field)."""

_TYPES: Mapping[str, type] = {name: cls for cls, name in ITEM_KINDS.items()}

_RECORD_KIND = override(rename="record_kind")
"""``type`` is the item's type, so a create's record kind (``Create.kind``) is ``record_kind``
and no key means two things."""


class ReportFormatError(ValueError):
    """JSON that is not a plan or report of this format; the message names the item and field."""


def _converter() -> cattrs.Converter:
    """The converter: record keys as ``system:kind:id``, times as ISO 8601, tagged plan items."""
    conv = cattrs.Converter()
    # Enum members as their plain strings: cattrs would pass a StrEnum through as itself.
    conv.register_unstructure_hook(enum.StrEnum, lambda member: member.value)
    conv.register_unstructure_hook(RecordKey, str)
    conv.register_structure_hook(RecordKey, lambda value, _: RecordKey.parse(value))
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))
    conv.register_unstructure_hook(PendingId, lambda pending: {"pending": pending.item_id})
    conv.register_structure_hook(PendingId, lambda value, _: PendingId(value["pending"]))
    conv.register_structure_hook_func(lambda t: t == WriteValue, _write_value(conv))
    for cls, name in ITEM_KINDS.items():
        if cls is Create:
            fields = make_dict_unstructure_fn(Create, conv, kind=_RECORD_KIND)
            conv.register_structure_hook(
                Create, make_dict_structure_fn(Create, conv, kind=_RECORD_KIND)
            )
        else:
            fields = make_dict_unstructure_fn(cls, conv)
            conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv))
        conv.register_unstructure_hook(cls, _tagged(name, fields))
    conv.register_structure_hook_func(lambda t: t == PlanItem, _plan_item(conv))
    conv.register_unstructure_hook(Plan, lambda plan: _plan_json(conv, plan.items))
    conv.register_structure_hook(Plan, _plan(conv))
    conv.register_unstructure_hook(RunReport, lambda report: _report_json(conv, report, None))
    return conv


def _tagged(name: str, fields: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """An item's hook: its ``type`` first, then every field."""
    return lambda item: {"type": name, **fields(item)}


def _write_value(conv: cattrs.Converter) -> Callable[[Any, Any], WriteValue]:
    """A written value: a string, ``null``, or ``{"pending": <create item id>}``."""

    def structure(value: Any, _: Any) -> WriteValue:
        if value is None or isinstance(value, str):
            return value
        return conv.structure(value, PendingId)

    return structure


def _plan_item(conv: cattrs.Converter) -> Callable[[Any, Any], PlanItem]:
    """A plan item, by its ``type``."""

    def structure(value: Any, _: Any) -> PlanItem:
        name = value.get("type") if isinstance(value, Mapping) else None
        cls = _TYPES.get(str(name))
        if cls is None:
            raise ReportFormatError(f"unknown type {name!r} (this talksync reads format {FORMAT})")
        item: PlanItem = conv.structure(value, cls)
        return item

    return structure


def _plan_json(conv: cattrs.Converter, items: tuple[PlanItem, ...]) -> dict[str, Any]:
    return {"format": FORMAT, "items": conv.unstructure(items, tuple[PlanItem, ...])}


def _plan(conv: cattrs.Converter) -> Callable[[Any, Any], Plan]:
    """A plan from its JSON, or from a whole report's (the other keys are not the plan's)."""

    def structure(value: Any, _: Any) -> Plan:
        found = value.get("format") if isinstance(value, Mapping) else None
        if found != FORMAT:
            raise ReportFormatError(f"plan JSON of format {found!r}; this talksync reads {FORMAT}")
        return Plan(
            tuple(_structure_item(conv, index, item) for index, item in enumerate(value["items"]))
        )

    return structure


def _structure_item(conv: cattrs.Converter, index: int, value: Any) -> PlanItem:
    """Item ``index`` of a plan; an error names it (position, type and id) and the field."""
    try:
        item: PlanItem = conv.structure(value, PlanItem)  # type: ignore[arg-type]
    except (cattrs.BaseValidationError, ReportFormatError) as exc:
        where = f"items[{index}] ({value.get('type')} {value.get('id')})"
        if isinstance(exc, ReportFormatError):
            raise ReportFormatError(f"{where}: {exc}") from None
        # cattrs names the attribute; the JSON key of a create's record kind is renamed.
        messages = [
            re.sub(r"\)\.kind\b", ").record_kind", message)
            for message in cattrs.transform_error(exc, path=where)
        ]
        raise ReportFormatError("; ".join(messages)) from None
    return item


def _report_json(conv: cattrs.Converter, report: RunReport, flow: str | None) -> dict[str, Any]:
    items = tuple(item for item in report.plan if flow is None or item.flow == flow)
    return {
        "format": FORMAT,
        "run_id": report.run_id,
        "started": conv.unstructure(report.started),
        "finished": conv.unstructure(report.finished),
        "full": report.full,
        "dry_run": report.dry_run,
        "interrupted": report.interrupted,
        "flow": flow,
        "summary": {
            **Plan(items).summary(),
            "applied": len(report.applied),
            "failed": len(report.failures),
            "writes": report.planned_writes,
            "read_problems": len(report.problems),
        },
        "items": _plan_json(conv, items)["items"],
        "failures": [
            {"item": result.item_id, "error": conv.unstructure(result.error)}
            for result in report.failures
        ],
        "problems": conv.unstructure(report.problems),
        "reconciled": list(report.reconciled),
    }


CONVERTER = _converter()
"""The one converter of plan and report JSON (and of the stores' JSON-kept values)."""


def report_json(report: RunReport, flow: str | None = None) -> dict[str, Any]:
    """The run report as JSON-ready data: what ``sync --json`` prints and the run log keeps.

    With ``flow`` the items, and the item counts of the summary, are that flow's only.
    """
    return _report_json(CONVERTER, report, flow)


def item_json(item: PlanItem) -> dict[str, Any]:
    """One plan item as JSON-ready data: its ``type``, then every field."""
    data: dict[str, Any] = CONVERTER.unstructure(item, PlanItem)
    return data


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    """The plan of a plan or report JSON (``plan --json``, ``sync --json``, a run-log entry).

    Raises ``ReportFormatError`` naming the item and field when ``data`` is not one.
    """
    try:
        plan: Plan = CONVERTER.structure(data, Plan)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReportFormatError(f"not a plan: {type(exc).__name__}: {exc}") from None
    return plan
