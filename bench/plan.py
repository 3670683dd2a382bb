"""Benchmark: plan (`qa batch --list`) a batch of 10,000 inputs x 2 configurations.

Writes a project with a folder of 10,000 input files into a temporary folder, then times
the whole `qa batch big --list` process (as a user waits for it) and `plan()` in-process.
Target: median under 1 second for the whole process.

    python bench/plan.py [--inputs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCHES = """
big:
  inputs: [images]
  configs: [base]
  matrix:
    configs: [[fast], [precise]]
"""


def make_project(root: Path, count: int) -> None:
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("inputs:\n  globs: '*.raw'\n")
    (root / "qa" / "batches.yaml").write_text(BATCHES)
    for i in range(count):
        folder = root / "images" / f"set{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:05d}.raw").write_bytes(b"x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.inputs)
        command = [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "big", "--list"]
        wall = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = subprocess.run(command, capture_output=True, check=True)
            wall.append(time.perf_counter() - start)
        runs = out.stdout.count(b'"batch": "big"')
        from qaflow.config.project import Project
        from qaflow.plan.planner import plan

        inproc = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            planned = plan(Project.load(root), ["big"])
            inproc.append(time.perf_counter() - start)
        assert len(planned.runs) == runs == 2 * args.inputs, (len(planned.runs), runs)
    print(f"runs planned: {runs}")
    print(
        f"`qa batch big --list` (whole process): median {statistics.median(wall):.3f}s  min {min(wall):.3f}s  (n={args.repeat})"
    )
    print(
        f"plan() in-process:                      median {statistics.median(inproc):.3f}s  min {min(inproc):.3f}s"
    )


if __name__ == "__main__":
    main()
