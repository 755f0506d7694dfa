"""Where the domain's rules live, checked on the source (parsed with ast, nothing imported or run):
logic/ depends on ports, not adapters, and takes the time as an argument; the image formats are named in
media/formats.py only; the task states are listed in leyline/states.py only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from leyline.states import TaskState

PACKAGE = Path(__file__).parents[2] / "functions" / "leyline"
LOGIC = PACKAGE / "logic"
MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"WEBP")
MIME_TYPES = {"image/png", "image/jpeg", "image/webp"}


def _modules(folder: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path.relative_to(PACKAGE), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_logic_imports_no_adapter():
    # Given every module of leyline.logic
    # Then none imports leyline.adapters (or boto3): they are written against logic/ports.py
    offending = [
        f"{path}: {name}"
        for path, tree in _modules(LOGIC)
        for name in _imported(tree)
        if name.split(".")[:2] == ["leyline", "adapters"] or name.split(".")[0] in {"boto3", "botocore"}
    ]
    assert offending == []


def test_logic_never_reads_the_clock_itself():
    # Given every module of leyline.logic, Then none calls utc_now() or datetime.now(): the time is passed in
    offending = [
        f"{path}:{node.lineno}"
        for path, tree in _modules(LOGIC)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in {"utc_now", "now"})
            or (isinstance(node.func, ast.Attribute) and node.func.attr in {"utc_now", "now", "utcnow"})
        )
    ]
    assert offending == []


def test_the_accepted_formats_are_named_in_media_formats_only():
    # Given every module of the package but media/formats.py
    # Then none holds a format's magic bytes or an accepted MIME type of its own
    offending = [
        f"{path}:{node.lineno} {node.value!r}"
        for path, tree in _modules(PACKAGE)
        if path != Path("media/formats.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and (
            (isinstance(node.value, bytes) and any(magic in node.value for magic in MAGIC))
            or (isinstance(node.value, str) and node.value in MIME_TYPES)
        )
    ]
    assert offending == []


def test_no_module_keeps_its_own_list_of_task_states():
    # Given every module of the package but states.py
    # Then no tuple, list or set literal names two states or more (e.g. a copy of the final states)
    states = {state.value for state in TaskState}
    offending = [
        f"{path}:{node.lineno}"
        for path, tree in _modules(PACKAGE)
        if path != Path("states.py")
        for node in ast.walk(tree)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set))
        and sum(isinstance(item, ast.Constant) and item.value in states for item in node.elts) >= 2
    ]
    assert offending == []
