"""Benchmark: early cutoff on the calibration-shaped DAG A (4 inputs) -> B (1 run) -> C (100 inputs).

Every run is a shell command (`type: script`): A upper-cases its input into out.txt, B
concatenates A's outputs into calib.txt, each C run reads B's calib.txt. After a first
execution, three cases, each a whole `qa batch C` process:
  (a) nothing changed                                   -> 0 runs execute;
  (b) a calibration input edited, A's output identical  -> 1 run executes (that A run);
  (c) a calibration input edited, A's output changed    -> 1 + 1 + 100 runs execute.
Counts are the lines each executed run appends to a log; times are wall-clock.

    python bench/cutoff.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

INPUTS = 100
BATCHES = f"""
A:
  type: script
  inputs: [cal/c1.raw, cal/c2.raw, cal/c3.raw, cal/c4.raw]
  configs: ["echo A >> runs.log && tr a-z A-Z < {{input_path}} > $QA_OUTPUT_DIR/out.txt"]
B:
  type: script
  needs: A
  configs: ["echo B >> runs.log && for d in ${{o.output_dir for o in needs['A']}}; do cat $d/out.txt; done > $QA_OUTPUT_DIR/calib.txt"]
C:
  type: script
  needs: {{calib: B}}
  inputs: [{", ".join(f"img/i{i:03d}.raw" for i in range(INPUTS))}]
  configs: ["echo C >> runs.log && cat ${{calib.output_dir}}/calib.txt {{input_path}} > $QA_OUTPUT_DIR/out.txt"]
"""


def make_project(root: Path) -> None:
    for i in range(1, 5):
        path = root / "data" / "cal" / f"c{i}.raw"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"chart {i}\n")
    for i in range(INPUTS):
        path = root / "data" / "img" / f"i{i:03d}.raw"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"image {i}\n")
    (root / "qa").mkdir()
    (root / "qaboard.yaml").write_text("inputs:\n  database: data\n")
    (root / "qa" / "batches.yaml").write_text(BATCHES)


def execute(root: Path) -> tuple[Counter[str], float]:
    log = root / "runs.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "C", "--local-concurrency", "2"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    return Counter(log.read_text().splitlines()[before:]), elapsed


def shown(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return f"{total} executed (A {counts['A']}, B {counts['B']}, C {counts['C']})"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root)
        counts, first = execute(root)
        print(f"first execution:                         {shown(counts)} in {first:.2f}s")
        counts, seconds = execute(root)
        assert sum(counts.values()) == 0, counts
        print(f"(a) nothing changed:                     {shown(counts)} in {seconds:.2f}s")
        (root / "data" / "cal" / "c2.raw").write_text("CHART 2\n")  # upper-cased: the same
        counts, seconds = execute(root)
        assert counts == Counter({"A": 1}), counts
        print(f"(b) input edited, A's output identical:  {shown(counts)} in {seconds:.2f}s")
        (root / "data" / "cal" / "c2.raw").write_text("chart 2, re-measured\n")
        counts, seconds = execute(root)
        assert counts == Counter({"A": 1, "B": 1, "C": INPUTS}), counts
        print(f"(c) input edited, A's output changed:    {shown(counts)} in {seconds:.2f}s")


if __name__ == "__main__":
    main()
