"""Help text and the options shared by every command module."""

from __future__ import annotations

from typing import Annotated

import typer

AsJson = Annotated[bool, typer.Option("--json", help="Print as JSON.")]
"""The ``--json`` flag: plan, sync, status and every listing print their data with it."""

FullRead = Annotated[
    bool, typer.Option("--full", help="Read everything, not only changes (a full reconcile).")
]
"""The ``--full`` flag of plan and sync."""

WholeRead = Annotated[
    bool,
    typer.Option(
        "--whole",
        help="A full reconcile that plans every record over both whole mirrors, not only what"
        " differs from the saved state (the safety net; memory grows with the data).",
    ),
]
"""The ``--whole`` flag of plan and sync (implies ``--full``)."""

OnlyFlow = Annotated[
    str | None,
    typer.Option("--flow", metavar="FLOW", help="Show only this flow (ids: talksync dataflow)."),
]
"""The ``--flow`` filter of plan and the link listing."""

FlowId = Annotated[str, typer.Argument(help="The flow id (talksync dataflow lists them).")]
"""A command's FLOW argument."""

PowerOfficeId = Annotated[str, typer.Argument(help="The PowerOffice record id.")]
"""A command's POWEROFFICE_ID argument."""


def examples(*lines: str) -> str:
    """A help epilog of example invocations, one per line, kept as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
