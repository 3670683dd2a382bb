"""Benchmark: `qa compare` of two executions of 10,000 runs each, in a store of 100,000 runs.

Builds a project in a temporary folder whose SQLite store holds 10 executions of 10,000
runs (through Writes.add_runs and Writes.record, as `qa batch` fills it), each run with 5
metrics, then times whole `qa compare` processes between the last two executions, once per
output format, and `qa history` over all ten. Target: each `qa compare` under 2 s.

    python bench/compare.py [--runs 10000] [--executions 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qaflow.config.git import GitInfo
from qaflow.store import Store
from qaflow.worker.model import RunResult, RunStatus

METRICS_YAML = """\
available_metrics:
  loss: {label: Loss, tolerance: 5%}
  psnr: {label: PSNR, smaller_is_better: false, suffix: dB, target: 20, target_passfail: true}
  recall: {scale: 100, suffix: '%'}
main_metrics: [loss, psnr, recall, ssim, runtime]
"""


def spec(i: int, root: Path, execution: int) -> dict[str, Any]:
    batch = f"batch{i % 4}"
    return {
        "batch": batch,
        "batch_file": str(root / "qa" / "batches.yaml"),
        "input_path": f"/data/images/set{i // 1000:02d}/img{i:05d}.raw",
        "rel_input_path": f"images/set{i // 1000:02d}/img{i:05d}.raw",
        "database": "/data",
        "type": "image",
        "configurations": ["base", {"threshold": i % 7}],
        "configs": ["base", {"threshold": i % 7}],
        "params": {"threshold": i % 7},
        "platform": "linux",
        "matrix": {},
        "output_dir": str(root / "output" / "runs" / batch / f"img{i:05d}" / f"{execution:04d}"),
        "id": f"{i:016x}",
        "fingerprint": f"{execution:04d}{i:012x}",
    }


def metrics(rng: random.Random) -> dict[str, Any]:
    return {
        "loss": rng.random(),
        "psnr": 20 + 20 * rng.random(),
        "recall": rng.random(),
        "ssim": rng.random(),
        "runtime": rng.random() * 3,
        "is_failed": False,
        "compute_time": rng.random(),
    }


def build(root: Path, runs: int, executions: int) -> None:
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("project: {name: bench}\n")
    (root / "qa" / "metrics.yaml").write_text(METRICS_YAML)
    rng = random.Random(7)
    with Store.open(storage=root / "output") as store:
        for n in range(executions):
            execution_id = store.writes.create_execution(
                label=f"run{n}",
                project="bench",
                argv=["qa", "batch"],
                git=GitInfo(f"{n:040x}", "main", False),
                pid=None,
                host=None,
            )
            store.writes.add_runs(execution_id, [spec(i, root, n) for i in range(runs)])
            results = [
                RunResult(key=f"{i:016x}", status=RunStatus.SUCCEEDED, metrics=metrics(rng))
                for i in range(runs)
            ]
            store.writes.record(execution_id, finished=results)
            store.writes.finish_execution(execution_id, "succeeded")


def timed(root: Path, *args: str) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds (user + system: what other load on the machine does not
    inflate) of one whole `qa` process, and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args],
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--executions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        started = time.perf_counter()
        build(root, options.runs, options.executions)
        total = options.runs * options.executions
        print(f"store of {total:,} runs built in {time.perf_counter() - started:.1f}s")
        ref, new = f"run{options.executions - 2}", f"run{options.executions - 1}"
        cases = {
            "qa --help": ["--help"],
            "compare (table, piped)": ["compare", ref, new],
            "compare --all": ["compare", ref, new, "--all"],
            "compare --format json": ["compare", ref, new, "--format", "json"],
            "compare --format csv": ["compare", ref, new, "--format", "csv"],
            "compare --format markdown": ["compare", ref, new, "--format", "markdown"],
            "compare --fail-on-regression": ["compare", ref, new, "--fail-on-regression"],
            "history batch0 -m loss": ["history", "batch0", "-m", "loss"],
        }
        print(f"{options.runs:,} vs {options.runs:,} runs; median of {options.repeat} processes")
        for name, args in cases.items():
            walls, cpus, codes = zip(
                *(timed(root, *args) for _ in range(options.repeat)), strict=True
            )
            print(
                f"{name:<30} wall {statistics.median(walls):.2f}s (min {min(walls):.2f}s)  "
                f"cpu {statistics.median(cpus):.2f}s  exit {codes[0]}"
            )


if __name__ == "__main__":
    main()
