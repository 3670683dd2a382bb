"""Benchmark: per-run overhead of the local pool alone: 2,000 trivial runs at concurrency 2.

Runs `execute()` in the pool's workers for a run() returning {"x": 1}, without planning or
storing. Reports the wall time and the overhead per run (wall x concurrency / runs: the time a
worker slot spends per run that is not the user's code). Target: under 3 ms per run.

    python bench/overhead_pool.py [--runs 2000] [--concurrency 2] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from qaflow.execution.executors.local import LocalPool
from qaflow.worker.model import RunStatus
from qaflow.worker.task import RunPayload, RunTask

MAIN = "def run(context):\n    return {'x': 1}\n"


def task(root: Path, index: int) -> RunTask:
    payload = RunPayload(
        batch="bench",
        batch_file=None,
        input_path=str(root / "data" / f"{index:05d}.in"),
        rel_input_path=f"{index:05d}.in",
        database=str(root / "data"),
        type="default",
        configurations=(),
        params={},
        platform="linux",
        matrix={},
        output_dir=str(root / "output" / f"d{index // 500}" / f"{index:05d}"),
    )
    return RunTask(
        key=f"{index:05d}", payload=payload, project_root=str(root), entrypoint="qa/main.py"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--dir", help="where to write the runs' outputs (default: the temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        (root / "qa").mkdir()
        (root / "qa" / "main.py").write_text(MAIN)
        tasks = [task(root, i) for i in range(args.runs)]
        with LocalPool(args.concurrency) as pool:
            pool.submit(task(root, args.runs)).result()  # workers up, entrypoint imported
            start = time.perf_counter()
            futures = [pool.submit(t) for t in tasks]
            statuses = [future.result().status for future in futures]
            wall = time.perf_counter() - start
    assert statuses == [RunStatus.SUCCEEDED] * args.runs
    overhead = wall * args.concurrency / args.runs * 1000
    print(f"{args.runs} runs, concurrency {args.concurrency}: wall {wall:.2f} s")
    print(f"overhead per run: {overhead:.2f} ms (target < 3 ms)")


if __name__ == "__main__":
    main()
