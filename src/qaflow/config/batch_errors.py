"""How a batch that fails validation is told: the file, line, batch and field, what was
given, and a hint for the fields users most often get wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qaflow.config import yamlfile


def explain(file: Path, key: str, name: str, exc: ValidationError) -> str:
    """One paragraph for the first error pydantic found in batch `name` (at `key` of `file`)."""
    error = exc.errors()[0]
    keys = tuple(k for k in error["loc"] if isinstance(k, str | int) and not _is_union_member(k))
    field_name = (
        "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")
        or "(the batch)"
    )
    got = error.get("input")
    return (
        f"{yamlfile.where(file, (key, *keys))}: batch {name!r}: invalid `{field_name}`: "
        f"{error['msg'][0].lower()}{error['msg'][1:]} (got {got!r}). {_HINTS.get(str(keys[0]) if keys else '', '')}"
    ).rstrip()


def _is_union_member(key: Any) -> bool:
    return isinstance(key, str) and (key in {"str", "int", "float", "bool", "none"} or "[" in key)


_HINTS = {
    "inputs": "Give `inputs` as a list of paths (relative to the database), e.g. `inputs: [a.jpg, folder/]`.",
    "tests": "Give `tests` as a list of paths (relative to the database).",
    "configs": "Give `configs` as a list of configurations, e.g. `configs: [base, {threshold: 2}]`.",
    "configurations": "Give `configurations` as a list, e.g. `configurations: [base, {threshold: 2}]`.",
    "matrix": "Give `matrix` as a mapping of names to lists of values, e.g. `matrix: {threshold: [1, 2]}`, or a list of such mappings.",
    "database": "Give `database` as a path, or as `{linux: /path, windows: 'D:/path'}`.",
    "timeout": "Give `timeout` in seconds, e.g. `timeout: 600`.",
    "retries": "Give `retries` as a number of extra attempts, e.g. `retries: 2`.",
    "needs": "Give `needs` as a batch name, a list of names, or a mapping `alias: batch`.",
}
