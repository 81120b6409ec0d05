"""The dataflow as data, and the checklist document rendered from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from talkcore.dataflow import DEFAULT_DATAFLOW, Counterpart, render_checklist
from talkcore.records import Kind

WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_default_dataflow_is_the_four_flows_of_the_spec() -> None:
    shape = {
        (f.poweroffice_title, f.zendesk_title): (
            [(p.poweroffice, p.zendesk) for p in f.identity.properties] if f.identity else None,
            [(p.poweroffice, p.zendesk, p.datatype) for p in f.properties],
            f.counterpart,
        )
        for f in DEFAULT_DATAFLOW
    }
    assert shape == {
        ("Contact person", "User"): (
            [("emailAddress", "email")],
            [("emailAddress", "email", "string"), ("partyId", "organization_id", "string")],
            Counterpart.NOBODY,
        ),
        ("Customer (person)", "User"): ([("EmailAddress", "email")], [], Counterpart.NOBODY),
        ("Customer", "Organization"): (None, [("Name", "name", "string")], Counterpart.ZENDESK),
        ("Department", "Organization"): (None, [("Name", "name", "string")], Counterpart.ZENDESK),
    }
    organization_flows = [f.zendesk_kind is Kind.ORGANIZATION for f in DEFAULT_DATAFLOW]
    assert organization_flows == [True, True, False, False]  # organizations first


def test_rst_checklist_has_title_time_sections_and_list_tables() -> None:
    text = render_checklist(DEFAULT_DATAFLOW, generated=WHEN, markup="rst")
    lines = text.splitlines()
    assert "Dataflow" in lines[1] and "PowerOffice" in lines[1] and "Zendesk" in lines[1]
    assert lines[0] == lines[2] and set(lines[0]) == {"="}
    assert "2026-11-26T12:00:00+00:00" in text
    for title in (
        "Contact person to User",
        "Customer (person) to User",
        "Customer to Organization",
        "Department to Organization",
    ):
        i = lines.index(title)
        assert set(lines[i + 1]) == {"-"} and len(lines[i + 1]) == len(title)
    assert text.count(".. list-table::") == 2 + 4  # two identity tables, four property tables
    assert text.count("whichever side is edited") == 4
    assert text.count("Every record gets a counterpart") == 2
    assert '     - "string"' in text


def test_empty_property_table_keeps_its_header_row() -> None:
    text = render_checklist(DEFAULT_DATAFLOW, generated=WHEN, markup="rst")
    section = text.split("Customer (person) to User")[1].split("Customer to Organization")[0]
    last_table = section.split(".. list-table::")[-1]
    assert "* - PowerOffice property" in last_table and "Data type" in last_table
    assert "* - EmailAddress" not in last_table


def test_markdown_checklist_uses_headings_and_pipe_tables() -> None:
    text = render_checklist(DEFAULT_DATAFLOW, generated=WHEN, markup="markdown")
    assert text.startswith("# PowerOffice Go to Zendesk Support Dataflow")
    assert "## Contact person to User" in text
    assert "| partyId | organization_id | string |" in text  # people's view: no quotes
    assert "Generated" not in text  # and no time: the same bytes every run
    assert "Flow id: `contact-persons-users`" in text


def test_unknown_markup_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown markup"):
        render_checklist(DEFAULT_DATAFLOW, generated=WHEN, markup="html")


def test_the_readme_flow_table_is_the_dataflow() -> None:
    """The README's table of flows cannot drift: the same flows, in order, each with the
    synced properties (PowerOffice ⇄ Zendesk names) and whether counterparts are created."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## What is synced", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    assert [row[0].strip("| `") for row in rows] == list(DEFAULT_DATAFLOW.ids)
    for row, flow in zip(rows, DEFAULT_DATAFLOW, strict=True):
        synced = re.findall(r"`([^`]+)` ⇄ `([^`]+)`", row[4])
        assert synced == [(p.poweroffice, p.zendesk) for p in flow.properties], flow.id
        creates = flow.creates_in_zendesk or flow.creates_in_poweroffice
        assert (row[5].strip(" |") != "none") == creates, flow.id
