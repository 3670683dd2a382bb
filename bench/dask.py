"""Benchmark: 2,000 runs of 10 ms on a Dask LocalCluster of 2 workers, next to the local runner.

Prints runs per second for both, each including its start-up (the cluster's workers, or the
local pool's) and the store, as `qa batch` pays them, and their ratio. The runs only sleep
(`--sleep`, 10 ms), so the figures are qaflow's overhead per run on each runner. Short runs
are packed on Dask (`qaflow.execution.executors.dask_pack`). Target: Dask at least 70% of
the local runner's runs per second.

    python bench/dask.py [--runs 2000] [--workers 2] [--sleep 0.01] [--repeat 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named dask.py: its folder must not shadow the dask package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def make_project(root: Path, runs: int, workers: int, sleep: float = 0.0) -> None:
    """bench/overhead.py's project, with a Dask LocalCluster as the default runner."""
    spec = importlib.util.spec_from_file_location(
        "overhead", Path(__file__).with_name("overhead.py")
    )
    assert spec and spec.loader
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    overhead.make_project(root, runs)
    if sleep:
        (root / "qa" / "main.py").write_text(
            f"import time\n\n\ndef run(context):\n    time.sleep({sleep})\n    return {{'x': 1}}\n"
        )
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
    parser.add_argument("--sleep", type=float, default=0.01, help="seconds each run sleeps")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="repetitions, each starting with the other runner; medians",
    )
    args = parser.parse_args()
    times: dict[str, list[float]] = {"dask": [], "local": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.runs, args.workers, args.sleep)
        plan_once(root)
        for rep in range(args.repeat):
            # the runner going first meets a project whose run folders are new, and the one
            # after it the disk still writing the first's files: they take turns, and each
            # starts once the files before it are on disk
            for runner in ("dask", "local") if rep % 2 == 0 else ("local", "dask"):
                os.sync()
                times[runner].append(timed(root, runner, args.runs, args.workers))
    on_dask, local = statistics.median(times["dask"]), statistics.median(times["local"])
    print(f"{args.runs} runs of {args.sleep * 1000:.0f} ms, {args.workers} workers")
    print(f"dask (LocalCluster): {on_dask:.2f} s, {args.runs / on_dask:.0f} runs/s")
    print(f"local runner:        {local:.2f} s, {args.runs / local:.0f} runs/s")
    print(f"dask / local runs/s: {local / on_dask:.0%}   target: >= 70%")


if __name__ == "__main__":
    main()
