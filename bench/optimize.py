"""Benchmark: 20 trials of a 10-run batch with `qa optimize --parallel 2`, against the same 20
trials as sequential `qa batch` calls (what QA-Board's `qa optimize` does: one batch command
per iteration, each a new process).

Each run sleeps `--work` seconds (the algorithm's work) and returns a quadratic loss of two
tuned parameters. Both sides use a local pool of 2 workers, fresh projects (nothing cached),
and the same 20 parameter sets: the study's (random sampler, seeded), replayed as `--tuning`.
Prints both wall times and their ratio. The machine may be shared: the figures are noisy.

    python bench/optimize.py [--trials 20] [--runs 10] [--work 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MAIN = """
import time

def run(context):
    p = context.params
    time.sleep(float(p.get("work", 0)))
    loss = (float(p["x"]) - 0.3) ** 2 + (float(p["y"]) + 0.2) ** 2
    return {"loss": loss}
"""


def make_project(root: Path, runs: int, work: float, trials: int) -> None:
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("project: {name: bench/optimize}\n")
    inputs = [f"i{n}.txt" for n in range(runs)]
    for name in inputs:
        (root / name).write_text(name)
    (root / "qa" / "main.py").write_text(textwrap.dedent(MAIN))
    (root / "qa" / "metrics.yaml").write_text(
        "available_metrics: {loss: {smaller_is_better: true}}\n"
    )
    (root / "qa" / "batches.yaml").write_text(
        f"ten:\n  inputs: {json.dumps(inputs)}\n  configs: [{{work: {work}}}]\n"
    )
    (root / "search.yaml").write_text(
        "space: {x: {low: -1.0, high: 1.0}, y: {low: -1.0, high: 1.0}}\n"
        f"objective: {{loss: minimize}}\nevaluations: {trials}\nsampler: random\nseed: 1\n"
    )


def qa(root: Path, *args: str) -> None:
    command = [sys.executable, "-m", "qaflow", "-C", str(root), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def study_params(root: Path) -> list[dict[str, float]]:
    command = [
        sys.executable,
        "-m",
        "qaflow",
        "-C",
        str(root),
        "optimize",
        "--show",
        "bench",
        "--json",
    ]
    shown = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return [t["params"] for t in shown["trials"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--work", type=float, default=0.1, help="seconds each run sleeps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        study, batches = Path(folder) / "study", Path(folder) / "batches"
        for root in (study, batches):
            make_project(root, args.runs, args.work, args.trials)
            subprocess.run(["git", "init", "-q", str(root)], check=True)

        start = time.perf_counter()
        qa(
            study,
            "--label",
            "bench",
            "optimize",
            "-b",
            "ten",
            "--config-file",
            str(study / "search.yaml"),
            "--parallel",
            "2",
            "--local-concurrency",
            "2",
        )
        optimized = time.perf_counter() - start

        params = study_params(study)
        assert len(params) == args.trials, params
        start = time.perf_counter()
        for n, point in enumerate(params, start=1):
            qa(
                batches,
                "--label",
                f"bench|iter{n}",
                "--tuning",
                json.dumps(point),
                "batch",
                "ten",
                "--local-concurrency",
                "2",
            )
        sequential = time.perf_counter() - start

    cpus = os.cpu_count()
    print(
        f"{args.trials} trials of a {args.runs}-run batch, runs of {args.work} s, {cpus} CPU(s), 2 workers"
    )
    print(f"  qa optimize --parallel 2:        {optimized:7.1f} s")
    print(f"  {args.trials} sequential `qa batch` calls: {sequential:7.1f} s")
    print(f"  ratio sequential / optimize:     {sequential / optimized:7.2f}x")


if __name__ == "__main__":
    main()
