"""The package's layers point one way (../shared/ARCHITECTURE.md): config -> results -> data,
tasks, models, solvers -> train -> execution, search, measurements -> report -> api -> cli. Read
from the source with ``ast`` (nothing is imported): every ``import raybench...`` anywhere in
a module, a function's included, is an edge; an import under ``if TYPE_CHECKING`` is not (it
never runs)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raybench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported(path: Path, modules: set[str], text: str | None = None) -> set[str]:
    """The package's modules that ``path`` imports when it runs (``from raybench.x import y``
    names ``raybench.x.y`` where that is a module, else ``raybench.x``); ``text`` is read
    as though it were that module's source."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "raybench")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == "raybench":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8") if text is None else text))
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(p, modules) & modules for p in paths}


def test_nothing_outside_the_cli_imports_it() -> None:
    """The API is the layer under the CLI: the CLI calls it, never the reverse (the entry
    point ``python -m raybench`` is the one exception, being the CLI's door)."""
    graph = import_graph()
    assert "raybench.api" in graph and "raybench.cli.commands" in graph  # the walk sees them
    assert "raybench.api" in graph["raybench.cli.commands"]  # and their imports
    outside = {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if target.startswith("raybench.cli")
        and not module.startswith("raybench.cli")
        and module != "raybench.__main__"
    }
    assert not outside, f"imports of the CLI from below it: {sorted(outside)}"


def test_the_walk_finds_a_planted_import() -> None:
    """The walk reads imports inside functions and relative ones, and skips type-only ones."""
    source = PACKAGE / "report" / "planted.py"
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from raybench.search import sweep\n"
        "def f():\n    from ..cli import commands\n    import raybench.api\n"
    )
    modules = {"raybench.cli", "raybench.cli.commands", "raybench.api", "raybench.search.sweep"}
    found = imported(source, modules, code)
    assert found == {"raybench.cli.commands", "raybench.api"}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def test_circles_finds_each_and_only_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    """Neither the API and the CLI, nor the store and the search, nor a package and the
    modules it dispatches to import each other."""
    assert circles(import_graph()) == []


def test_results_depend_on_declarations_never_on_training_or_search() -> None:
    """``results/`` (the store and its schema) reads what training declares, without the
    training stack: no module of it imports the trainer, the solvers, the search or
    anything above it, even inside a function (only under ``TYPE_CHECKING``, for types)."""
    graph = import_graph()
    above = ("raybench.train", "raybench.solvers", "raybench.search", "raybench.execution",
             "raybench.report", "raybench.api", "raybench.cli", "raybench.measurements",
             "raybench.assumptions")  # fmt: skip
    results = {m: deps for m, deps in graph.items() if m.startswith("raybench.results")}
    assert len(results) >= 8  # the walk sees the package
    for module, deps in results.items():
        wrong = sorted(d for d in deps if d.startswith(above))
        assert not wrong, f"{module} imports {wrong}"


def test_measurements_never_import_the_report() -> None:
    """Issue 47: measurements measure and store; report/ renders them (its measurement
    tables, bench's, A/B's and a study's included). The import goes one way."""
    graph = import_graph()
    back = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("raybench.measurements")
        for target in targets
        if target.startswith("raybench.report")
    }
    assert not back, sorted(back)
