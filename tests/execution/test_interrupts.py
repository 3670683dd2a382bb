"""Pipes and signals against real `qa batch` processes: a reader that leaves or a terminal
that closes only stops the display; Ctrl-C cancels, says so, and exits 130."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

import qaflow
from qaflow.config.project import Project
from qaflow.execution.report import ConsoleReporter
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan
from qaflow.store import Store
from qaflow.worker.model import RunResult, RunStatus

DEADLINE = 120.0  # generous: a loaded 2-core machine

# each run notes that it started (a file per input), then works for SECONDS
MAIN = """
import os, time
from pathlib import Path

SECONDS = {seconds}

def run(context):
    started = Path(context.database) / "started"
    started.mkdir(exist_ok=True)
    (started / context.input_path.name).write_text(str(os.getpid()))
    if context.input_path.name == "crash.txt":
        os._exit(3)
    time.sleep(SECONDS)
    return {{"value": 1}}
"""


def make(
    project, seconds: float, inputs: tuple[str, ...] = ("a.txt", "b.txt", "c.txt", "d.txt")
) -> Path:
    listed = ", ".join(inputs)
    return project(
        batches=f"b:\n  inputs: [{listed}]\n",
        files=list(inputs),
        extra={"qa/main.py": MAIN.format(seconds=seconds)},
    )


def start(root: Path, *args: str, **popen) -> subprocess.Popen:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args], text=True, **popen
    )


def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def started(root: Path) -> list[str]:
    folder = root / "started"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def recorded(root: Path) -> tuple[str, dict[str, str]]:
    """The last execution's status and its runs' statuses by input, from the store."""
    project = Project.discover(root)
    with Store.open(project.database_url, storage=project.storage) as store:
        [execution] = store.lookups.executions(limit=1)
        runs = store.lookups.runs(execution.id)
        return execution.status, {run.rel_input_path: run.status.value for run in runs}


def test_a_reader_that_leaves_does_not_stop_the_execution(project):
    """`qa batch B | head -1`: the runs go on to their end and are recorded succeeded."""
    root = make(project, 0.3)
    with start(root, "batch", "b", "--local-concurrency", "1") as qa:
        first = qa.stdout.readline()
        assert first.startswith("execution ")
        qa.stdout.close()  # the reader left: every later write to stdout fails with EPIPE
        stderr = qa.stderr.read()
        assert qa.wait(timeout=DEADLINE) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    status, runs = recorded(root)
    assert status == "succeeded"
    assert runs == dict.fromkeys(["a.txt", "b.txt", "c.txt", "d.txt"], "succeeded")
    # and a comparison with that execution sees no failure
    execution_id = first.split()[1].rstrip(":")
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "qaflow",
            "-C",
            str(root),
            "compare",
            execution_id,
            execution_id,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["failed"] is False


def test_a_closed_terminal_only_stops_the_display(project):
    """SIGHUP to the process group (the terminal closed) while runs execute: the execution
    goes on, even where the pool must start a new worker (after a crash), to its end."""
    root = make(project, 0.5, ("a.txt", "crash.txt", "c.txt", "d.txt"))
    with start(root, "batch", "b", "--local-concurrency", "1", start_new_session=True) as qa:
        until(lambda: "a.txt" in started(root), "the first run")
        os.killpg(qa.pid, signal.SIGHUP)  # the driver and its fork server, as a hangup does
        _stdout, stderr = qa.communicate(timeout=DEADLINE)
    assert qa.returncode == 1, stderr  # the crash fails its run, not the others
    status, runs = recorded(root)
    assert status == "failed"
    assert runs == {
        "a.txt": "succeeded",
        "crash.txt": "failed",
        "c.txt": "succeeded",
        "d.txt": "succeeded",
    }
    assert "Traceback" not in stderr


def test_ctrl_c_cancels_exits_130_and_says_how_to_resume(project):
    root = make(project, 60)
    with start(root, "batch", "b", "--local-concurrency", "2", start_new_session=True) as qa:
        until(lambda: len(started(root)) >= 1, "a run to start")
        qa.send_signal(signal.SIGINT)
        stdout, stderr = qa.communicate(timeout=DEADLINE)
    assert qa.returncode == 130, stdout + stderr
    assert "cancelled" in stdout and "run the same command again to resume" in stdout
    header = next(line for line in stdout.splitlines() if "batch" in line and "runs" in line)
    assert "cancelled" in header and "skipped" in header
    row = next(line for line in stdout.splitlines() if line.lstrip("│ ").startswith("b "))
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    # batch, runs, succeeded, cached, failed, skipped, cancelled
    assert cells[:7] == ["b", "4", "0", "0", "0", "0", "4"], row
    status, runs = recorded(root)
    assert status == "cancelled" and set(runs.values()) == {"cancelled"}


def test_cancelled_runs_do_not_fill_the_progress_bar(project):
    root = make(project, 0)
    the_plan = plan(Project.discover(root), ["b"], PlanOptions())
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, force_terminal=True, width=150))
    reporter.execution_started("x", the_plan)
    first, *rest = the_plan.runs
    reporter.run_started(first, 1)
    now = time.time()
    reporter.run_finished(
        first, RunResult(first.key, RunStatus.SUCCEEDED, started_at=now, ended_at=now)
    )
    for spec in rest:
        reporter.run_finished(
            spec, RunResult(spec.key, RunStatus.CANCELLED, started_at=now, ended_at=now)
        )
    assert reporter._progress is not None
    [task] = reporter._progress.tasks
    assert task.completed == 1 and task.total == 4
    assert "3 cancelled" in reporter.counts["b"].text()
    reporter.close()


def test_a_keyboard_interrupt_raised_by_run_fails_that_run_with_its_real_duration(project):
    root = project(
        batches="b:\n  inputs: [a.txt, b.txt]\n",
        files=["a.txt", "b.txt"],
        extra={
            "qa/main.py": (
                "def run(context):\n"
                "    if context.input_path.name == 'a.txt':\n"
                "        raise KeyboardInterrupt\n"
                "    return {'ok': 1}\n"
            )
        },
    )
    execution = qaflow.batch("b", project=root, concurrency=1)
    by_input = {run.spec.rel_input_path: run for run in execution.runs()}
    interrupted = by_input["a.txt"]
    assert interrupted.status is RunStatus.FAILED
    assert "KeyboardInterrupt" in (interrupted.error or "")
    assert 0 <= interrupted.result.duration < 3600  # not "since 1970"
    metrics = json.loads((interrupted.output_dir / "metrics.json").read_text())
    assert metrics["is_failed"] is True
    assert by_input["b.txt"].status is RunStatus.SUCCEEDED  # the worker went on
