"""Layering: no import cycles among fractald's modules, and the daemon is only the composition root.

The graph counts every import (top level, inside functions, under
TYPE_CHECKING; `tests/import_graph.py`). A cycle means two modules cannot
be understood, tested or changed apart; the shell's cycle (actors <->
control <-> daemon, 13 modules) was removed by handing each actor narrow
dependencies (`fractald/shell_deps.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import cycles, import_graph, path_between

import fractald

PACKAGE = Path(fractald.__file__).parent

# Cycles that predate this test, each in an area another change owns. A cycle found must lie
# inside one of these (so none may grow or appear); delete an entry when its cycle is gone.
KNOWN_CYCLES: dict[str, frozenset[str]] = {
    # The engine's driver and its deciders call each other (issue 11: the deciders should
    # read state and return events, never reach back into the driver).
    "engine driver <-> deciders": frozenset(
        {
            "fractald.core.execution._engine_apply",
            "fractald.core.execution._engine_core",
            "fractald.core.execution.decide_brackets",
            "fractald.core.execution.decide_breakers",
            "fractald.core.execution.decide_report",
            "fractald.core.execution.evolve",
        }
    ),
}

# Modules that must never import the daemon: they receive what they need instead.
NOT_THE_DAEMON = ("fractald.actors.", "fractald.control.", "fractald.risk_overrides")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE)


def _describe(graph: dict[str, set[str]], cycle: frozenset[str]) -> str:
    first = min(cycle)
    back = next(m for m in sorted(cycle) if first in graph[m])
    chain = path_between(graph, first, back) + [first]
    return f"{len(cycle)} modules: {', '.join(sorted(cycle))}\n  e.g. {' -> '.join(chain)}"


def test_no_new_import_cycle(graph: dict[str, set[str]]) -> None:
    unexplained = [
        c for c in cycles(graph) if not any(c <= known for known in KNOWN_CYCLES.values())
    ]
    assert not unexplained, "import cycles among fractald modules:\n" + "\n".join(
        _describe(graph, c) for c in unexplained
    )


def test_the_shell_has_no_cycle(graph: dict[str, set[str]]) -> None:
    """Actors, control, the daemon and the config/pipeline factory sit in no cycle at all."""
    shell = (
        "fractald.actors.",
        "fractald.control.",
        "fractald.daemon",
        "fractald.pipeline_factory",
    )
    caught = [c for c in cycles(graph) if any(m.startswith(shell) for m in c)]
    assert not caught, "\n".join(_describe(graph, c) for c in caught)


def test_no_actor_or_command_imports_the_daemon(graph: dict[str, set[str]]) -> None:
    offenders = sorted(
        m for m, deps in graph.items() if m.startswith(NOT_THE_DAEMON) and "fractald.daemon" in deps
    )
    assert not offenders, f"these import fractald.daemon (hand them what they need): {offenders}"


def _write(root: Path, name: str, text: str) -> None:
    path = root / (name.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_graph_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The checker itself can fail: a cycle closed only by a TYPE_CHECKING or a lazy import."""
    _write(tmp_path, "pkg.__init__", "")
    _write(tmp_path, "pkg.a", "from pkg.b import thing\n")
    _write(
        tmp_path,
        "pkg.b",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\nthing = 1\n",
    )
    _write(tmp_path, "pkg.c", "def f():\n    from . import a\n    return a\n")
    _write(tmp_path, "pkg.d", "import pkg.a\n")  # outside the cycle
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b", "pkg.c"})]
    assert path_between(graph, "pkg.a", "pkg.c") == ["pkg.a", "pkg.b", "pkg.c"]
