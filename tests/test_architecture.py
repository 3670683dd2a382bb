"""The package's design holds: no import cycle, no phase importing a higher one, small modules.

The import graph is read from the source with `ast`, function-level and TYPE_CHECKING
imports included: an import hidden in a function to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "qaflow"

# The phases, lowest first: a module may import its own phase and the phases before it.
# At the bottom, `errors` and `interpreter` (process-wide switches); on top, `qaflow` itself
# (the facade: __init__, __main__, api).
LAYERS = [
    "errors",
    "interpreter",
    "config",
    "worker",
    "plan",
    "store",
    "execution",
    "results",
    "optimize",
    "web",
    "cli",
    "qaflow",
]

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The qaflow modules `path` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, set(known)) for name, path in known.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("api", "__main__"):
        return LAYERS.index("qaflow")
    return LAYERS.index(parts[1])


def test_every_module_belongs_to_a_phase():
    for name in modules():
        parts = name.split(".")
        assert len(parts) == 1 or parts[1] in LAYERS or parts[1] in ("api", "__main__"), name


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    reach = {name: reachable(edges, name) for name in edges}
    groups = {
        tuple(sorted(other for other in reach[name] if name in reach[other]))
        for name in edges
        if name in reach[name]
    }
    return sorted(list(group) for group in groups)


def test_the_import_graph_has_no_cycle():
    edges = graph()
    assert cycles(edges) == []
    graphlib.TopologicalSorter(edges).prepare()  # the same, said by the standard library


def test_no_phase_imports_a_higher_one():
    upward = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_modules_and_classes_stay_small():
    too_big = []
    for name, path in modules().items():
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"module {name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_big.append(f"class {name}.{node.name}: {size} lines")
    assert too_big == []


def test_every_module_says_what_it_owns():
    undocumented = [
        name
        for name, path in modules().items()
        if "migrations" not in name and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert undocumented == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The graph is only as good as its reader: a hidden import is an edge."""
    package = tmp_path / "qaflow"
    (package / "plan").mkdir(parents=True)
    (package / "plan" / "__init__.py").write_text("")
    (package / "plan" / "a.py").write_text(
        "def f():\n    from . import b\n    import qaflow.execution\n"
    )
    (package / "plan" / "b.py").write_text("")
    known = {"qaflow.plan.a", "qaflow.plan.b", "qaflow.execution", "qaflow.plan"}
    found = imported("qaflow.plan.a", package / "plan" / "a.py", known)
    assert found == {"qaflow.plan.b", "qaflow.execution"}
    assert layer("qaflow.execution") > layer("qaflow.plan.a")
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e", "d"}}
    assert cycles(edges) == [["a", "b", "c"], ["e"]]
