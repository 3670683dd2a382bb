"""Benchmark: the makespan of a diamond DAG, against the ideal schedule.

    fan-out-1 (WIDTH runs) -> fan-in (1 script run) -> fan-out-2 (WIDTH runs)

Every run sleeps SLEEP seconds. `qa batch fan-out-2 --local-concurrency 2` runs the three
batches (fan-out-2 needs fan-in, which needs fan-out-1). The ideal makespan is
max(total work / 2, critical path) = max((2 x WIDTH + 1) x SLEEP / 2, 3 x SLEEP); the
target is a makespan within 5% of it. Measured twice: the whole `qa batch` process (Python
start-up, planning, the pool's start included) and in-process `qaflow.batch()`, whose
run timings also give the schedule itself (first run started -> last run ended) and check
the order.

    python bench/dag.py [--sleep 0.2] [--width 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONCURRENCY = 2
MAIN = (
    "import time\n\n\ndef run(context):\n    time.sleep(context.params['sleep'])\n    return {}\n"
)
BATCHES = """\
fan-out-1:
  inputs: [data]
  configs: [{{sleep: {sleep}}}]

fan-in:
  needs: fan-out-1
  type: script
  configs: ["sleep {sleep}"]

fan-out-2:
  needs: fan-in
  inputs: [data]
  configs: [{{sleep: {sleep}}}]
"""


def make_project(root: Path, width: int, sleep: float) -> None:
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("inputs:\n  globs: '*.in'\n")
    (root / "qa" / "main.py").write_text(MAIN)
    (root / "qa" / "batches.yaml").write_text(BATCHES.format(sleep=sleep))
    (root / "data").mkdir()
    for i in range(width):
        (root / "data" / f"{i:04d}.in").write_text("x")


def report(name: str, makespan: float, ideal: float, runs: int) -> None:
    overhead_ms = (makespan - ideal) * CONCURRENCY / runs * 1000
    ratio = makespan / ideal
    verdict = "ok" if ratio <= 1.05 else "over the 5% target"
    print(
        f"{name}: makespan {makespan:.2f}s, ideal {ideal:.2f}s, ratio {ratio:.3f} ({verdict}), "
        f"overhead {overhead_ms:.1f} ms/run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args()
    runs = 2 * args.width + 1
    ideal = max(runs * args.sleep / CONCURRENCY, 3 * args.sleep)
    print(
        f"diamond DAG: {args.width} -> 1 -> {args.width} runs of {args.sleep}s at concurrency {CONCURRENCY}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        # two copies of the project: the second measurement must not find the first's results
        root, other = Path(tmp, "process"), Path(tmp, "in-process")
        make_project(root, args.width, args.sleep)
        make_project(other, args.width, args.sleep)
        import qaflow
        from qaflow.execution.report import ConsoleReporter

        command = [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "fan-out-2"]
        command += ["--local-concurrency", str(CONCURRENCY)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        process_wall = time.perf_counter() - start

        start = time.perf_counter()
        execution = qaflow.batch(
            "fan-out-2",
            project=other,
            concurrency=CONCURRENCY,
            reporter=ConsoleReporter(quiet=True),
        )
        wall = time.perf_counter() - start
        done = execution.runs()
        failed = [(run.spec.batch, run.error) for run in done if not run.status.ok]
        assert not failed, f"{len(failed)} runs failed, e.g. {failed[0]}"
        counts: dict[str, int] = {}
        for run in done:
            counts[run.spec.batch] = counts.get(run.spec.batch, 0) + 1
        expected = {"fan-out-1": args.width, "fan-in": 1, "fan-out-2": args.width}
        assert counts == expected, f"planned {counts}, expected {expected}: is `needs:` supported?"
        first = min(run.result.started_at for run in done)
        last = max(run.result.ended_at for run in done)
        ended = {
            name: max(r.result.ended_at for r in done if r.spec.batch == name) for name in counts
        }
        started = {
            name: min(r.result.started_at for r in done if r.spec.batch == name) for name in counts
        }
        assert started["fan-in"] >= ended["fan-out-1"], "fan-in started before fan-out-1 ended"
        assert started["fan-out-2"] >= ended["fan-in"], "fan-out-2 started before fan-in ended"
        busy = sum(run.result.ended_at - run.result.started_at for run in done)
        [fan_in] = [run.result for run in done if run.spec.batch == "fan-in"]
        handoffs = (
            started["fan-in"] - ended["fan-out-1"],
            started["fan-out-2"] - ended["fan-in"],
        )

    report("whole `qa batch` process", process_wall, ideal, runs)
    report("in-process qaflow.batch()", wall, ideal, runs)
    report("schedule (first run start -> last run end)", last - first, ideal, runs)
    barrier = (2 * -(-args.width // CONCURRENCY) + 1) * args.sleep
    print(
        f"(with the fan-in barrier, no schedule beats {barrier:.2f}s: one slot idles during fan-in)"
    )
    print(
        f"hand-offs: fan-out-1 end -> fan-in start {handoffs[0] * 1000:.1f} ms, "
        f"fan-in end -> fan-out-2 start {handoffs[1] * 1000:.1f} ms; "
        f"fan-in (a shell `sleep`) took {(fan_in.ended_at - fan_in.started_at) * 1000:.1f} ms"
    )
    print(
        f"mean run duration as the scheduler saw it: {busy / runs * 1000:.1f} ms "
        f"(sleep {args.sleep * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
