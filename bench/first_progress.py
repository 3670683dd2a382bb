"""Benchmark: how soon `qa batch` shows its first progress, from the command's start.

Starts `qa batch` as a user does (a new process) on a batch of trivial runs, and times the
first line it prints (the execution's header, which follows planning) and the process's end.
Target: the first progress within 0.2 s.

    python bench/first_progress.py [--runs 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = "def run(context):\n    return {'x': 1}\n"


def make_project(root: Path, runs: int) -> None:
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("inputs:\n  globs: '*.in'\n")
    (root / "qa" / "main.py").write_text(MAIN)
    (root / "qa" / "batches.yaml").write_text("big:\n  inputs: [data]\n")
    for i in range(runs):
        path = root / "data" / f"{i:05d}.in"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))


def once(root: Path, *args: str) -> tuple[float, float]:
    """(seconds to the first line of output, seconds to the end)."""
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "big", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as qa:
        assert qa.stdout is not None
        qa.stdout.readline()
        first = time.perf_counter() - start
        qa.stdout.read()
        qa.wait()
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.runs)
        for label, extra in (("executing", ("--force",)), ("all cached", ())):
            firsts, ends = zip(*(once(root, *extra) for _ in range(args.repeat)), strict=True)
            print(
                f"{label:<10}  first progress: median {statistics.median(firsts):.3f} s "
                f"(min {min(firsts):.3f})  end: median {statistics.median(ends):.3f} s"
            )


if __name__ == "__main__":
    main()
