"""What the pydantic models of the user's YAML files share (qaboard.yaml, qa/metrics.yaml).

Sections accept unknown keys (a QA-Board file may carry keys qaflow has no use for) and
each one is reported as a warning naming it; a value of the wrong type becomes one
paragraph naming the file, the line, the key and what was expected.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from qaflow.config import yamlfile
from qaflow.errors import QaflowWarning


class Section(BaseModel):
    """A mapping of the file: extra keys are kept (and warned about), aliases accepted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def kind_of(value: Any) -> str:
    """How a value reads in an error message: 'a list', 'a string ('x')'…"""
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__) + (
        f" ({value!r})" if not isinstance(value, dict | list) else ""
    )


def explain(path: Path, exc: ValidationError, fix: str) -> str:
    """One paragraph from pydantic's first error: file:line, the key, what was expected,
    then `fix` (what to do)."""
    error = exc.errors()[0]
    keys = tuple(k for k in error["loc"] if isinstance(k, str | int) and not _is_union_tag(k))
    dotted = ".".join(str(k) for k in keys)
    return (
        f"{yamlfile.where(path, keys)}: invalid value for `{dotted}`: {error['msg'].lower()} "
        f"(got {kind_of(error.get('input'))}). {fix}"
    )


def _is_union_tag(key: Any) -> bool:
    # pydantic names the union member it tried in the location, e.g. 'str' or 'list[str]'
    return isinstance(key, str) and (
        key in {"str", "int", "bool", "float"} or "[" in key or key.endswith("Section")
    )


def warn_unknown_keys(path: Path, model: BaseModel, prefix: str = "") -> None:
    """A QaflowWarning for each key of the file that no model declares (`open_keys` models
    take any key)."""
    for key in {} if getattr(model, "open_keys", False) else model.model_extra or {}:
        warnings.warn(
            f"{path}: unknown key `{prefix}{key}` is ignored.", QaflowWarning, stacklevel=2
        )
    for name in type(model).model_fields:
        value = getattr(model, name)
        children = value.values() if isinstance(value, dict) else [value]
        for child in children:
            if isinstance(child, BaseModel):
                sub = f"{prefix}{name}." if not isinstance(value, dict) else f"{prefix}{name}.*."
                warn_unknown_keys(path, child, sub)
