"""Execute one run in this process: isolate it, capture its output at the fd level, record it.

`execute(task)` runs inside a worker of the local pool (or in-process for `qa run`): it takes
the run's lock, empties its directory and writes run.json (`qaflow.worker.rundir`), invokes
the run's code (`qaflow.worker.modes`), then writes the manifest and metrics.json. A failure
of the user's code is a FAILED result with the reason, never an exception; ERRORED means
qaflow could not run it. The files it leaves are described in `qaflow.worker.context`.
`serve` is the life of a worker process of the local pool.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from qaflow.errors import ExecutorError
from qaflow.worker import rundir
from qaflow.worker.context import (
    MetricsError,
    captured,
    isolated,
    jsonable,
    read_metrics,
    write_inputs_manifest,
    write_manifest,
    write_metrics,
)
from qaflow.worker.model import RunResult, RunStatus, RunTask
from qaflow.worker.modes import Outcome, invoke
from qaflow.worker.rundir import completed_metrics, output_dir_of, run_lock

HOST = socket.gethostname()
READY = "ready"  # a worker's first message: it leads its own process group and waits for tasks


# ---------------------------------------------------------------- the steps of a run
def execute(task: RunTask) -> RunResult:
    """Execute one task in this process and record its results in its output directory.

    The run holds a lock on its directory while it runs, so that two qaflow processes that
    plan the same run execute it once: the second waits for the lock, then (with
    `task.reuse`) finds the first one's successful result and reuses it.
    """
    output_dir = output_dir_of(task)
    with run_lock(output_dir, None if task.lock_dir is None else Path(task.lock_dir)):
        if task.reuse and task.action == "run":
            done = completed_metrics(output_dir)
            if done is not None:
                now = time.time()
                return RunResult(
                    task.key,
                    RunStatus.CACHED,
                    metrics=done,
                    started_at=now,
                    ended_at=now,
                    host=HOST,
                    pid=os.getpid(),
                    attempt=task.attempt,
                )
        return _execute(task, output_dir)


def _execute(task: RunTask, output_dir: Path) -> RunResult:
    started = time.time()
    if task.action == "postprocess" and not (output_dir / "metrics.json").is_file():
        return _result(
            task,
            Outcome(RunStatus.FAILED, error=f"no results to postprocess in {output_dir}"),
            started,
        )
    try:
        _prepare(task, output_dir, started)
    except (OSError, rundir.UnsafeRunDir) as exc:
        error = f"cannot prepare the output directory {output_dir}: {exc}"
        return _result(task, Outcome(RunStatus.ERRORED, {"is_failed": True}, error), started)
    try:
        with (
            isolated(task, output_dir),
            captured(output_dir / "log.txt", tee=task.tee, append=task.action != "run"),
        ):
            outcome = _dispatch(task, output_dir)
    except ExecutorError as exc:
        outcome = Outcome(RunStatus.ERRORED, error=str(exc))
    except OSError as exc:
        outcome = Outcome(RunStatus.ERRORED, error=f"cannot capture the run's output: {exc}")
    return _result(task, _finish(output_dir, outcome, task.payload.input_path), started)


def _prepare(task: RunTask, output_dir: Path, started: float) -> None:
    if task.action != "run":
        return
    rundir.fresh(output_dir, Path(task.project_root))  # a previous run's files must not mix in
    record = task.payload.record(task.key)
    record.update(key=task.key, attempt=task.attempt, started_at=started)
    if task.command is not None:
        record["command"] = task.command
    with open(output_dir / "run.json", "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2, default=jsonable)


def _dispatch(task: RunTask, output_dir: Path) -> Outcome:
    outcome = invoke(task, output_dir)
    if task.action == "postprocess" and outcome.status is not RunStatus.SUCCEEDED:
        outcome = _keeping_results(outcome, output_dir)
    if outcome.error:
        print(f"qaflow: {outcome.error}", file=sys.stderr)
    return outcome


def _keeping_results(outcome: Outcome, output_dir: Path) -> Outcome:
    """A failed postprocess keeps the run's metrics and compute time (now with is_failed)."""
    try:
        previous = read_metrics(output_dir)
    except MetricsError:
        return outcome
    seconds = previous.get("compute_time")
    if not isinstance(seconds, int | float):
        seconds = outcome.compute_time
    return Outcome(outcome.status, {**previous, **outcome.metrics}, outcome.error, float(seconds))


def _finish(output_dir: Path, outcome: Outcome, input_path: str | None) -> Outcome:
    """Write the manifests, then metrics.json (with is_failed, compute_time); the final outcome."""
    failed = outcome.status is not RunStatus.SUCCEEDED
    metrics = {**outcome.metrics, "is_failed": failed, "compute_time": outcome.compute_time}
    error = outcome.error
    try:
        write_manifest(output_dir)
        write_inputs_manifest(output_dir, input_path)
        try:  # last: a valid metrics.json is the sign that a run completed (crash safety)
            metrics = write_metrics(output_dir, metrics)
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON-serialisable
            error = error or f"the metrics cannot be written as JSON: {exc}"
            metrics = {"is_failed": True, "compute_time": outcome.compute_time}
            metrics = write_metrics(output_dir, metrics)
    except OSError as exc:
        status = outcome.status if failed else RunStatus.ERRORED
        return Outcome(status, metrics, error or f"cannot write the results in {output_dir}: {exc}")
    status = RunStatus.FAILED if error and not failed else outcome.status
    return Outcome(status, metrics, error, outcome.compute_time)


def _result(task: RunTask, outcome: Outcome, started: float) -> RunResult:
    return RunResult(
        key=task.key,
        status=outcome.status,
        metrics=outcome.metrics,
        error=outcome.error,
        started_at=started,
        ended_at=time.time(),
        host=HOST,
        pid=os.getpid(),
        attempt=task.attempt,
    )


def failed_result(
    task: RunTask, status: RunStatus, error: str, started: float, pid: int = 0
) -> RunResult:
    """The result of a task that did not run to its end (crashed, cancelled, not executed)."""
    return RunResult(
        key=task.key,
        status=status,
        metrics={"is_failed": True},
        error=error,
        started_at=started,
        ended_at=time.time(),
        host=HOST,
        pid=pid,
        attempt=task.attempt,
    )


# ---------------------------------------------------------------- a worker process of the pool
def serve(conn: Connection, alive: Connection, env: dict[str, str], cwd: str) -> None:
    """A worker's life: receive tasks, execute them, send back results, until None or EOF.

    The worker takes the driver's environment and cwd (a forkserver's are those of its start),
    and leads its own process group, so the pool can kill a run with its children. `alive` is
    a pipe whose only write end the driver holds: at EOF the driver died, and the worker kills
    its group (the run's children too) rather than finish a run no one awaits."""
    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    faulthandler.enable()  # a crash prints the Python stack to fd 2: the run's log
    threading.Thread(target=_die_with_driver, args=(alive,), daemon=True).start()
    conn.send(READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = execute_safely(task)
        except BaseException as exc:  # KeyboardInterrupt raised by the run: this worker goes on
            result = failed_result(
                task, RunStatus.FAILED, f"interrupted: {exc!r}", 0.0, os.getpid()
            )
        try:
            conn.send(result)
        except OSError:
            return


def execute_safely(task: RunTask) -> RunResult:
    """execute(), with a bug of qaflow's own as an ERRORED result. KeyboardInterrupt propagates."""
    started = time.time()
    try:
        return execute(task)
    except Exception as exc:
        error = f"qaflow failed to execute the run: {exc!r}\n{traceback.format_exc()}"
        return failed_result(task, RunStatus.ERRORED, error, started, os.getpid())


def _die_with_driver(alive: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()
    os.killpg(os.getpgid(0), signal.SIGKILL)
