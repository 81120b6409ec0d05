"""The one JSON shape of plans and run reports (adapters/reportjson.py, docs/json.md).

The law: a plan's JSON structures back to the same plan, for any item of any type and for the
plans the engine makes. And the shape is the documented one: every item type's fields are in
docs/json.md, with an example.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.reportjson import (
    CONVERTER,
    FORMAT,
    ReportFormatError,
    item_json,
    plan_from_json,
    report_json,
)
from talkcore.plan import ITEM_KINDS, FieldChange, Plan, PlanItem
from talkcore.policy import ConflictPolicy
from talkcore.records import Kind, RecordKey
from tests.report_support import busy_report

from .test_properties import EDIT, WORLD, edit, world_from

DOCS = Path(__file__).parents[2] / "docs" / "json.md"

keys = st.builds(RecordKey.of, st.sampled_from(list(Kind)), st.text(min_size=1, max_size=10))


def item_of(cls: type) -> st.SearchStrategy[Any]:
    """Any item of type ``cls``: every field drawn from its type, record keys well formed."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        hint = hints[field.name]
        if hint is RecordKey:
            fields[field.name] = keys
        elif hint == tuple[RecordKey, ...]:
            fields[field.name] = st.lists(keys, max_size=3).map(tuple)
        elif hint == tuple[FieldChange, ...]:
            fields[field.name] = st.lists(st.builds(FieldChange), max_size=3).map(tuple)
        elif hint is float:
            fields[field.name] = st.floats(allow_nan=False)  # NaN is not equal to itself
    return st.builds(cls, **fields)


items = st.one_of([item_of(cls) for cls in ITEM_KINDS])
plans = st.lists(items, max_size=8).map(lambda found: Plan(tuple(found)))


def through_json_text(data: object) -> Any:
    return json.loads(json.dumps(data, ensure_ascii=False))


def test_every_plan_item_type_has_a_json_type() -> None:
    assert set(ITEM_KINDS) == set(typing.get_args(PlanItem))


@given(plans)
def test_a_plans_json_round_trips_through_the_converter(plan: Plan) -> None:
    data = through_json_text(CONVERTER.unstructure(plan))
    assert data["format"] == FORMAT
    assert CONVERTER.structure(data, Plan) == plan
    assert plan_from_json(data) == plan


@given(WORLD, st.sampled_from(list(ConflictPolicy)), st.lists(EDIT, max_size=4))
def test_the_engines_plans_round_trip_as_the_report_prints_them(
    data: dict[str, Any], policy: ConflictPolicy, edits: list[tuple[str, int, Any]]
) -> None:
    world = world_from(data, policy)
    first = world.sync()
    for op in edits:
        edit(world, op)
    for report in (first, world.plan()):
        assert plan_from_json(through_json_text(report_json(report))) == report.plan


@given(items)
def test_an_item_names_its_type_first_and_no_key_means_two_things(item: PlanItem) -> None:
    data = item_json(item)
    assert next(iter(data)) == "type"
    assert data["type"] == ITEM_KINDS[type(item)]
    assert "kind" not in data  # a create's record kind is "record_kind"
    assert len(data) == 1 + len(attrs.fields(type(item)))


def test_a_report_is_one_shape_whether_planned_or_run_filtered_or_not() -> None:
    report = busy_report("r1")
    whole = report_json(report)
    one_flow = report_json(report, "customers-organizations")
    planned = report_json(attrs.evolve(report, dry_run=True, results=()))
    assert list(whole) == list(one_flow) == list(planned)
    assert whole["flow"] is None and one_flow["flow"] == "customers-organizations"
    assert [i["type"] for i in one_flow["items"]] == ["create", "conflict"]
    assert (one_flow["summary"]["update"], whole["summary"]["update"]) == (0, 1)
    assert one_flow["summary"]["failed"] == whole["summary"]["failed"] == 1
    assert whole["failures"] == [
        {
            "item": "update:contact-persons-users:zendesk:user:501",
            "error": {
                "code": "invalid",
                "message": "is not a member",
                "record": "zendesk user 501",
                "field": "organization_id",
                "retryable": False,
            },
        }
    ]
    assert whole["problems"] == [
        {
            "system": "zendesk",
            "kind": "user",
            "record_id": "502",
            "field": "email",
            "message": "not an e-mail",
        }
    ]
    assert whole == through_json_text(whole)  # JSON values only: nothing left to ``str``


def test_json_of_another_format_is_refused_naming_both() -> None:
    data = report_json(busy_report("r1")) | {"format": FORMAT + 1}
    with pytest.raises(ReportFormatError, match=f"format {FORMAT + 1}; this talksync reads 1"):
        plan_from_json(data)


def test_a_bad_item_is_refused_naming_the_item_and_the_field() -> None:
    data = through_json_text(report_json(busy_report("r1")))
    del data["items"][0]["record_kind"]
    data["items"][2]["type"] = "shrug"
    with pytest.raises(
        ReportFormatError,
        match=r"missing @ items\[0\] \(create create:customers-organizations:1\)\.record_kind",
    ):
        plan_from_json(data)
    del data["items"][0]
    with pytest.raises(
        ReportFormatError, match=r"items\[1\] \(shrug conflict:.*unknown type 'shrug'"
    ):
        plan_from_json(data)


def _documented_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_docs_show_an_example_of_every_item_type_with_every_field() -> None:
    examples = _documented_examples()
    documented = {example["type"]: example for example in examples if "type" in example}
    assert set(documented) == set(ITEM_KINDS.values())
    for cls, name in ITEM_KINDS.items():
        example = documented[name]
        assert CONVERTER.structure(example, cls) is not None  # a valid item of that type
        assert list(example) == list(item_json(CONVERTER.structure(example, cls)))


def test_docs_show_the_report_with_every_field_and_the_format_in_use() -> None:
    (report,) = [example for example in _documented_examples() if "run_id" in example]
    assert report["format"] == FORMAT
    assert list(report) == list(report_json(busy_report("r1")))
    assert list(report["summary"]) == list(report_json(busy_report("r1"))["summary"])
    assert report_json(busy_report("r1"))["items"] == report["items"]
