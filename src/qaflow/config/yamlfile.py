"""Reading YAML files, with the file and line of every problem in the error message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qaflow.errors import ConfigError

try:  # the C loader is ~10x faster on large batch files
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def load(path: Path) -> Any:
    """Parse one YAML file; a syntax error becomes a ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r}: {exc.strerror}.") from exc
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{where}: malformed YAML: {problem}. Fix the syntax at that line "
            "(check the indentation, and quote values that contain ': ' or start with '{', '[' or '*')."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}.") from exc


def line_of(path: Path, keys: tuple[str | int, ...]) -> int | None:
    """The 1-based line where the value at `keys` starts in the YAML file, if it can be found.

    Only called to decorate an error message, so it re-reads the file rather than keeping
    marks around for every value of every file.
    """
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, key)
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def where(path: Path, keys: tuple[str | int, ...]) -> str:
    """`file:line` for the value at `keys`, or just `file` when the line is unknown."""
    line = line_of(path, keys)
    return f"{path}:{line}" if line else str(path)
