"""``talksync demo``: a sync against seeded local sandboxes (the body is the lead's to write)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(state: Path | None, size: int, seed: int) -> None:
    """Seed both sandboxes with ``size`` records per kind (``seed``), sync, and show the result."""
    typer.echo("error: the demo is not available yet", err=True)
    raise typer.Exit(2)
