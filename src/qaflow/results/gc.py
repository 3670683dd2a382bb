"""Garbage collection of run directories that no kept execution references (`qa gc`).

Policy
- Kept executions: those started less than `older_than` seconds before `now` (None: all of
  them), those whose label is in `keep_labels` whatever their age, and every execution
  still "running" (a live execution's pending runs are recorded before their folders exist).
- Referenced: the output_dir of any run of a kept execution. A succeeded run's output_dir
  is its fingerprint's symlink to the committed attempt (`qaflow.worker.rundir`): the
  committed result is kept as long as a kept execution references the fingerprint; a failed
  attempt is referenced by its own run, so it goes once that execution is older than
  `older_than`; an attempt that is neither committed nor referenced (superseded by a later
  success, or left by a killed driver) goes too. Units of removal are run directories and
  attempts (a folder under STORAGE/runs holding a run.json; not searched below) and
  pipeline folders (STORAGE/runs/<pipeline>/<hash>/ with step-N/ run dirs or steps/*.json),
  each removed whole. A unit is kept when a referenced path is the unit, inside it, or
  above it; a pipeline folder also when its steps/*.json listings name a referenced run.
  Paths are matched resolved, and also by their part below the last `runs` folder, so that
  the same storage mounted at another path is still recognised (matching more only keeps more).
- The store's execution records are never deleted: only files are.

Safety invariants
- Nothing outside STORAGE/runs is removed, nor STORAGE/runs itself: every unit is found
  by os.walk(followlinks=False), is a real directory (not a symlink), and its resolved path
  is strictly under the resolved STORAGE/runs, checked again just before it is removed.
  shutil.rmtree removes symlinks found inside a unit, never their targets.
- A unit in use is skipped: its run lock (the lock of its fingerprint for an attempt, and
  those in a pipeline's step folders) is taken without waiting, held while the unit is removed,
  and the sibling lock file is removed with it. A unit changed after planning (its folder
  or an entry in it has a newer mtime: a run on a host where flock does not reach) is
  skipped too.
- A fingerprint's symlink whose committed attempt was removed is removed with it (as are
  the leftovers of a switch a kill interrupted), so no run points to missing files.
- After removals, only the folders that removals left empty are removed, upwards, stopping
  below STORAGE/runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qaflow.errors import UsageError
from qaflow.worker.rundir import LOCKS, committed_attempt, lock_dir_of, run_dir_of, try_run_lock

if TYPE_CHECKING:
    from qaflow.store import Store
    from qaflow.store.records import ExecutionRecord

ALL_EXECUTIONS = 2**31 - 1  # a LIMIT every backend accepts: "no limit"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_STEP = re.compile(r"step-\d+")


@dataclass(frozen=True)
class Removal:
    """One run directory (or pipeline folder) to remove, and the bytes of its files."""

    path: Path
    size: int
    pipeline: bool = False


@dataclass(frozen=True)
class GcPlan:
    """What `qa gc` would remove under runs_root, and what it keeps."""

    runs_root: Path
    removals: tuple[Removal, ...]
    kept: int  # run directories (and pipeline folders) kept
    kept_executions: int
    executions: int
    planned_at: float  # the real time of planning (not the `now` the policy was applied at)

    @property
    def size(self) -> int:
        return sum(removal.size for removal in self.removals)


@dataclass
class GcResult:
    """What apply_gc did."""

    removed: list[Removal] = field(default_factory=list)
    skipped: list[tuple[Removal, str]] = field(default_factory=list)
    emptied: int = 0  # folders removed because removals left them empty

    @property
    def freed(self) -> int:
        return sum(removal.size for removal in self.removed)


# ---------------------------------------------------------------- options
def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> seconds. UsageError otherwise."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--older-than {text!r}: expected a number followed by a unit: "
            "45s (seconds), 90m (minutes), 12h (hours), 30d (days) or 2w (weeks)."
        )
    return float(match[1]) * UNITS[match[2]]


def parse_labels(values: Iterable[str]) -> frozenset[str]:
    """Repeated and comma-separated labels: ("a,b", "c") -> {"a", "b", "c"}."""
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def human_size(size: int) -> str:
    """Bytes, human readable: 512 B, 1.5 KB, 3.2 MB, 1.0 GB (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


# ---------------------------------------------------------------- planning
def plan_gc(
    storage: Path,
    store: Store,
    keep_labels: Iterable[str] = (),
    older_than: float | None = None,
    now: float | None = None,
) -> GcPlan:
    """Find the run directories under storage/runs that no kept execution references."""
    planned_at = time.time()
    executions = store.lookups.executions(limit=ALL_EXECUTIONS)
    kept = kept_executions(
        executions, parse_labels(keep_labels), older_than, planned_at if now is None else now
    )
    refs = References([run.output_dir for e in kept for run in store.lookups.runs(e.id)])
    runs_root = storage / "runs"
    removals: list[Removal] = []
    kept_units = 0
    for unit, pipeline in find_units(runs_root):
        if refs.covers(unit) or (pipeline and refs.listed_in(unit)):
            kept_units += 1
        else:
            removals.append(Removal(unit, tree_size(unit), pipeline))
    return GcPlan(runs_root, tuple(removals), kept_units, len(kept), len(executions), planned_at)


def kept_executions(
    executions: Iterable[ExecutionRecord],
    keep_labels: frozenset[str],
    older_than: float | None,
    now: float,
) -> list[ExecutionRecord]:
    """The executions whose runs' folders gc keeps."""
    return [
        e
        for e in executions
        if e.status == "running"
        or e.label in keep_labels
        or older_than is None
        or now - e.started_at < older_than
    ]


class References:
    """The referenced output dirs, to ask whether a folder holds, or lies in, one of them."""

    def __init__(self, output_dirs: Iterable[str]) -> None:
        self.exact: set[tuple[str, ...]] = set()
        self.within: set[tuple[str, ...]] = set()  # referenced paths and all their ancestors
        for output_dir in output_dirs:
            for key in _keys(Path(output_dir)):
                self.exact.add(key)
                self.within.update(key[:n] for n in range(1, len(key) + 1))

    def covers(self, folder: Path) -> bool:
        """A referenced path is the folder, inside it, or above it."""
        return any(
            key in self.within or any(key[:n] in self.exact for n in range(1, len(key)))
            for key in _keys(folder)
        )

    def listed_in(self, pipeline: Path) -> bool:
        """A pipeline's steps/*.json listings name a referenced output dir."""
        return any(
            any(key in self.exact for key in _keys(Path(output_dir)))
            for output_dir in _listed_output_dirs(pipeline)
        )


def _keys(path: Path) -> list[tuple[str, ...]]:
    """How a path is matched: its resolved parts, and its parts below the last `runs` folder."""
    parts = path.resolve().parts
    keys = [parts]
    original = Path(os.path.normpath(path.absolute())).parts
    for candidate in (parts, original):
        if "runs" in candidate[:-1]:
            last = len(candidate) - 1 - candidate[::-1].index("runs")
            keys.append(("runs", *candidate[last + 1 :]))
    return keys


def _listed_output_dirs(pipeline: Path) -> Iterator[str]:
    for listing in sorted((pipeline / "steps").glob("*.json")):
        try:
            runs = json.loads(listing.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(runs, list):
            yield from (
                str(r["output_dir"]) for r in runs if isinstance(r, dict) and r.get("output_dir")
            )


def find_units(runs_root: Path) -> Iterator[tuple[Path, bool]]:
    """(folder, is_pipeline) for each run directory and pipeline folder under runs_root."""
    if not runs_root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(runs_root, followlinks=False):
        folder = Path(dirpath)
        depth = len(folder.relative_to(runs_root).parts)
        if depth and "run.json" in filenames:
            yield _committing(folder) or folder, False
        elif depth == 2 and _is_pipeline(folder, dirnames):
            yield folder, True
        else:
            dirnames.sort()  # units come in path order
            continue
        dirnames[:] = []  # a unit is removed whole: nothing below it is a unit of its own


def _committing(attempt: Path) -> Path | None:
    """The fingerprint's symlink whose committed result the attempt is, if it is one: the
    unit is then the fingerprint (its symlink and that attempt, removed together)."""
    link = run_dir_of(attempt)
    if link == attempt or not link.is_symlink():
        return None
    return link if committed_attempt(link) == attempt else None


def _is_pipeline(folder: Path, dirnames: list[str]) -> bool:
    steps = any(_STEP.fullmatch(d) and _holds_run(folder / d) for d in dirnames)
    return steps or ("steps" in dirnames and any((folder / "steps").glob("before-step-*.json")))


def _holds_run(step: Path) -> bool:
    """A pipeline step folder is a run dir, or holds run dirs (one per fingerprint)."""
    return (step / "run.json").is_file() or any(step.glob("*/run.json"))


def tree_size(folder: Path) -> int:
    """The sizes (lstat) of the files and symlinks under folder; symlinks are not followed."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                total += tree_size(Path(entry.path))
            else:
                total += entry.stat(follow_symlinks=False).st_size
    return total


# ---------------------------------------------------------------- applying
def apply_gc(gc_plan: GcPlan) -> GcResult:
    """Remove the plan's folders (re-checking each), then the folders they leave empty."""
    result = GcResult()
    root = gc_plan.runs_root.resolve()
    for removal in gc_plan.removals:
        reason = _refusal(removal.path, root, gc_plan.planned_at)
        if reason is None:
            reason = _remove(removal, gc_plan.runs_root)
        if reason is None:
            result.removed.append(removal)
        else:
            result.skipped.append((removal, reason))
    _remove_dangling({r.path.parent for r in result.removed})
    result.emptied = remove_empty_parents([r.path for r in result.removed], gc_plan.runs_root)
    return result


def _remove_dangling(folders: Iterable[Path]) -> None:
    """The symlinks of fingerprints whose committed attempt is gone, and swap leftovers."""
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                swap = entry.name.startswith(".") and entry.name.endswith(".swap")
                if entry.is_symlink() and (swap or not Path(entry.path).exists()):
                    with contextlib.suppress(OSError):
                        Path(entry.path).unlink()


def _refusal(folder: Path, root: Path, planned_at: float) -> str | None:
    """Why folder must not be removed now, or None."""
    if folder.is_symlink():  # a fingerprint: its committed attempt, beside it
        target = committed_attempt(folder)
        if target is None or target.is_symlink() or not target.is_dir():
            return "no longer a folder"
        folder = target
    if folder.is_symlink() or not folder.is_dir():
        return "no longer a folder"
    if not folder.resolve().is_relative_to(root) or folder.resolve() == root:
        return f"not inside {root}"
    if _changed_since(folder, planned_at):
        return "changed since planning (a run may have started there)"
    return None


def _changed_since(folder: Path, when: float) -> bool:
    if folder.lstat().st_mtime > when:
        return True
    with os.scandir(folder) as entries:
        return any(entry.stat(follow_symlinks=False).st_mtime > when for entry in entries)


def _remove(removal: Removal, runs_root: Path) -> str | None:
    """Remove the folder while holding the locks of its runs, or say why not."""
    folder = removal.path
    inner = sorted(p for p in folder.glob("step-*/*") if p.is_dir()) if removal.pipeline else []
    with contextlib.ExitStack() as stack:
        if not all(
            try_run_lock(run_dir_of(run), stack, lock_dir_of(run_dir_of(run), runs_root))
            for run in (folder, *inner)
        ):
            return "in use: a run holds its lock"
        try:
            if folder.is_symlink():  # first the fingerprint's link: no run reads half a result
                target = committed_attempt(folder)
                folder.unlink()
                if target is not None:
                    shutil.rmtree(target)
            else:
                shutil.rmtree(folder)
        except OSError as exc:
            return f"cannot be removed: {exc.strerror or exc}"
    return None


def remove_empty_parents(removed: Iterable[Path], runs_root: Path) -> int:
    """Remove the folders above removed ones that are now empty, up to (not) runs_root."""
    count = 0
    for path in sorted({p.parent for p in removed}, key=lambda p: -len(p.parts)):
        folder = path
        while folder != runs_root and folder.is_relative_to(runs_root):
            if folder.is_symlink() or not _rmdir(folder):
                break
            count += 1
            folder = folder.parent
    return count


def _rmdir(folder: Path) -> bool:
    locks = folder / LOCKS  # run locks: a folder with nothing else in it is empty
    with contextlib.suppress(OSError):
        if [entry.name for entry in os.scandir(folder)] == [LOCKS] and not locks.is_symlink():
            locks.unlink()
    try:
        folder.rmdir()  # only ever succeeds on an empty folder
    except OSError:
        return False
    return True
