"""The git commit, branch and dirty flag of the project, as recorded with each execution.

Every git command of qaflow goes through `git_output` (planning's code version too). For a
project that no git repository holds (no `.git` in its folder or above it, and no GIT_DIR or
GIT_WORK_TREE), it answers None without starting git (`may_be_in_git`): git would find none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    """The state of the project's git checkout when an execution started."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def may_be_in_git(root: Path) -> bool:
    """False when git would find no repository for `root`: neither GIT_DIR nor GIT_WORK_TREE
    is set, and no `.git` (a folder, or the file of a worktree or a submodule) is in `root`
    or a folder above it, along its path as given or as resolved. Starting git to hear so
    costs ~2 ms and importing subprocess ~3 ms, on every `qa batch` of such a project."""
    if "GIT_DIR" in os.environ or "GIT_WORK_TREE" in os.environ:
        return True
    given = Path(root).absolute()
    for start in dict.fromkeys((given, given.resolve())):
        if any(os.path.lexists(folder / ".git") for folder in (start, *start.parents)):
            return True
    return False


def git_info(root: Path) -> GitInfo:
    """GitInfo of the repository holding `root`; all None outside a repository, without git,
    or before the first commit. One `git status` answers all three (porcelain v2's branch
    headers name the commit and the branch): recorded with every execution, no-op re-runs
    included."""
    out = _git(
        root, "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=no"
    )
    if out is None:
        return GitInfo()
    headers = {}
    dirty = False
    for line in out.splitlines():
        if line.startswith("# "):
            name, _, value = line[2:].partition(" ")
            headers[name] = value
        elif line:
            dirty = True
    commit = headers.get("branch.oid")
    if not commit or commit == "(initial)":
        return GitInfo()
    branch = headers.get("branch.head")
    return GitInfo(
        commit=commit, branch=None if branch in (None, "(detached)") else branch, dirty=dirty
    )


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit a git tag of the repository holding `root` points at; None if there is none."""
    return _git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")


def git_output(root: Path, *args: str, timeout: float = 10) -> bytes | None:
    """What `git -C root ARGS` prints, None if it fails, times out or is not installed, or
    when no repository holds `root` (then git is not started: `may_be_in_git`). Optional
    locks are off: a read must not block a user's own git command."""
    if not may_be_in_git(root):
        return None
    import subprocess  # only for a project git may hold

    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _git(root: Path, *args: str) -> str | None:
    out = git_output(root, *args)
    return None if out is None else out.decode().strip()


# QA-Board parity: the commit a CI job builds, from its CI tool's variables (GitLab CI,
# Jenkins, CircleCI, Travis CI, GitHub Actions), before asking git
CI_COMMIT_VARIABLES = ("CI_COMMIT_SHA", "GIT_COMMIT", "CIRCLE_SHA1", "TRAVIS_COMMIT", "GITHUB_SHA")
CI_BRANCH_VARIABLES = (
    "CI_COMMIT_TAG",
    "CI_COMMIT_REF_NAME",
    "GIT_BRANCH",
    "gitlabBranch",
    "CIRCLE_BRANCH",
    "TRAVIS_BRANCH",
    "GITHUB_REF",
)
CI_TAG_VARIABLES = ("CI_COMMIT_TAG", "GIT_TAG_NAME", "CIRCLE_TAG", "TRAVIS_TAG")


def is_ci() -> bool:
    """QA-Board's test for a CI job (or a tuning run): `CI` or `GIT_COMMIT` is set."""
    return any(name in os.environ for name in ("CI", "GIT_COMMIT"))


def commit_facts(root: Path | None, user: str) -> dict[str, str | None]:
    """QA-Board's commit_id, commit_branch and commit_tag: the CI tool's variables in CI,
    else git (QA_REPO, if set, is the repository), else `<local:USER>`."""
    ci = is_ci()
    commit = _first(CI_COMMIT_VARIABLES) if ci else None
    branch = _first(CI_BRANCH_VARIABLES) if ci else None
    if branch:
        branch = branch.replace("origin/", "").replace("refs/heads/", "")
    if not commit or not branch:
        repo = Path(os.environ["QA_REPO"]) if "QA_REPO" in os.environ else root
        info = git_info(repo) if repo is not None else GitInfo()
        commit = commit or info.commit or f"<local:{user}>"
        branch = branch or info.branch or f"<local:{user}>"
    return {
        "commit_id": commit,
        "commit_branch": branch,
        "commit_tag": _first(CI_TAG_VARIABLES) if ci else None,
    }


def _first(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if name in os.environ), None)
