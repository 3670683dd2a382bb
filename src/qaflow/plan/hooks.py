"""QA-Board's planning hooks of the entrypoint: `metadata()` for `only:`/`exclude:`, and
`iter_inputs()` to find a batch's inputs itself.

- `metadata(input_path, database, rel_input_path) -> dict`: with `only:` (or `exclude:`) in a
  batch, an input found there is kept only if its metadata match (or do not match).
- `iter_inputs(path, database, only, exclude, inputs_settings)`: yields
  `{"input_path", "database", "metadata"}` for a location of a batch, instead of qaflow's
  folder and glob expansion (its results are filtered by only/exclude once more).

The entrypoint is imported for planning only when it is needed: its source defines
iter_inputs(), or defines metadata() and a batch has `only:`/`exclude:` (a text check first);
once per file version. (metadata() itself lives in `qaflow.worker.metadata`: the worker calls
it too, for each run's `context.input_metadata`.) Matching follows QA-Board's rules: a list
matches if one item does, strings are case-insensitive wildcards or `>=N`-style comparisons
with numbers, mappings match key by key, other values by equality.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import numbers
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from qaflow.config.project import Project
from qaflow.errors import BatchSpecError
from qaflow.worker.metadata import metadata_of

__all__ = ["entrypoint_hooks", "iter_inputs", "matches", "metadata_of"]

# path -> (mtime, defines iter_inputs, defines metadata, the module once imported)
_LOADED: dict[str, tuple[int, bool, bool, ModuleType | None]] = {}
_COMPARISON = re.compile(r"(==?|<=?|>=?)(.*)")


def entrypoint_hooks(project: Project, *, filtering: bool) -> ModuleType | None:
    """The entrypoint module if planning needs it: it defines iter_inputs(), or it defines
    metadata() and `filtering` (the batch has only:/exclude:); else None, and not imported."""
    path = project.entrypoint
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _LOADED.get(str(path))
    if cached is None or cached[0] != mtime:
        text = path.read_text(encoding="utf-8", errors="replace")
        cached = (mtime, "def iter_inputs" in text, "def metadata" in text, None)
    _, finds, describes, module = cached
    needed = finds or (filtering and describes)
    if needed and module is None:
        module = _import(path, project.root)
        cached = (mtime, finds, describes, module)
    _LOADED[str(path)] = cached
    return module if needed else None


def _import(path: Path, root: Path) -> ModuleType:
    for folder in (str(root), str(path.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("qaflow_planning_hooks", path)
    if spec is None or spec.loader is None:
        raise BatchSpecError(f"cannot import the entrypoint {path} for its planning hooks")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise BatchSpecError(
            f"importing the entrypoint {path} for its metadata()/iter_inputs() hooks failed: {type(exc).__name__}: {exc}. Fix the entrypoint."
        ) from None
    return module


def iter_inputs(
    hooks: ModuleType, location: str | None, database: Path, settings: dict[str, Any]
) -> Iterator[tuple[Path, Path]]:
    """(input path, database) of each input the entrypoint's iter_inputs() finds, filtered."""
    only, exclude = settings.get("only"), settings.get("exclude")
    try:
        for item in hooks.iter_inputs(location, database, only, exclude, settings):
            meta = item.get("metadata") or {}
            if (only and not matches(meta, only)) or (exclude and matches(meta, exclude)):
                continue
            yield Path(item["input_path"]), Path(item.get("database") or database)
    except BatchSpecError:
        raise
    except Exception as exc:
        raise BatchSpecError(
            f"the entrypoint's iter_inputs() failed on {location!r}: {type(exc).__name__}: {exc}"
        ) from None


def matches(value: Any, wanted: Any) -> bool:
    """QA-Board's `only:`/`exclude:` matching of metadata (see the module docstring)."""
    if isinstance(wanted, list):
        return any(matches(value, item) for item in wanted)
    if isinstance(wanted, dict):
        if wanted and not value:
            return False
        return all(matches(value.get(key, ""), item) for key, item in wanted.items())
    if isinstance(wanted, str):
        comparison = _COMPARISON.fullmatch(wanted)
        if comparison:
            if not isinstance(value, numbers.Real):
                return False
            operator, number = comparison.groups()
            try:
                limit, actual = float(number), float(value)
            except ValueError:
                return False
            return {
                "=": actual == limit,
                "==": actual == limit,
                ">=": actual >= limit,
                "<=": actual <= limit,
                ">": actual > limit,
                "<": actual < limit,
            }[operator]
        return isinstance(value, str) and fnmatch.fnmatch(value.casefold(), wanted.casefold())
    return bool(value == wanted)
