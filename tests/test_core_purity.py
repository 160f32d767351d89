"""The functional core never imports trio or any I/O library and never reads the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "fractald" / "core"
FORBIDDEN_MODULES = {"trio", "httpx", "websockets", "socket", "sqlite3", "asyncio", "structlog", "requests"}
FORBIDDEN_CALLS = {
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "perf_counter"),
    ("time", "sleep"), ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
    ("date", "today"),
}


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_has_modules() -> None:
    assert len(core_files()) >= 2


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    problems.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module == "time" or node.module == "datetime":
                for alias in node.names:
                    if alias.name in {"time", "time_ns", "monotonic", "perf_counter", "sleep"}:
                        problems.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else (
                owner.attr if isinstance(owner, ast.Attribute) else None)
            if owner_name and (owner_name, node.func.attr) in FORBIDDEN_CALLS:
                problems.append(f"line {node.lineno}: {owner_name}.{node.func.attr}()")
    assert not problems, f"{path.name} is not pure: " + "; ".join(problems)


def test_purity_check_catches_a_violation(tmp_path: Path) -> None:
    bad = "import trio\nimport time\nx = time.time()\n"
    tree = ast.parse(bad)
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "trio"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert found and calls
