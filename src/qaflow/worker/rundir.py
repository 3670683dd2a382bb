"""A run's directory on disk: where it is, its lock, whether it holds a completed result.

Every run owns one directory (`output_dir`), where qaflow keeps its own files (`OWN_FILES`)
next to the run's outputs. A run holds an exclusive lock on its directory while it runs, so
that two qaflow processes planning the same run execute it once, and `qa gc` never removes a
directory a run is using. The locks of a batch's runs are byte ranges of one `.locks` file in
the batch's folder of runs (STORAGE/runs/<batch>): taking one creates no file. A run is
*completed* when its metrics.json is valid JSON saying `is_failed: false` (it is written last).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qaflow.worker.model import RunTask

OWN_FILES = frozenset(
    {"run.json", "metrics.json", "log.txt", "manifest.outputs.json", "manifest.inputs.json"}
)
LOCKS = ".locks"  # the file of run locks, one per batch folder of run directories


class UnsafeRunDir(Exception):
    """A run directory that must not be emptied (it holds the project, or is a top folder)."""


def output_dir_of(task: RunTask) -> Path:
    """The run's output directory; a relative one is taken from the project's root."""
    path = Path(task.payload.output_dir)
    return path if path.is_absolute() else Path(task.project_root, path)


def completed_metrics(output_dir: Path) -> dict[str, Any] | None:
    """The metrics of a successful result in output_dir, None if there is none."""
    try:
        metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("is_failed") is False else None


def fresh(output_dir: Path, project_root: Path) -> None:
    """Create output_dir empty: a previous run's files must not mix in. UnsafeRunDir if it
    holds the project or is a top folder; OSError if the filesystem refuses."""
    try:
        mode: int | None = output_dir.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        resolved = output_dir.resolve()
        top = resolved in (resolved.parent, Path.home())
        if top or project_root.resolve().is_relative_to(resolved):
            raise UnsafeRunDir(
                f"refusing to delete {output_dir}: it holds the project or is a top folder"
            )
        if stat.S_ISDIR(mode):
            shutil.rmtree(output_dir)
        else:
            output_dir.unlink()
    output_dir.mkdir(parents=True)


# ---------------------------------------------------------------- locks
@contextlib.contextmanager
def run_lock(output_dir: Path, lock_dir: Path | None = None) -> Iterator[None]:
    """An exclusive lock on a run's directory, for every process of this machine (and of others,
    where the filesystem supports POSIX locks), released when its process dies.

    One `.locks` file in `lock_dir` (the batch's folder of runs; by default the run's parent),
    locked by byte range (one byte per run directory): taking a lock creates no file, which
    on slow disks would be a good part of a run's overhead.
    """
    path, offset = _lock_of(output_dir, lock_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def try_run_lock(
    output_dir: Path, stack: contextlib.ExitStack, lock_dir: Path | None = None
) -> bool:
    """Take a run's lock without waiting, until `stack` closes; False if a run holds it.
    (`qa gc` takes it before removing a run directory.)"""
    path, offset = _lock_of(output_dir, lock_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True  # no run ever locked anything here
    except OSError:
        return False
    stack.callback(os.close, fd)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:
        return False
    return True


def lock_dir_of(output_dir: Path, runs_root: Path) -> Path:
    """Where the lock of a run directory lives: its batch's folder, STORAGE/runs/<first part>."""
    if not output_dir.is_relative_to(runs_root) or output_dir == runs_root:
        return output_dir.parent
    return runs_root / output_dir.relative_to(runs_root).parts[0]


def _lock_of(output_dir: Path, lock_dir: Path | None) -> tuple[Path, int]:
    folder = output_dir.parent if lock_dir is None else lock_dir
    digest = hashlib.blake2b(str(output_dir).encode(), digest_size=7).hexdigest()
    return folder / LOCKS, int(digest, 16)
