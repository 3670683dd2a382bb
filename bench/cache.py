"""Benchmark: a fully cached DAG of 10,000 runs in 3 batches: `qa batch` and `qa --dryrun batch`.

The DAG: `images` (5,000 inputs) -> `evaluate` (4,999 runs, per-input needs) -> `summary`
(a script run that needs them all). After one real execution, and once its files are on
disk (os.sync: else the kernel's writeback of its 10,000 run folders slows the timed runs'
commits), times the whole `qa batch` process (which must report 10,000 cached) and
`qa --dryrun batch`, as a user waits for them. Target (issue 18): `qa batch` under 0.5 s;
the parts no implementation can skip are measured by `bench/floors.py`.

    python bench/cache.py [--inputs 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import bytecode_env  # the bench folder: timed processes keep compiled modules

MAIN = "def run(context):\n    return {'ok': 1}\n"


def make_project(root: Path, count: int) -> None:
    names = [f"d{i // 1000}/i{i:05d}.raw" for i in range(count)]
    for name in names:
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (root / "qa").mkdir()
    (root / "qaboard.yaml").write_text("inputs:\n  database: data\n  globs: '*.raw'\n")
    (root / "qa" / "main.py").write_text(MAIN)
    evaluated = "\n".join(f"  - {name}" for name in names[:-1])
    (root / "qa" / "batches.yaml").write_text(
        "images:\n  inputs: [d*]\n"
        f"evaluate:\n  needs: {{img: {{batch: images, per: input}}}}\n  inputs:\n{evaluated}\n"
        "summary:\n  needs: evaluate\n  type: script\n  configs: ['echo ${len(needs[\"evaluate\"])}']\n"
    )


def timed(command: list[str], repeat: int) -> tuple[list[float], bytes]:
    times, out = [], b""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, env=bytecode_env()).stdout
        times.append(time.perf_counter() - start)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.inputs)
        qa = [sys.executable, "-m", "qaflow", "-C", str(root)]
        start = time.perf_counter()
        subprocess.run(
            [*qa, "batch", "summary", "--local-concurrency", "2"],
            check=True,
            capture_output=True,
            env=bytecode_env(),
        )
        first = time.perf_counter() - start
        os.sync()  # the first execution's 10,000 run folders reach the disk before timing
        runs = 2 * args.inputs
        batch_times, out = timed([*qa, "batch", "summary"], args.repeat)
        assert f"images: {args.inputs} run(s) up to date".encode() in out, out[-2000:]
        assert f"evaluate: {args.inputs - 1} run(s) up to date".encode() in out, out[-2000:]
        dry_times, dry = timed([*qa, "--dryrun", "batch", "summary"], args.repeat)
        assert f"{runs} run(s) planned, 0 to run, {runs} cached".encode() in dry, dry[-500:]
    print(
        f"DAG of {runs} runs (images {args.inputs} -> evaluate {args.inputs - 1} -> summary 1); first execution {first:.1f}s"
    )
    print(
        f"`qa batch summary` fully cached (whole process): median {statistics.median(batch_times):.3f}s  min {min(batch_times):.3f}s  (n={args.repeat})"
    )
    print(
        f"`qa --dryrun batch summary` (whole process):     median {statistics.median(dry_times):.3f}s  min {min(dry_times):.3f}s"
    )


if __name__ == "__main__":
    main()
