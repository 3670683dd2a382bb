"""Benchmark: how soon `qa batch` shows its first progress, from the command's start.

Starts `qa batch` as a user does (a new process, on a terminal: a pseudo-terminal) on a
batch of trivial runs, and times the first thing it shows (the spinner, before its imports
and planning), its header line (after planning) and its end. Target: the first progress
within 0.2 s.

    python bench/first_progress.py [--runs 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pty
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


def once(root: Path, *args: str) -> tuple[float, float, float]:
    """(seconds to the first byte on the terminal, to the first line on stdout, to the end).

    stdout and stderr are one pseudo-terminal, as for a user at a terminal."""
    main, follower = pty.openpty()
    start = time.perf_counter()
    qa = subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "big", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    first_byte = first_line = 0.0
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        now = time.perf_counter() - start
        first_byte = first_byte or now
        seen += chunk
        if not first_line and b"execution " in seen:
            first_line = now
    qa.wait()
    os.close(main)
    return first_byte, first_line, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.runs)
        for label, extra in (("executing", ("--force",)), ("all cached", ())):
            times = [once(root, *extra) for _ in range(args.repeat)]
            firsts, lines, ends = (statistics.median(t[i] for t in times) for i in range(3))
            print(
                f"{label:<10}  first progress (spinner): median {firsts:.3f} s  "
                f"header line: {lines:.3f} s  end: {ends:.3f} s"
            )


if __name__ == "__main__":
    main()
