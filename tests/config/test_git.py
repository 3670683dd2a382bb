"""git_info on real repositories: commit, branch and dirty flag from one `git status`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qaflow.config.git import GitInfo, git_info, may_be_in_git


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    return tmp_path


def test_outside_a_repository_everything_is_unknown(tmp_path: Path) -> None:
    assert git_info(tmp_path) == GitInfo()


def test_before_the_first_commit_everything_is_unknown(repo: Path) -> None:
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    assert git_info(repo) == GitInfo()


def test_a_clean_checkout_names_its_commit_and_branch(repo: Path) -> None:
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    (repo / "untracked.txt").write_text("not part of the checkout")
    commit = git(repo, "rev-parse", "HEAD")
    assert git_info(repo) == GitInfo(commit=commit, branch="main", dirty=False)
    (repo / "sub").mkdir()
    assert git_info(repo / "sub") == GitInfo(commit=commit, branch="main", dirty=False)


@pytest.mark.parametrize("change", ["modified", "staged", "deleted"])
def test_a_change_to_a_tracked_file_makes_it_dirty(repo: Path, change: str) -> None:
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    if change == "deleted":
        (repo / "a.txt").unlink()
    else:
        (repo / "a.txt").write_text("b")
    if change == "staged":
        git(repo, "add", "a.txt")
    info = git_info(repo)
    assert info.dirty is True and info.commit == git(repo, "rev-parse", "HEAD")


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    git(repo, "checkout", "-q", "--detach")
    commit = git(repo, "rev-parse", "HEAD")
    assert git_info(repo) == GitInfo(commit=commit, branch=None, dirty=False)
    git(repo, "checkout", "-q", "-b", "feature/x")
    assert git_info(repo).branch == "feature/x"


def git_finds_a_repository(folder: Path) -> bool:
    done = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=folder, capture_output=True)
    return done.returncode == 0


def test_git_is_not_started_where_it_would_find_no_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """may_be_in_git is False only where git itself finds no repository, and True for a
    repository, a folder inside one, a worktree's or submodule's `.git` file, a path that
    reaches a repository through a symlink, and GIT_DIR / GIT_WORK_TREE set."""
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    plain = tmp_path / "plain" / "sub"
    plain.mkdir(parents=True)
    if git_finds_a_repository(plain):
        pytest.skip(f"the temporary folder {tmp_path} is inside a git repository")
    assert may_be_in_git(plain) is False
    assert git_info(plain) == GitInfo()  # answered without git
    repo = tmp_path / "repo"
    (repo / "deep" / "er").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for folder in (repo, repo / "deep" / "er"):
        assert may_be_in_git(folder) is True and git_finds_a_repository(folder)
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {repo / '.git'}\n")  # as a worktree or submodule
    assert may_be_in_git(worktree) is True and git_finds_a_repository(worktree)
    link = tmp_path / "plain" / "link"
    link.symlink_to(repo / "deep")
    assert may_be_in_git(link / "er") is True and git_finds_a_repository(link / "er")
    for variable in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.setenv(variable, str(repo / ".git"))
        assert may_be_in_git(plain) is True
        monkeypatch.delenv(variable)
