"""The one rule: talkcore never does I/O and never imports the outer layers."""

from __future__ import annotations

import ast
from pathlib import Path

import talkcore

FORBIDDEN = {
    "httpx",
    "cattrs",
    "structlog",
    "typer",
    "rich",
    "sqlite3",
    "socket",
    "requests",
    "adapters",
    "cli",
    "os",
    "subprocess",
    "pathlib",
    "io",
    "urllib",
    "http",
    "shutil",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_talkcore_imports_nothing_that_does_io() -> None:
    package = Path(talkcore.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 8
    offenders = {
        path.name: sorted(imported_roots(path) & FORBIDDEN)
        for path in modules
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_purity_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import httpx\nfrom cli.main import app\n", encoding="utf-8")
    assert imported_roots(bad) & FORBIDDEN == {"httpx", "cli"}
