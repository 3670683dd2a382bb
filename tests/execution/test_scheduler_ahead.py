"""Runs given to the local pool ahead of the capacity (`Scheduler(ahead=…)`), on real worker
processes: each run is reported started while it runs (not when another ends), once, before
its end, and every event comes from the thread that drives the execution."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import qaflow
from qaflow.execution.report import RecordingReporter
from qaflow.plan.model import RunSpec
from qaflow.worker.model import RunResult, RunStatus

# A run waits (generously) for the driver to have reported its start: were starts reported
# only when another run ends, the first runs would wait out the deadline and fail.
MAIN = """
import time
from pathlib import Path

def run(context):
    go = Path(context.database) / ("go-" + context.input_path.name)
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("its start was not reported while it ran")
        time.sleep(0.01)
    if context.input_path.name == "flaky.txt" and not (context.output_dir.parent / "once").exists():
        (context.output_dir.parent / "once").write_text("")
        raise RuntimeError("fails once")
    return {"ok": 1}
"""


class Watching(RecordingReporter):
    """Records the events and their threads; a start lets its run go on (a file it waits for)."""

    def __init__(self, database: Path) -> None:
        super().__init__()
        self.database = database
        self.threads: set[int] = set()
        self.order: list[tuple[str, str]] = []

    def run_started(self, run: RunSpec, attempt: int) -> None:
        self.threads.add(threading.get_ident())
        self.order.append(("started", run.key))
        super().run_started(run, attempt)
        (self.database / f"go-{Path(str(run.input_path)).name}").write_text(str(attempt))

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        self.threads.add(threading.get_ident())
        self.order.append(("finished", run.key))
        super().run_finished(run, result)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_runs_given_ahead_are_reported_started_while_they_run(project, concurrency: int) -> None:
    names = [f"in{i}.txt" for i in range(6)] + ["flaky.txt"]
    root = project(
        batches=f"b:\n  inputs: [{', '.join(names)}]\n  retries: 1\n",
        files=names,
        extra={"qa/main.py": MAIN},
    )
    reporter = Watching(root)
    execution = qaflow.batch("b", project=root, reporter=reporter, concurrency=concurrency)
    assert execution.exit_code == 0, [r.error for r in execution.results.values()]
    assert {r.status for r in execution.results.values()} == {RunStatus.SUCCEEDED}
    assert reporter.threads == {threading.get_ident()}
    assert len(execution.plan.runs) == len(names)
    for spec in execution.plan.runs:
        mine = [kind for kind, key in reporter.order if key == spec.key]
        attempts = 2 if str(spec.rel_input_path) == "flaky.txt" else 1
        assert mine == ["started"] * attempts + ["finished"], (spec.key, mine)
