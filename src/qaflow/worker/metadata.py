"""QA-Board's `metadata(input_path, database, rel_input_path)` hook of the entrypoint.

It is called in two places, with the same arguments (the input's absolute path, its
database, its path relative to the database):
- when planning a batch with `only:`/`exclude:` (`qaflow.plan.hooks`), whose filters match
  the metadata; a failure there is an error of the batch (`BatchSpecError`);
- in the worker, before each run of an entrypoint that defines it, as QA-Board's `qa run`
  does: the result is `context.input_metadata` (and `context.obj["input_metadata"]`), without
  the keys starting with `_` and `input_path`/`rel_input_path`. A failure there is printed
  in the run's log and the run goes on with `{}`, as in QA-Board.
Entrypoints without `metadata` cost nothing: nothing is called.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from qaflow.errors import BatchSpecError

_HIDDEN = ("input_path", "rel_input_path")  # QA-Board adds then removes them


def metadata_of(hooks: ModuleType | None, path: Path, database: Path, rel: str) -> dict[str, Any]:
    """The input's metadata from the entrypoint's metadata() ({} without one)."""
    function = getattr(hooks, "metadata", None)
    if not callable(function):
        return {}
    try:
        return dict(function(path, database, Path(rel)) or {})
    except Exception as exc:
        raise BatchSpecError(
            f"the entrypoint's metadata() failed on {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None


def run_metadata(
    module: ModuleType, input_path: str | None, database: str, rel: str | None
) -> dict[str, Any]:
    """A run's `input_metadata`: metadata() without its private keys; {} for a run without
    input, an entrypoint without metadata(), or a metadata() that fails (told on stderr)."""
    if input_path is None or not callable(getattr(module, "metadata", None)):
        return {}
    try:
        found = metadata_of(module, Path(input_path), Path(database), rel or input_path)
    except BatchSpecError as exc:
        print(f"qaflow: warning: {exc}; the run's input_metadata is {{}}", file=sys.stderr)
        return {}
    return {k: v for k, v in found.items() if not str(k).startswith("_") and k not in _HIDDEN}
