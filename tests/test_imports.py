"""No import cycles among mer_fastai's modules.

Every import statement counts, those inside functions too (a late import only hides a cycle from the
interpreter: the two modules still depend on each other and cannot be understood or moved apart);
only `if TYPE_CHECKING:` blocks are left out, since they never run. A package's `__init__` is no edge:
importing `mer_fastai.x` loads it first anyway.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "mer_fastai"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_statements(node: ast.AST):
    """Every import statement below `node`, `if TYPE_CHECKING:` blocks excluded."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for block in child.orelse for n in import_statements(ast.Module([block], [])))
        else:
            yield from import_statements(child)


def imported(name: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The package modules one import statement loads (a package's `__init__` left out: not a cycle edge)."""
    if isinstance(node, ast.Import):
        targets = {alias.name for alias in node.names}
    else:
        base = name if is_package else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = ".".join(p for p in (base if node.level else "", node.module or "") if p)
        targets = {source} | {f"{source}.{alias.name}" for alias in node.names}
    return {t for t in targets if t in modules and not (PACKAGE / Path(*t.split(".")[1:]) / "__init__.py").exists()}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {
        name: set().union(*(imported(name, p.name == "__init__.py", n, modules) for n in import_statements(
            ast.parse(p.read_text()))))
        for name, p in paths.items()
    }  # fmt: skip


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in graph.get(node, ()):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_reads_relative_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert "mer_fastai.errors" in graph["mer_fastai.training.config"]  # `from ..errors import MerError`
    assert "mer_fastai.training.options" in graph["mer_fastai.cli.options"]  # `from ..training.options import ...`
    assert "mer_fastai.api.training" in graph["mer_fastai.cli.train"]  # inside the command function


def test_no_import_cycles():
    assert cycles(import_graph()) == []
