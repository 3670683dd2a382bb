"""Output-file comparison of matched runs by hash: QA-Board's bit-accuracy check.

Every file of a matched pair of output directories is identical, different, missing (in
REF's directory, not in NEW's) or added (only in NEW's). qaflow's own files at the top of a
run directory (run.json, log.txt, metrics.json, manifest.outputs.json) are left out: they
hold times, paths and hosts that differ between any two runs. Files of different sizes are
different without being read; files of the same size are hashed (blake2b), in threads.
Two runs that share one directory (a reused result) are identical without reading a byte.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qaflow.results.compare import Comparison, Row
from qaflow.worker.rundir import OWN_FILES

FileStatus = Literal["identical", "different", "missing", "added"]
FAILING: frozenset[str] = frozenset({"different", "missing"})


@dataclass(frozen=True)
class FileDiff:
    path: str  # relative to the run's output directory, with /
    status: FileStatus
    ref_size: int | None
    new_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "ref_size": self.ref_size,
            "new_size": self.new_size,
        }


@dataclass(frozen=True)
class RunFiles:
    """The files of one matched pair of runs."""

    batch: str
    input: str | None
    configuration: str
    ref_dir: str
    new_dir: str
    files: tuple[FileDiff, ...]

    @property
    def failed(self) -> bool:
        return any(f.status in FAILING for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "input": self.input,
            "configuration": self.configuration,
            "ref_dir": self.ref_dir,
            "new_dir": self.new_dir,
            "failed": self.failed,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True)
class FilesComparison:
    runs: tuple[RunFiles, ...]
    ignore: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(f.status for run in self.runs for f in run.files)
        return {status: found[status] for status in ("identical", "different", "missing", "added")}

    @property
    def failed(self) -> bool:
        """What `--files` exits 1 on: a file that differs or is missing."""
        return any(run.failed for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ignore": list(self.ignore),
            "counts": self.counts,
            "failed": self.failed,
            "runs": [run.to_dict() for run in self.runs],
        }


def compare_files(
    comparison: Comparison,
    *,
    ignore: Sequence[str] = (),
    root: Path | None = None,
    threads: int = 8,
) -> FilesComparison:
    """Compare the output files of every matched run; relative output dirs are under `root`."""
    rows = list(comparison.rows)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        runs = pool.map(lambda row: _run_files(row, tuple(ignore), root), rows)
        return FilesComparison(runs=tuple(runs), ignore=tuple(ignore))


def _run_files(row: Row, ignore: tuple[str, ...], root: Path | None) -> RunFiles:
    ref_dir, new_dir = _absolute(row.ref.output_dir, root), _absolute(row.new.output_dir, root)
    ref, new = listing(ref_dir, ignore), listing(new_dir, ignore)
    same_dir = os.path.normpath(ref_dir) == os.path.normpath(new_dir)
    files = tuple(
        _file(path, ref_dir, new_dir, ref.get(path), new.get(path), same_dir)
        for path in sorted(ref.keys() | new.keys())
    )
    return RunFiles(row.batch, row.input, row.configuration, ref_dir, new_dir, files)


def _file(
    path: str, ref_dir: str, new_dir: str, ref: int | None, new: int | None, same_dir: bool
) -> FileDiff:
    status: FileStatus
    if new is None:
        status = "missing"
    elif ref is None:
        status = "added"
    elif same_dir or (ref == new and _hash(ref_dir, path) == _hash(new_dir, path)):
        status = "identical"
    else:
        status = "different"
    return FileDiff(path, status, ref, new)


def _absolute(path: str, root: Path | None) -> str:
    return path if Path(path).is_absolute() or root is None else str(root / path)


def listing(folder: str, ignore: Sequence[str] = ()) -> dict[str, int]:
    """{relative path: size} of a run's files, qaflow's own and ignored ones left out."""
    found: dict[str, int] = {}
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        prefix = os.path.relpath(top, folder).replace(os.sep, "/")
        prefix = "" if prefix == "." else f"{prefix}/"
        for name in files:
            rel = prefix + name
            if (not prefix and name in OWN_FILES) or ignored(rel, ignore):
                continue
            try:
                found[rel] = (Path(top) / name).stat().st_size
            except OSError:  # removed meanwhile, or a dangling link
                continue
    return found


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """A glob matches the relative path or the file's name (`*.log`, `debug/*`)."""
    name = path.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _hash(folder: str, path: str) -> str:
    with open(Path(folder, path), "rb") as file:
        return hashlib.file_digest(file, "blake2b").hexdigest()
