"""QA-Board's layered settings: a subproject's qaboard.yaml merged over its parents', `include:`.

A project may sit inside another (a *subproject*): every qaboard.yaml from the folder up to
the topmost one (or up to one saying `root: true`) applies, the root's first, each deeper
file merged over it. A file's `include: other.yaml` (relative to the root project) is
merged into that file (QA-Board lets the included values win). Merging is QA-Board's: mappings key by key, other values replace,
and in a list the word "super" stands for the items of the list it replaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qaflow.config import yamlfile
from qaflow.errors import ConfigError

CONFIG_NAMES = ("qaboard.yaml", "qatools.yaml")  # qatools.yaml: QA-Board's older name
SUPER = "super"


def merge(src: dict[str, Any] | None, dest: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `src` into `dest` (src wins) and return `dest` (QA-Board's `merge`)."""
    for key, value in (src or {}).items():
        if isinstance(value, dict):
            node = dest.get(key)
            if not isinstance(node, dict):
                node = dest[key] = {}
            merge(value, node)
        elif isinstance(value, list) and SUPER in value:
            previous = dest.get(key) or []
            dest[key] = [
                item for entry in value for item in (previous if entry == SUPER else [entry])
            ]
        else:
            dest[key] = value
    return dest


def config_files(start: Path) -> list[Path]:
    """The qaboard.yaml files that apply at `start`, the root project's first."""
    found: list[Path] = []
    folder = Path(start).resolve()
    for parent in (folder, *folder.parents):
        path = next((parent / n for n in CONFIG_NAMES if (parent / n).is_file()), None)
        if path is None:
            continue
        found.append(path)
        content = _load(path, folder)
        if content.get("root"):
            break
    found.reverse()
    return found


def merged(files: list[Path]) -> dict[str, Any]:
    """The settings of the deepest of `files`: each merged over the previous ones."""
    settings: dict[str, Any] = {}
    if not files:
        return settings
    root = files[0].parent
    project = files[-1].parent  # whose kept parses answer (`yamlfile.load`)
    for path in files:
        layer = dict(_load(path, project))
        include = layer.get("include")
        if include:
            included_path = root / str(include)
            if not included_path.is_file():
                raise ConfigError(
                    f"{yamlfile.where(path, ('include',))}: `include: {include}` names no file "
                    f"(looked for {str(included_path)!r}, relative to the root project). Fix the path."
                )
            # as QA-Board: the included file wins
            layer = merge(_load(included_path, project), layer)
        settings = merge(layer, settings)
    return settings


def _load(path: Path, project: Path) -> dict[str, Any]:
    data = yamlfile.load(path, root=project)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level.")
    return data
