"""QA-Board's naming conventions that user code imports: `slugify`, `location_from_spec`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any


def slugify(text: str, maxlength: int = 32) -> str:
    """Lowercase, at most `maxlength - 1` characters, runs of other than [0-9a-z.=] as one '-'."""
    slug = text.lower()
    if maxlength:
        slug = slug[: maxlength - 1]
    slug = re.sub(r"[^0-9a-z.=]+", "-", slug)
    return slug.strip("-")


def location_from_spec(
    spec: str | os.PathLike[str] | dict[str, Any], variables: dict[str, Any] | None = None
) -> Path:
    """A path from a qaboard.yaml value: `{linux: …, windows: …}` (or `{path: …}`) picks the
    host's entry; environment variables expand, then `{project}`-style placeholders."""
    if isinstance(spec, dict):
        flavor = "windows" if os.name == "nt" else "linux"
        if flavor in spec:
            spec = spec[flavor]
        elif "path" in spec:
            spec = spec["path"]
        else:
            raise ValueError(f"expected a key named {flavor!r} or 'path' in {spec!r}")
    location = os.path.expandvars(str(spec))
    if variables:
        location = location.format(**variables)
    return Path(location)


def commit_dirs(commit_id: str | None) -> Path:
    """Where a commit's results go under a project's storage: `ab/cdef0123456789` (QA-Board)."""
    if not commit_id or not re.fullmatch(r"[0-9a-f]{40}", commit_id):
        return Path()
    return Path(commit_id[:2], commit_id[2:16])
