"""What the pydantic models of the user's YAML files share (qaboard.yaml, batch files,
qa/metrics.yaml). Imported only when a file is validated (see `config.validated`).

Sections accept unknown keys (a QA-Board file may carry keys qaflow has no use for) and
each one is reported as a warning naming it, except a near miss of a key the section knows
(`input:` for `inputs:`, `Storage:` for `storage:`): that is a typo whose value would be
silently ignored, so it is an error with a did-you-mean (`misspelt`). A value of the wrong
type becomes one paragraph naming the file, the line, the key and what was expected.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from qaflow.config import yamlfile
from qaflow.config.values import kind_of, misspelt, not_a_configuration
from qaflow.errors import ConfigError, QaflowWarning


class Section(BaseModel):
    """A mapping of the file: extra keys are kept (and warned about), aliases accepted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def explain(path: Path, exc: ValidationError, fix: str) -> str:
    """One paragraph from pydantic's first error: file:line, the key, what was expected,
    then `fix` (what to do)."""
    error = exc.errors()[0]
    keys = tuple(k for k in error["loc"] if isinstance(k, str | int) and not _is_union_tag(k))
    dotted = ".".join(str(k) for k in keys)
    message = error["msg"].removeprefix("Value error, ")
    return (
        f"{yamlfile.where(path, keys)}: invalid value for `{dotted}`: {message[:1].lower()}{message[1:]} "
        f"(got {kind_of(error.get('input'))}). {fix}"
    )


def _is_union_tag(key: Any) -> bool:
    # pydantic names the union member it tried in the location, e.g. 'str' or 'list[str]'
    return isinstance(key, str) and (
        key in {"str", "int", "bool", "float"} or "[" in key or key.endswith("Section")
    )


def known_keys(model: type[BaseModel]) -> set[str]:
    """The keys a section declares, under their names and aliases."""
    fields = model.model_fields
    return set(fields) | {f.alias for f in fields.values() if f.alias}


def warn_unknown_keys(
    path: Path, model: BaseModel, prefix: str = "", loc: tuple[str, ...] = ()
) -> None:
    """A QaflowWarning for each key of the file that no model declares (`open_keys` models
    take any key); a ConfigError for a key that is a near miss of a declared one."""
    extra = {} if getattr(model, "open_keys", False) else model.model_extra or {}
    for key in extra:
        typo = misspelt(str(key), known_keys(type(model)))
        if typo is not None:
            raise ConfigError(
                f"{yamlfile.where_key(path, (*loc, str(key)))}: unknown key `{prefix}{key}`: did you "
                f"mean `{prefix}{typo}`? Rename it (a misspelt key would be ignored, and its "
                "setting silently lost)."
            )
        warnings.warn(
            f"{path}: unknown key `{prefix}{key}` is ignored.", QaflowWarning, stacklevel=2
        )
    for name in type(model).model_fields:
        value = getattr(model, name)
        children = value.items() if isinstance(value, dict) else [(None, value)]
        for child_key, child in children:
            if isinstance(child, BaseModel):
                sub = f"{prefix}{name}." if child_key is None else f"{prefix}{name}.{child_key}."
                where = (*loc, name) if child_key is None else (*loc, name, str(child_key))
                warn_unknown_keys(path, child, sub, where)


__all__ = [
    "Section",
    "explain",
    "kind_of",
    "known_keys",
    "misspelt",
    "not_a_configuration",
    "warn_unknown_keys",
]
