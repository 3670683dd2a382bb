"""The entrypoint, checked once before any run starts: Python text that compiles and binds `run`.

Without this check, an entrypoint with a syntax error, without `run()`, or that is not
Python at all (a shell script, a binary) fails every run of the batch, one by one. It is
read and compiled, never executed (importing it could start work or fail on the host
planning, not the worker); `run` counts as defined when the module binds the name at its
top level (a def, an assignment, an import, also under `if`/`try`), or imports `*`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from qaflow.errors import UsageError

_FIX = "Fix it, point `project.entrypoint` in qaboard.yaml at your Python file, or use `type: script` batches."


def check_entrypoint(path: Path) -> None:
    """Refuse an entrypoint that cannot give `run(context)` (UsageError naming file and line)."""
    if not path.is_file():
        raise UsageError(
            f"The entrypoint {str(path)!r} does not exist. Create it with a `run(context)` function "
            "(`qa init` writes a sample), set `project.entrypoint` in qaboard.yaml, or give a command: "
            "qa run -i INPUT 'echo \"{input_path} => {output_dir}\"'."
        )
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read the entrypoint {str(path)!r}: {exc.strerror}.") from None
    if b"\0" in source:
        raise UsageError(f"The entrypoint {path} is a binary file, not Python. {_FIX}")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        raise UsageError(
            f"{where}: the entrypoint is not valid Python: {exc.msg}. {_FIX}"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise UsageError(f"The entrypoint {path} is not valid Python: {exc}. {_FIX}") from None
    if not _binds(tree.body, "run"):
        raise UsageError(
            f"The entrypoint {path} defines no `run` function: qaflow calls `run(context)` once per "
            "run. Add `def run(context): ...` that returns the run's metrics (a dict), or set "
            "`project.entrypoint` to the file that defines it."
        )


def _binds(body: list[ast.stmt], name: str) -> bool:
    """Whether top-level statements (and the blocks of if/try/with/for at top level) bind name."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if alias.name == "*" or bound == name:
                    return True
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                return True
        blocks = [getattr(node, field, []) for field in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(node, "handlers", [])]
        if isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While) and any(
            _binds(block, name) for block in blocks
        ):
            return True
    return False
