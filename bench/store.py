"""Benchmark: the run store's costs on SQLite, per call, as `qa batch` pays them.

Times, in a new SQLite store in a temporary folder: opening it (new, then existing),
add_runs of 10,000 planned runs (one call), and 2,000 runs' run_started + run_finished.
Targets: add_runs(10,000) well under 1 s; run_started + run_finished well under 1 ms.

    python bench/store.py [--runs 10000] [--executed 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from qaflow.config.git import GitInfo
from qaflow.store import Store
from qaflow.worker.model import RunResult, RunStatus


def specs(count: int) -> list[dict[str, Any]]:
    return [
        {
            "batch": "big",
            "batch_file": "/project/qa/batches.yaml",
            "input_path": f"/data/images/set{i // 1000:02d}/img{i:05d}.raw",
            "rel_input_path": f"images/set{i // 1000:02d}/img{i:05d}.raw",
            "database": "/data",
            "type": "image",
            "configurations": ["base", "fast", {"threshold": i % 7}],
            "configs": ["base", "fast", {"threshold": i % 7}],
            "params": {"threshold": i % 7},
            "platform": "linux",
            "matrix": {"configs": ["fast"]},
            "output_dir": f"/project/output/runs/big/images/img{i:05d}.raw/{i:012x}",
            "id": f"{i:016x}",
        }
        for i in range(count)
    ]


def once(storage: Path, count: int, executed: int) -> dict[str, float]:
    """Seconds per call of each operation, in a new store."""
    started = time.perf_counter()
    store = Store.open(storage=storage)
    open_new = time.perf_counter() - started
    store.close()
    started = time.perf_counter()
    store = Store.open(storage=storage)
    open_existing = time.perf_counter() - started
    try:
        execution_id = store.writes.create_execution(
            label="bench", project="bench", argv=["qa"], git=GitInfo(), pid=None, host=None
        )
        planned = specs(count)
        started = time.perf_counter()
        store.writes.add_runs(execution_id, planned)
        add_runs = time.perf_counter() - started
        started = time.perf_counter()
        for spec in planned[:executed]:
            now = time.time()
            store.writes.run_started(execution_id, spec["id"], started_at=now, host="h", attempt=1)
            result = RunResult(
                key=spec["id"],
                status=RunStatus.SUCCEEDED,
                metrics={"psnr": 31.4, "per_channel": [1.0, 2.0, 3.0], "ok": True},
                started_at=now,
                ended_at=time.time(),
                host="h",
            )
            store.writes.run_finished(execution_id, result)
        pairs = (time.perf_counter() - started) / executed
    finally:
        store.close()
    return {
        "open (new database)": open_new,
        "open (existing database)": open_existing,
        f"add_runs({count:,})": add_runs,
        "run_started + run_finished": pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--executed", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="qaflow-bench-store-") as folder:
            for name, seconds in once(Path(folder), args.runs, args.executed).items():
                samples.setdefault(name, []).append(seconds)
    print(f"SQLite store, median of {args.repeat}:")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:<28} {median * 1e6:>12,.0f} µs per call")
    pairs = statistics.median(samples["run_started + run_finished"])
    print(
        f"  per run: {pairs * 1e6:,.0f} µs; {args.executed:,} runs: {pairs * args.executed:.2f} s"
    )


if __name__ == "__main__":
    main()
