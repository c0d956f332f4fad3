"""The layout stays what docs/architecture.md says: no import cycles, small modules, old paths warn."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), imports anywhere in a module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_import_cycles__none_in_queueprio_or_converters() -> None:
    # Function-local imports count; imports under ``if TYPE_CHECKING:`` don't (they never run).
    graph = grimp.build_graph("queueprio", "converters", exclude_type_checking_imports=True)
    assert import_cycles(graph) == []


def test_import_cycles__the_check_sees_a_cycle_made_by_function_local_imports() -> None:
    # Control: the same check on a graph with one back edge finds the loop.
    graph = grimp.build_graph("queueprio", exclude_type_checking_imports=True)
    graph.add_import(importer="queueprio.models.querysets", imported="queueprio.submission.submit")
    assert any("queueprio.models.querysets" in group for group in import_cycles(graph))


@pytest.mark.parametrize("package", ["queueprio", "converters"])
def test_module_size__no_module_over_400_lines(package: str) -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize(
    ("old", "name"),
    [("queueprio.routing", "route_task"), ("queueprio.routing", "priority_queue"), ("queueprio.tasks", "PriorityTask")],
)
def test_old_paths__still_work_with_a_deprecation_warning(old: str, name: str) -> None:
    sys.modules.pop("queueprio.routing", None)  # its warning is raised on import

    def use() -> object:
        return getattr(importlib.import_module(old), name)

    with pytest.warns(DeprecationWarning, match="moved|deprecated"):
        value = use()
    assert callable(value)
