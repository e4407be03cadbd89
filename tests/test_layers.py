"""The house's layers: each part imports only the parts below it, never one above."""

from __future__ import annotations

import ast
from pathlib import Path

import podactors

PACKAGE = Path(podactors.__file__).parent

LAYERS: list[set[str]] = [
    {"errors", "items", "fileio"},
    {"protocol", "actor", "manifest", "store"},
    {"fanout", "llm"},
    {"tools", "handle", "testing"},
    {"agent"},
    {"compaction", "server", "client"},
    {"runtime"},
    {"cli", "__init__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(path: Path) -> str:
    """The top-level part (module or package) of ``path`` inside the package."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The podactors parts ``path`` imports."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "podactors" and len(pieces) > 1 and pieces[1] in RANK:
                parts.add(pieces[1])
    return parts


def test_every_part_has_a_layer() -> None:
    found = {part_of(path) for path in PACKAGE.rglob("*.py")}
    assert found <= set(RANK), f"parts without a layer: {found - set(RANK)}"


def test_nothing_imports_upward_or_sideways() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        part = part_of(path)
        for imported in imported_parts(path) - {part}:
            if RANK[imported] >= RANK[part]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert wrong == []


def test_the_handle_the_server_the_client_and_the_terminal_never_import_the_runtime() -> None:
    for relative in ("handle.py", "server.py", "client.py", "cli/terminal.py"):
        assert "runtime" not in imported_parts(PACKAGE / relative), relative
