"""Which files the board may serve: only regular files under the storage folder.

Policy: a request names a path relative to the storage folder. It is refused (403) when it
is absolute, holds a `..`, `.` or empty component, a backslash or a NUL, or when its real
path (symlinks resolved) is not under the storage folder's real path; it is 404 when there
is no such regular file. URL decoding happens before this check (the router decodes `%2e`),
so encoded forms are refused alike. Listings skip what would be refused.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg"}
TEXT_SUFFIXES = {
    ".txt", ".log", ".json", ".csv", ".tsv", ".yaml", ".yml", ".md", ".py", ".sh", ".cde",
    ".ini", ".cfg", ".toml", ".xml", ".html",
}  # fmt: skip
MAX_LISTED = 500  # files listed per run directory


class Refused(Exception):
    """A path the board does not serve; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class OutputFile:
    """A file of a run's output directory, as the run page lists it."""

    name: str  # relative to the run's output directory, with forward slashes
    url_path: str  # relative to the storage folder, URL-quoted: what /files/ serves
    size: int
    kind: str  # image, plotly, json, text or other


def safe_path(storage: Path, relative: str) -> Path:
    """The regular file `relative` names under storage, or Refused."""
    if not relative or "\\" in relative or "\0" in relative or relative.startswith("/"):
        raise Refused(403, "not a path relative to the storage folder")
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts) or PurePosixPath(relative).is_absolute():
        raise Refused(403, "a path component is empty, . or ..")
    root = storage.resolve()
    path = Path(os.path.realpath(root.joinpath(*parts)))
    if not path.is_relative_to(root):
        raise Refused(403, "outside the storage folder")
    if not path.is_file():
        raise Refused(404, "no such file")
    return path


def relative_url(storage: Path, path: Path) -> str | None:
    """The URL path (quoted) of `path` under storage, None if it is not really under it."""
    root = storage.resolve()
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        return None
    return quote(real.relative_to(root).as_posix())


def list_outputs(storage: Path, output_dir: Path) -> tuple[list[OutputFile], bool]:
    """The servable files of a run directory, sorted (at most MAX_LISTED); and whether some
    were left out."""
    root = storage.resolve()
    base = Path(os.path.realpath(output_dir))
    if not base.is_relative_to(root) or not base.is_dir():
        return [], False
    found: list[OutputFile] = []
    for folder, dirs, names in os.walk(base):
        dirs.sort()
        for name in sorted(names):
            path = Path(os.path.realpath(Path(folder) / name))
            if not path.is_relative_to(root) or not path.is_file():
                continue  # a symlink out of storage, or to something that is not a file
            if len(found) == MAX_LISTED:
                return found, True
            shown = (Path(folder) / name).relative_to(base).as_posix()
            url = quote((Path(folder) / name).relative_to(root).as_posix())
            found.append(OutputFile(shown, url, path.stat().st_size, kind_of(name)))
    return found, False


def kind_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if name.lower().endswith((".plotly.json", ".plot.json")):
        return "plotly"
    if suffix == ".json":
        return "json"
    return "text" if suffix in TEXT_SUFFIXES else "other"


def media_type(path: Path) -> str:
    """Images and JSON as themselves; anything else a browser could render (HTML…) as plain
    text. The board also sends every file with a `sandbox` Content-Security-Policy, so that
    a run's files (an SVG with a script…) never run scripts in the board's origin."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix.lower() == ".json":
        return "application/json"
    if path.suffix.lower() in TEXT_SUFFIXES:
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
