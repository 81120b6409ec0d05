"""Help text shared by every command module."""

from __future__ import annotations


def examples(*lines: str) -> str:
    """A help epilog of example invocations, one per line, kept as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
