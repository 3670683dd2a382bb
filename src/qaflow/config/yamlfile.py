"""Reading YAML files, with the file and line of every problem in the error message.

A file must be UTF-8 text; its aliases may not expand it past MAX_VALUES values (a
"billion laughs" file is a few lines that expand to 10^9 values) nor make a value contain
itself: both are refused with a ConfigError before anything uses the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qaflow.errors import ConfigError

try:  # the C loader is ~10x faster on large batch files
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


MAX_VALUES = 10_000_000  # values of a file once its aliases are expanded


def load(path: Path) -> Any:
    """Parse one YAML file; a syntax error becomes a ConfigError naming the file and line."""
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_Loader)
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
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply to be read.") from None
    _check_expansion(path, data)
    return data


def read_text(path: Path) -> str:
    """The text of a configuration file; a file that is not UTF-8 text is a ConfigError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r}: {exc.strerror}.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: this file is not UTF-8 text (byte {exc.start + 1} is 0x{raw[exc.start]:02x}). "
            "Save it as UTF-8; a binary file cannot be a configuration file."
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(
            f"{path}:{line}: this file holds a NUL character: it is a binary file, not YAML text. "
            "Point qaflow at the YAML file, or save this one as UTF-8 text."
        )
    return text


def _check_expansion(path: Path, data: Any) -> None:
    """Refuse aliases that make a value contain itself, or expand past MAX_VALUES values.

    PyYAML shares one object for every use of an anchor, so the expanded size is computed
    once per object (memoised by id), in time linear in the file."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(
                f"{path}: a YAML alias refers to a value that contains it (`&a [*a]`): such a "
                "value is infinite. Remove the alias from inside its own anchor."
            )
        open_.add(key)
        items = value.values() if isinstance(value, dict) else value
        total = 1
        for item in items:
            total += size(item)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"{path}: its YAML aliases expand to more than {MAX_VALUES:,} values (a "
                    '"billion laughs" file?). Use fewer nested aliases, or split the file.'
                )
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply to be read.") from None


def line_of(path: Path, keys: tuple[str | int, ...]) -> int | None:
    """The 1-based line where the value at `keys` starts in the YAML file, if it can be found.

    Only called to decorate an error message, so it re-reads the file rather than keeping
    marks around for every value of every file.
    """
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
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


def where_key(path: Path, keys: tuple[str | int, ...]) -> str:
    """`file:line` of the last key of `keys` itself (not of its value), for unknown keys."""
    line = line_of(path, keys[:-1]) if keys[:-1] else 1
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return str(path)
    for key in keys[:-1]:
        node = _child(node, key) if node is not None else None
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(keys[-1]):
                line = k.start_mark.line + 1
    return f"{path}:{line}" if line else str(path)


def where(path: Path, keys: tuple[str | int, ...]) -> str:
    """`file:line` for the value at `keys`, or just `file` when the line is unknown."""
    line = line_of(path, keys)
    return f"{path}:{line}" if line else str(path)
