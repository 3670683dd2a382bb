"""Turning input locations (files, folders, glob patterns) into input paths, as QA-Board does.

A location is relative to the database unless absolute. A pattern (`*`, `?`, `[`, `**`)
matches paths under the database. Each matched path then expands with the input type's
globs: a folder yields every path under it whose name matches a glob (its parent folder
when `use_parent_folder` is set); a file is itself an input. Without globs, each matched
path is itself one input (a folder can be an input). Results are sorted within a location,
so plans are stable whatever order the filesystem lists entries in.
"""

from __future__ import annotations

import fnmatch
import operator
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

from qaflow.errors import BatchSpecError

GLOB_CHARS = re.compile(r"[*?\[]")
# Path order (part by part), as one tuple comparison in C instead of a Python __lt__ per
# comparison: sorting thousands of inputs did 40,000 of them
_PATH_ORDER = operator.attrgetter("parts")


class FoundInput(NamedTuple):  # a tuple: made for every input, 5x cheaper than a dataclass
    """An input path, the database it is relative to, and the path relative to it."""

    path: Path
    database: Path
    rel: str

    @classmethod
    def under(cls, path: Path, database: Path) -> FoundInput:
        # string slicing: every path found is built from `database`, and pathlib's
        # relative_to costs more than the rest of planning a run
        root = str(database)
        prefix = 0 if root == "." else len(root.rstrip("/")) + 1  # Path(".") / "a" is "a"
        text = str(path)
        return cls(path, database, text[prefix:] if len(text) >= prefix else ".")


def find_inputs(
    location: str,
    *,
    database: Path,
    globs: tuple[str, ...],
    use_parent_folder: bool,
    recurse_without_globs: bool = False,
) -> list[FoundInput]:
    """Every input designated by `location`; a BatchSpecError when there is none.

    `recurse_without_globs`: a folder with no globs configured yields every file under it
    (used for `qa batch some/folder`) instead of being itself one input.
    """
    database, pattern = _split(location, database)
    if GLOB_CHARS.search(pattern):
        matched = sorted(database.glob(pattern), key=_PATH_ORDER)
        if not matched:
            raise BatchSpecError(
                f"No input matches {location!r} under the database {str(database)!r}."
            )
    else:
        path = database / pattern if pattern else database
        try:
            is_dir = stat.S_ISDIR(path.stat().st_mode)
        except OSError:  # missing, or a broken symlink (an input all the same, as before)
            if not os.path.lexists(path):
                raise BatchSpecError(
                    f"Input {location!r} does not exist: there is no {str(path)!r}."
                ) from None
            is_dir = False
        if not is_dir:  # one file: the common case of a long list of inputs, one stat each
            if globs and not matches_globs(str(path), globs):
                return []  # as QA-Board, the globs filter listed files too
            return [FoundInput.under(path, database)]
        matched = [path]
    found: list[FoundInput] = []
    seen: set[Path] = set()
    for path in matched:
        for item in _expand(path, globs, use_parent_folder, recurse_without_globs):
            if item not in seen:
                seen.add(item)
                found.append(FoundInput.under(item, database))
    if not found:
        wanted = ", ".join(globs) if globs else "any file"
        raise BatchSpecError(
            f"No input found in {location!r} under the database {str(database)!r} (looking for {wanted}). "
            "Check the path, or `inputs.globs` in qaboard.yaml."
        )
    return found


def matches_globs(path: str, globs: tuple[str, ...]) -> bool:
    """QA-Board's test of a listed file against the globs: its name (or its last folders,
    for globs with a `/`) matches one."""
    return any(fnmatch.fnmatch(path, f"*/{g}") or path.endswith(g) for g in globs)


def _split(location: str, database: Path) -> tuple[Path, str]:
    """(database, relative pattern): an absolute location is relative to its filesystem root."""
    if not os.path.isabs(location):  # the common case, without building a Path  # noqa: PTH117
        return database, location.rstrip("/")
    path = Path(location)
    if path.is_relative_to(database):
        return database, path.relative_to(database).as_posix()
    return Path(path.anchor), path.relative_to(path.anchor).as_posix()


def _expand(
    path: Path, globs: tuple[str, ...], use_parent_folder: bool, recurse: bool
) -> list[Path]:
    if not path.is_dir():
        return [path]
    if not globs:
        return (
            sorted(
                (p for p in _walk(path, ("*",), use_parent_folder=False) if not p.is_dir()),
                key=_PATH_ORDER,
            )
            if recurse
            else [path]
        )
    found = _walk(path, globs, use_parent_folder)
    if any(fnmatch.fnmatch(path.name, g) for g in globs):
        found.append(path.parent if use_parent_folder else path)
    return sorted(set(found), key=_PATH_ORDER)


def _walk(root: Path, globs: tuple[str, ...], use_parent_folder: bool) -> list[Path]:
    """Paths under root (files and folders) whose name matches a glob, like `Path.rglob`.

    os.walk with one compiled regex is several times faster than one rglob per glob; globs
    with a `/` need path matching, so they go through rglob.
    """
    if any("/" in g for g in globs):
        matches = {m for g in globs for m in root.rglob(g)}
        return [m.parent if use_parent_folder else m for m in matches]
    regex = re.compile("|".join(fnmatch.translate(g) for g in globs))
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(folder)
        found.extend(
            base if use_parent_folder else base / n for n in (*dirs, *files) if regex.match(n)
        )
    return found
