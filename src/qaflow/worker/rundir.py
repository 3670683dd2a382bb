"""A run's directory on disk: where it is, its lock, its attempts and its committed result.

Layout. A run (one fingerprint) is addressed by `output_dir`, STORAGE/runs/<batch>/<input>/
<fp12>. Every execution of it works in a fresh *attempt directory*, a sibling named
`<fp12>.<attempt id>` (`attempt_dir`), where qaflow keeps its own files (`OWN_FILES`) next to
the run's outputs. `output_dir` itself is a relative symlink to the attempt that is the
fingerprint's *committed result*.

Switch. An attempt becomes the committed result only when it succeeded (metrics.json, written
last, says `is_failed: false`), by `commit`: a new symlink made beside `output_dir`, then
`rename(2)` over it, which is atomic (the fingerprint's first result: the symlink is made
at `output_dir` directly, as atomic). A failed, cancelled or killed attempt never touches
`output_dir`: the previous good result stays as it was, and the attempt keeps its own log.
A committed attempt is never modified or deleted by qaflow, except by `qa gc` once nothing
points to it. (A real directory at `output_dir`, written by an older qaflow, is renamed to an
attempt on the first commit.)

Lock. A run holds an exclusive lock on its `output_dir` (hence its fingerprint) while it
decides to reuse or executes, so that any number of qaflow processes execute each
fingerprint at most once at a time: the others wait, then find the committed result and
reuse it. The locks of a batch's runs are byte ranges of one `.locks` file in the batch's
folder of runs (STORAGE/runs/<batch>): taking one creates no file. POSIX locks are released
when their process dies, so a kill -9 never leaves a run locked.

Verification. A result is reused only if `result_problem` finds none: its metrics.json says
it did not fail, and every file its manifest lists is present.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.worker.files import read_bytes
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from qaflow.worker.task import RunTask

OWN_FILES = frozenset(
    {"run.json", "metrics.json", "log.txt", "manifest.outputs.json", "manifest.inputs.json"}
)
LOCKS = ".locks"  # the file of run locks, one per batch folder of run directories
MANIFEST = "manifest.outputs.json"
NO_RESULT = "it has no result"
FAILED_RESULT = "its last result failed"
MISSING_FILES = "its result files are missing"


class UnsafeRunDir(Exception):
    """A run directory that must not be emptied (it holds the project, or is a top folder)."""


def output_dir_of(task: RunTask) -> Path:
    """The run's output directory; a relative one is taken from the project's root."""
    path = Path(task.payload.output_dir)
    return path if path.is_absolute() else Path(task.project_root, path)


def attempt_dir(output_dir: Path, attempt_id: str) -> Path:
    """Where an attempt of the run at output_dir works: a sibling, `<fp12>.<attempt id>`."""
    return output_dir.with_name(f"{output_dir.name}.{attempt_id}")


def attempt_dir_of(task: RunTask) -> Path:
    """The attempt directory of a task (its id made by the driver, so it knows where the
    log of a run it had to kill is)."""
    return attempt_dir(output_dir_of(task), f"{task.attempt_id or 'run'}-{task.attempt}")


def run_dir_of(folder: Path) -> Path:
    """The run directory (the fingerprint's) of an attempt directory; a run directory itself
    (fingerprint directories are named by hex digits, attempts add `.<attempt id>`)."""
    return folder.with_name(folder.name.split(".", 1)[0]) if "." in folder.name else folder


def committed_attempt(output_dir: Path) -> Path | None:
    """The attempt directory output_dir points to; None if it is not a symlink."""
    try:
        return output_dir.with_name(output_dir.readlink().name)
    except OSError:
        return None


def completed_metrics(output_dir: Path) -> dict[str, Any] | None:
    """The metrics of a successful result in output_dir, None if there is none."""
    try:
        metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("is_failed") is False else None


@dataclass(frozen=True)
class Committed:
    """A verified committed result: its metrics, and the digest of what it produced."""

    metrics: dict[str, Any]
    digest: str


def read_result(output_dir: Path) -> Committed | str:
    """The result in output_dir, verified: its metrics.json says it did not fail and every
    file its manifest lists is present. Else why not: NO_RESULT, FAILED_RESULT, MISSING_FILES.

    This runs for every planned run of a cached plan: plain strings and os-level reads, and
    an empty manifest (the common case) is not parsed."""
    folder = str(output_dir)
    try:
        metrics = json.loads(read_bytes(folder + "/metrics.json").decode())
    except FileNotFoundError:
        return NO_RESULT
    except (OSError, ValueError):
        return FAILED_RESULT
    if not isinstance(metrics, dict) or metrics.get("is_failed") is not False:
        return FAILED_RESULT
    try:
        listed = read_bytes(f"{folder}/{MANIFEST}")
        names = {} if listed == b"{}" else json.loads(listed.decode())
    except (OSError, ValueError):
        return MISSING_FILES
    exists = os.path.exists
    if not isinstance(names, dict) or not all(exists(f"{folder}/{name}") for name in names):
        return MISSING_FILES
    return Committed(metrics, result_digest(listed, metrics))


def reused(key: str, found: Committed, output_dir: Path, **extra: Any) -> RunResult:
    """The CACHED result of a run that reuses `found`, the committed result at output_dir
    (`extra`: more RunResult fields: fingerprint, host, pid…)."""
    now = time.time()
    return RunResult(
        key,
        RunStatus.CACHED,
        metrics=dict(found.metrics),
        started_at=now,
        ended_at=now,
        output_dir=str(output_dir),
        digest=found.digest,
        **extra,
    )


def result_problem(output_dir: Path) -> str | None:
    """Why output_dir holds no reusable result (see `read_result`), None if it holds one."""
    found = read_result(output_dir)
    return found if isinstance(found, str) else None


def result_digest(manifest: bytes, metrics: dict[str, Any]) -> str:
    """The content hash of a result: its manifest (its files' hashes) and its metrics, without
    what changes at each execution (compute_time). The fingerprint of a run that needs it
    covers it (early cutoff)."""
    kept = {k: v for k, v in metrics.items() if k not in VOLATILE_METRICS}
    digest = hashlib.blake2b(manifest, digest_size=16)
    digest.update(_CANONICAL.encode(kept).encode())
    return digest.hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)  # as json.dumps(sort_keys=True)


VOLATILE_METRICS = frozenset({"compute_time", "is_failed"})


def commit(output_dir: Path, attempt: Path, project_root: Path) -> None:
    """Make `attempt` the committed result of output_dir, atomically (see the module
    docstring). UnsafeRunDir if output_dir is a real directory holding the project."""
    try:
        mode: int | None = output_dir.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):  # a result of an older qaflow: kept, aside
        _check_safe(output_dir, project_root)
        output_dir.rename(attempt_dir(output_dir, f"legacy-{time.time_ns()}"))
    elif mode is None:  # the fingerprint's first result: the link is made in place (atomic)
        try:
            output_dir.symlink_to(attempt.name)  # relative: the storage may move
            return
        except FileExistsError:  # another process committed it meanwhile: replaced below
            pass
    swap = output_dir.with_name(f".{output_dir.name}.{os.getpid()}-{time.time_ns()}.swap")
    swap.symlink_to(attempt.name)  # relative: the storage may move
    try:
        swap.replace(output_dir)  # rename(2): atomic
    except OSError:
        swap.unlink(missing_ok=True)
        raise


def fresh(output_dir: Path, project_root: Path) -> None:
    """Create output_dir empty: a previous run's files must not mix in. UnsafeRunDir if it
    holds the project or is a top folder; OSError if the filesystem refuses."""
    try:
        mode: int | None = output_dir.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        _check_safe(output_dir, project_root)
        if stat.S_ISDIR(mode):
            import shutil  # only to clear a stale attempt

            shutil.rmtree(output_dir)
        else:
            output_dir.unlink()
    try:
        output_dir.mkdir()
    except FileNotFoundError:  # the first run of its input: the parents are made
        output_dir.mkdir(parents=True)


def _check_safe(output_dir: Path, project_root: Path) -> None:
    resolved = output_dir.resolve()
    top = resolved in (resolved.parent, Path.home())
    if top or project_root.resolve().is_relative_to(resolved):
        raise UnsafeRunDir(
            f"refusing to delete or move {output_dir}: it holds the project or is a top folder"
        )


# ---------------------------------------------------------------- locks
@contextlib.contextmanager
def run_lock(
    output_dir: Path, lock_dir: Path | None = None, *, wait: bool = True
) -> Iterator[bool]:
    """An exclusive lock on a run's directory, for every process of this machine (and of others,
    where the filesystem supports POSIX locks), released when its process dies.

    One `.locks` file in `lock_dir` (the batch's folder of runs; by default the run's parent),
    locked by byte range (one byte per run directory): taking a lock creates no file, which
    on slow disks would be a good part of a run's overhead. Yields whether the lock is held:
    with `wait=False`, False at once if another process holds it (the run is pending there).
    """
    path, offset = _lock_of(output_dir, lock_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except FileNotFoundError:  # the batch's first run: its folder is made
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB), 1, offset)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held elsewhere
            yield False
            return
        yield True
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
    """Where the lock of a run directory lives: its batch's folder, STORAGE/runs/<first part>.
    (On the paths' strings: the driver asks for each run it executes.)"""
    root, path = str(runs_root), str(output_dir)
    if not (_plain_absolute(root) and _plain_absolute(path)):  # relative, or POSIX's `//`
        if not output_dir.is_relative_to(runs_root) or output_dir == runs_root:
            return output_dir.parent
        return runs_root / output_dir.relative_to(runs_root).parts[0]
    prefix = root if root.endswith("/") else f"{root}/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        return output_dir.parent
    return runs_root / path[len(prefix) :].split("/", 1)[0]


def _plain_absolute(path: str) -> bool:
    return path.startswith("/") and not path.startswith("//")


def _lock_of(output_dir: Path, lock_dir: Path | None) -> tuple[Path, int]:
    folder = output_dir.parent if lock_dir is None else lock_dir
    digest = hashlib.blake2b(str(output_dir).encode(), digest_size=7).hexdigest()
    return folder / LOCKS, int(digest, 16)
