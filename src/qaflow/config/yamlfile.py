"""Reading YAML files, with the file and line of every problem in the error message.

A file must be UTF-8 text; its aliases may not expand it past MAX_VALUES values (a
"billion laughs" file is a few lines that expand to 10^9 values) nor make a value contain
itself: both are refused with a ConfigError before anything uses the data.

Parsing is kept between processes (`validated.parsed`, keyed by the file's bytes): a
command whose configuration files did not change never imports PyYAML (~40 ms), which is
imported here only to parse, or to find the line of a problem.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.config import validated
from qaflow.errors import ConfigError

if TYPE_CHECKING:
    import yaml

MAX_VALUES = 10_000_000  # values of a file once its aliases are expanded


@functools.cache
def _loader() -> type[yaml.SafeLoader]:
    import yaml

    try:  # the C loader is ~10x faster on large batch files
        return yaml.CSafeLoader  # type: ignore[return-value]
    except AttributeError:  # pragma: no cover - PyYAML built without libyaml
        return yaml.SafeLoader


@functools.cache
def _parser_code() -> tuple[Path, ...]:
    """The files whose change makes a kept parse stale: this module, and PyYAML's
    `__init__.py` (its version), found as `import yaml` would, without importing it."""
    for entry in sys.path:
        candidate = Path(entry or ".", "yaml", "__init__.py")
        if candidate.is_file():
            return (Path(__file__), candidate)
    import importlib.util  # not a plain folder on sys.path (a zip?): ask the import system

    spec = importlib.util.find_spec("yaml")
    origin = spec.origin if spec is not None else None
    return (
        (Path(__file__), Path(origin)) if origin and Path(origin).is_file() else (Path(__file__),)
    )


def load(path: Path, *, root: Path | None = None) -> Any:
    """Parse one YAML file; a syntax error becomes a ConfigError naming the file and line.

    `root`: the project whose kept parses (`validated.parsed`) may answer for the file's
    bytes; None parses every time."""
    raw = _read_bytes(path)
    if root is None:
        return _parse(path, raw)
    return validated.parsed(raw, lambda: _parse(path, raw), root=root, code=_parser_code())


def _parse(path: Path, raw: bytes) -> Any:
    import yaml

    text = _decode(path, raw)
    try:
        data = yaml.load(text, Loader=_loader())
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
    return _decode(path, _read_bytes(path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r}: {exc.strerror}.") from exc


def _decode(path: Path, raw: bytes) -> str:
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
    import yaml

    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_loader())
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
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def where_key(path: Path, keys: tuple[str | int, ...]) -> str:
    """`file:line` of the last key of `keys` itself (not of its value), for unknown keys."""
    import yaml

    line = line_of(path, keys[:-1]) if keys[:-1] else 1
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_loader())
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
