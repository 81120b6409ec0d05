"""``--help`` of every command, compared with a stored snapshot so help changes show in review.

The snapshots are ``tests/unit/snapshots/help-<command path>.txt``, rendered at a fixed width
without colour. After a deliberate change, rewrite them and review the diff::

    TALKSYNC_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_help_snapshots.py

A command without a snapshot fails until one is written the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from cli.main import app

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TALKSYNC_UPDATE_SNAPSHOTS") == "1"
WIDTH = 100


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that reach it (the root is ``()``)."""

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        commands = getattr(command, "commands", None) or {}
        for name in sorted(commands):
            yield from walk(commands[name], (*path, name))

    yield from walk(typer.main.get_command(app), ())


def render_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        app,
        [*path, "--help"],
        env={"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"},
        terminal_width=WIDTH,
    )
    assert result.exit_code == 0, result.output
    # Trailing spaces are padding of the panels, not content; they only make diffs noisy.
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"


PATHS = list(command_paths())


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "talksync")
def test_help_matches_its_snapshot(path: tuple[str, ...]) -> None:
    text = render_help(path)
    snapshot = SNAPSHOTS / f"help-{'-'.join(path) or 'talksync'}.txt"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(text, encoding="utf-8")
    assert snapshot.is_file(), (
        f"no help snapshot for {' '.join(('talksync', *path))}: write it with"
        " TALKSYNC_UPDATE_SNAPSHOTS=1 and review it"
    )
    assert text == snapshot.read_text(encoding="utf-8"), (
        f"the help of {' '.join(('talksync', *path))} changed; if meant, rewrite the snapshot"
        " with TALKSYNC_UPDATE_SNAPSHOTS=1 and review the diff"
    )


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "talksync")
def test_help_has_no_value_placeholder_on_flags(path: tuple[str, ...]) -> None:
    assert "<bool>" not in render_help(path)


def test_exit_codes_are_listed_once() -> None:
    helps = {path: render_help(path) for path in PATHS}
    listing = [path for path, text in helps.items() if "Exit codes:" in text]
    assert listing == [()]
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"\n   {code} " in helps[()] or f"\n  {code} " in helps[()], code


def test_snapshots_are_only_of_commands_that_exist() -> None:
    names = {f"help-{'-'.join(p) or 'talksync'}.txt" for p in PATHS}
    stale = sorted(p.name for p in SNAPSHOTS.glob("help-*.txt") if p.name not in names)
    assert stale == [], f"snapshots of commands that are gone: {stale}"
