"""Benchmark: per-run overhead of `qa batch`: 2,000 runs of a trivial Python run() at concurrency 2.

Reports the wall time, the overhead per run (wall x concurrency / runs: the time a worker
slot spends per run that is not the user's code, since the code does nothing) and the
driver's peak memory (the process running the scheduler; workers are separate processes).
Targets: under 3 ms per run, driver under 150 MB.

    python bench/overhead.py [--runs 2000] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import resource
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
        path = root / "data" / f"d{i // 500}" / f"{i:05d}.in"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.runs)
        import qaflow
        from qaflow.execution.report import ConsoleReporter

        start = time.perf_counter()
        execution = qaflow.batch(
            "big", project=root, concurrency=args.concurrency, reporter=ConsoleReporter(quiet=True)
        )
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ok = sum(run.status.ok for run in execution.runs())
        assert ok == args.runs, f"{ok} of {args.runs} runs succeeded"
        command = [
            sys.executable,
            "-m",
            "qaflow",
            "-C",
            str(root),
            "batch",
            "big",
            "--force",  # the runs are up to date by now: execute them again
            "--local-concurrency",
            str(args.concurrency),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        process_wall = time.perf_counter() - start
    per_run_ms = wall * args.concurrency / args.runs * 1000
    print(f"{args.runs} runs at concurrency {args.concurrency}")
    print(
        f"in-process qaflow.batch(): wall {wall:.2f}s, overhead {per_run_ms:.2f} ms/run, driver peak RSS {peak_mb:.0f} MB"
    )
    print(
        f"whole `qa batch` process: wall {process_wall:.2f}s, overhead {process_wall * args.concurrency / args.runs * 1000:.2f} ms/run"
    )


if __name__ == "__main__":
    main()
