"""The git commit, branch and dirty flag of the project, as recorded with each execution."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    """The state of the project's git checkout when an execution started."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def git_info(root: Path) -> GitInfo:
    """GitInfo of the repository holding `root`; all None outside a repository or without git."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, branch=None if branch == "HEAD" else branch, dirty=bool(status))


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
