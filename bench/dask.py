"""Benchmark: 2,000 trivial runs on a Dask LocalCluster of 2 workers, next to the local runner.

Prints runs per second for both, each including its start-up (the cluster's workers, or the
local pool's) and the store, as `qa batch` pays them. The runs do nothing (`run()` returns a
constant), so the figures are qaflow's overhead per run on each runner.

    python bench/dask.py [--runs 2000] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named dask.py: its folder must not shadow the dask package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def make_project(root: Path, runs: int, workers: int) -> None:
    """bench/overhead.py's project, with a Dask LocalCluster as the default runner."""
    spec = importlib.util.spec_from_file_location(
        "overhead", Path(__file__).with_name("overhead.py")
    )
    assert spec and spec.loader
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    overhead.make_project(root, runs)
    with open(root / "qaboard.yaml", "a") as config:
        config.write(
            "runners:\n  dask:\n    cluster: "
            f"{{type: local, n_workers: {workers}, threads_per_worker: 1}}\n"
        )


def plan_once(root: Path) -> None:
    """Hash the inputs once, so that neither runner's figure pays for it."""
    from qaflow.config.project import Project
    from qaflow.plan.planner import plan

    plan(Project.load(root), ["big"], persist=True)


def timed(root: Path, runner: str, runs: int, workers: int) -> float:
    import qaflow
    from qaflow.execution.report import ConsoleReporter

    start = time.perf_counter()
    execution = qaflow.batch(
        "big",
        project=root,
        runner=runner,
        concurrency=workers,
        force=True,
        reporter=ConsoleReporter(quiet=True),
    )
    wall = time.perf_counter() - start
    ok = sum(run.status.ok for run in execution.runs())
    assert ok == runs, f"{ok} of {runs} runs succeeded on {runner}"
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.runs, args.workers)
        plan_once(root)
        on_dask = timed(root, "dask", args.runs, args.workers)
        local = timed(root, "local", args.runs, args.workers)
    print(f"{args.runs} trivial runs, {args.workers} workers")
    print(f"dask (LocalCluster): {on_dask:.2f} s, {args.runs / on_dask:.0f} runs/s")
    print(f"local runner:        {local:.2f} s, {args.runs / local:.0f} runs/s")


if __name__ == "__main__":
    main()
