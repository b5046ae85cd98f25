"""The house rules, read from the source: no import cycles, rendering only in ``cli/``, small
modules.

Every import counts, ``if TYPE_CHECKING:`` and function-local ones included: a cycle closed by a
type-only import is still two concepts split in the wrong place.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cname_flow"

#: The largest module the house allows, in lines.
MAX_MODULE_LINES = 450
#: The most modules directly in ``cname_flow/`` (``__init__`` and ``__main__`` included).
MAX_TOP_LEVEL_MODULES = 15


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """Every package module ``path`` imports.

    ``from pkg import sub`` counts as an import of the submodule ``pkg.sub`` only; ``from pkg
    import name`` (a name defined in ``pkg/__init__.py``) as an import of ``pkg``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            subs = [f"{base}.{a.name}" for a in node.names]
            yield from (s for s in subs if s in known)
            if base in known and any(s not in known for s in subs):
                yield base


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(path, name, known)) - {name} for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_cycles_are_found_by_the_checker_itself() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle_type_checking_imports_included() -> None:
    assert cycles(import_graph()) == []


def test_the_graph_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    fake = tmp_path / "steps.py"
    fake.write_text("from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n"
                    "    from . import model\n"
                    "    from .context import StepContext\n"
                    "def late() -> None:\n"
                    "    from cname_flow.workflow import Runner\n")
    known = {"cname_flow.workflow", "cname_flow.workflow.model", "cname_flow.workflow.context",
             "cname_flow.workflow.steps"}
    assert set(imported(fake, "cname_flow.workflow.steps", known)) == {
        "cname_flow.workflow", "cname_flow.workflow.model", "cname_flow.workflow.context"}


@pytest.mark.parametrize("library", ["click", "rich"])
def test_only_the_cli_renders(library: str) -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith("cname_flow.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == library or n.startswith(library + ".") for n in names):
                offenders.append(name)
    assert offenders == []


def test_no_module_is_over_the_house_limit() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_the_top_level_keeps_few_modules() -> None:
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(top)


def test_the_library_logs_only_through_its_silent_loggers() -> None:
    """``structlog.get_logger`` prints to stdout while nobody configured structlog: outside the
    CLI every module logs through :func:`cname_flow.logs.get_logger` instead."""
    offenders = []
    for name, path in modules().items():
        if name.startswith("cname_flow.cli") or name == "cname_flow.logs":
            continue
        if "structlog.get_logger(" in path.read_text(encoding="utf-8"):
            offenders.append(name)
    assert offenders == []
