"""Execute one run in this process: isolate it, capture its output at the fd level, record it.

`execute(task)` runs inside a worker of the local pool (or in-process for `qa run`): it takes
the run's lock, makes a fresh attempt directory with run.json (`qaflow.worker.rundir`),
invokes the run's code there (`qaflow.worker.modes`), writes the manifest and metrics.json,
and, if the run succeeded, commits the attempt as the run's result. A failure
of the user's code is a FAILED result with the reason, never an exception; ERRORED means
qaflow could not run it. The files it leaves are described in `qaflow.worker.context`.
`serve` is the life of a worker process of the local pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

from qaflow.errors import ExecutorError
from qaflow.worker import isolation, rundir
from qaflow.worker.context import (
    MetricsError,
    captured,
    command_env,
    isolated,
    jsonable,
    read_metrics,
    write_inputs_manifest,
    write_manifest,
    write_metrics,
)
from qaflow.worker.files import write_bytes
from qaflow.worker.model import PENDING_SKIPPED, RunResult, RunStatus, hostname
from qaflow.worker.modes import Outcome, invoke
from qaflow.worker.rundir import output_dir_of, run_lock
from qaflow.worker.task import RunTask

READY = "ready"  # a worker's first message: it leads its own process group and waits for tasks
RETIRING = "retiring"  # before a result: the worker exits after it (it could not be reset)


# ---------------------------------------------------------------- the steps of a run
def execute(task: RunTask, *, after_run: Callable[[], object] | None = None) -> RunResult:
    """Execute one task in this process, in a fresh attempt directory committed on success.

    The run holds the lock of its fingerprint while it decides and runs, so that qaflow
    processes that plan the same run execute it once: the others wait for the lock, then
    (with `task.reuse`) find the committed result and reuse it (see `qaflow.worker.rundir`).
    `after_run` is called once the run's code returned, its output still captured (a pool's
    worker ends the processes the run started there: `qaflow.worker.isolation`).
    """
    output_dir = output_dir_of(task)
    lock_dir = None if task.lock_dir is None else Path(task.lock_dir)
    with run_lock(output_dir, lock_dir, wait=task.on_pending == "wait") as locked:
        if not locked:  # another process runs it: QA-Board's --action-on-pending
            return _pending(task, output_dir, lock_dir, after_run)
        done = rundir.read_result(output_dir) if task.reuse and task.action == "run" else None
        if isinstance(done, rundir.Committed):
            return _reused(task, done, output_dir)
        return _execute(task, output_dir, after_run)


def _reused(task: RunTask, done: rundir.Committed, output_dir: Path) -> RunResult:
    return rundir.reused(
        task.key,
        done,
        output_dir,
        host=hostname(),
        pid=os.getpid(),
        attempt=task.attempt,
        fingerprint=task.payload.fingerprint,
        parts=task.payload.parts,
    )


def _pending(
    task: RunTask, output_dir: Path, lock_dir: Path | None, after_run: Callable[[], object] | None
) -> RunResult:
    """A run another process holds the lock of: skip it, run it at the same time (each
    attempt has its own directory; commits are atomic), or wait and take its result (sync)."""
    if task.on_pending == "run":
        return _execute(task, output_dir, after_run)
    started = time.time()
    if task.on_pending == "skip":
        return failed_result(task, RunStatus.SKIPPED, PENDING_SKIPPED, started)
    with run_lock(output_dir, lock_dir):  # sync: once the other process is done
        done = rundir.read_result(output_dir)
    if isinstance(done, rundir.Committed):
        return _reused(task, done, output_dir)
    error = "the run another execution was running has no successful result (--action-on-pending sync takes its result): run it again without sync"
    return failed_result(task, RunStatus.FAILED, error, started)


def _execute(
    task: RunTask, output_dir: Path, after_run: Callable[[], object] | None = None
) -> RunResult:
    started = time.time()
    attempt = _attempt_of(task, output_dir)
    source = output_dir
    if task.action == "postprocess" and not (output_dir / "metrics.json").is_file():
        source = Path(task.postprocess_from or output_dir)  # QA-Board's two steps
        if not (source / "metrics.json").is_file():
            return _result(
                task,
                Outcome(RunStatus.FAILED, error=f"no results to postprocess in {output_dir}"),
                started,
                attempt,
            )
    try:
        _prepare(task, source, attempt, started)
    except (OSError, rundir.UnsafeRunDir) as exc:
        error = f"cannot prepare the output directory {attempt}: {exc}"
        outcome = Outcome(RunStatus.ERRORED, {"is_failed": True}, error)
        return _result(task, outcome, started, attempt)
    if task.command is not None:  # its own output_dir, interpolated when planned: the attempt
        task = dataclasses.replace(
            task, command=task.command.replace(str(output_dir), str(attempt))
        )
    try:
        # a command runs in a child process given its environment and cwd; the run's own
        # code runs here, in this process's, set and restored around it
        env = None if task.command is None else command_env(task, attempt)
        with (
            isolated(task, attempt) if env is None else contextlib.nullcontext(),
            captured(attempt / "log.txt", tee=task.tee, append=task.action != "run"),
        ):
            outcome = _dispatch(task, attempt, env)
            if after_run is not None:
                after_run()
    except ExecutorError as exc:
        outcome = Outcome(RunStatus.ERRORED, error=str(exc))
    except OSError as exc:
        outcome = Outcome(RunStatus.ERRORED, error=f"cannot capture the run's output: {exc}")
    outcome, listed = _finish(attempt, outcome, task.payload.input_path)
    if outcome.status is not RunStatus.SUCCEEDED:
        return _result(task, outcome, started, attempt)
    try:
        # the metrics as written, read back (as when reused), and the manifest's bytes
        digest = rundir.result_digest(listed, outcome.metrics)
        rundir.commit(output_dir, attempt, Path(task.project_root))
    except (OSError, ValueError, rundir.UnsafeRunDir) as exc:
        error = f"cannot commit the result {attempt} as {output_dir}: {exc}"
        return _result(task, Outcome(RunStatus.ERRORED, outcome.metrics, error), started, attempt)
    return dataclasses.replace(_result(task, outcome, started, output_dir), digest=digest)


def _attempt_of(task: RunTask, output_dir: Path) -> Path:
    """The task's attempt directory; never the committed one (the same id, run again)."""
    attempt = rundir.attempt_dir_of(task)
    if attempt == rundir.committed_attempt(output_dir):
        attempt = rundir.attempt_dir(output_dir, f"{task.attempt_id}-{time.time_ns()}")
    return attempt


def _prepare(task: RunTask, source: Path, attempt: Path, started: float) -> None:
    """A fresh attempt directory: empty with run.json for a run, a copy of the committed
    result `source` for a postprocess (which must not change the committed files; when it
    is the run's --no-postprocess result, run.json then names this run)."""
    rundir.fresh(attempt, Path(task.project_root))  # a previous attempt's files must not mix in
    if task.action != "run":
        shutil.copytree(source, attempt, symlinks=True, dirs_exist_ok=True)
        if task.postprocess_from is None or source != Path(task.postprocess_from):
            return
    record = task.payload.record(task.key)
    record.update(key=task.key, attempt=task.attempt, started_at=started)
    if task.command is not None:
        record["command"] = task.command
    try:  # orjson: indented in C (json indents in Python), for what it can encode
        text = orjson.dumps(record, default=jsonable, option=orjson.OPT_INDENT_2)
    except TypeError:  # e.g. keys that are not strings, integers beyond 64 bits
        text = json.dumps(record, indent=2, default=jsonable).encode()
    write_bytes(f"{attempt}/run.json", text)


def _dispatch(task: RunTask, output_dir: Path, env: dict[bytes, bytes] | None) -> Outcome:
    outcome = invoke(task, output_dir, env)
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


def _finish(output_dir: Path, outcome: Outcome, input_path: str | None) -> tuple[Outcome, bytes]:
    """Write the manifests, then metrics.json (with is_failed, compute_time); the final
    outcome (its metrics as metrics.json reads back) and the bytes of the outputs' manifest."""
    failed = outcome.status is not RunStatus.SUCCEEDED
    metrics = {**outcome.metrics, "is_failed": failed, "compute_time": outcome.compute_time}
    error = outcome.error
    listed = b""
    try:
        listed = write_manifest(output_dir)
        write_inputs_manifest(output_dir, input_path)
        try:  # last: a valid metrics.json is the sign that a run completed (crash safety)
            metrics = write_metrics(output_dir, metrics)
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON-serialisable
            error = error or f"the metrics cannot be written as JSON: {exc}"
            metrics = {"is_failed": True, "compute_time": outcome.compute_time}
            metrics = write_metrics(output_dir, metrics)
    except OSError as exc:
        status = outcome.status if failed else RunStatus.ERRORED
        error = error or f"cannot write the results in {output_dir}: {exc}"
        return Outcome(status, metrics, error), listed
    status = RunStatus.FAILED if error and not failed else outcome.status
    return Outcome(status, metrics, error, outcome.compute_time), listed


def _result(task: RunTask, outcome: Outcome, started: float, where: Path) -> RunResult:
    return RunResult(
        key=task.key,
        status=outcome.status,
        metrics=outcome.metrics,
        error=outcome.error,
        started_at=started,
        ended_at=time.time(),
        host=hostname(),
        pid=os.getpid(),
        attempt=task.attempt,
        output_dir=str(where),
        fingerprint=task.payload.fingerprint,
        parts=task.payload.parts,
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
        host=hostname(),
        pid=pid,
        attempt=task.attempt,
        output_dir=str(attempt) if (attempt := rundir.attempt_dir_of(task)).is_dir() else None,
        fingerprint=task.payload.fingerprint,
    )


# ---------------------------------------------------------------- a worker process of the pool
def serve(conn: Connection, alive: Connection, env: dict[str, str], cwd: str) -> None:
    """A worker's life: receive tasks, execute them, send back results, until None or EOF.

    The worker takes the driver's environment and cwd (a forkserver's are those of its start),
    and leads its own session, so the pool can kill a run with its children. `alive` is
    a pipe whose only write end the driver holds: at EOF the driver died, and the worker kills
    its group (the run's children too) rather than finish a run no one awaits.

    Runs are kept apart (`qaflow.worker.isolation`): the worker adopts what its runs start
    and ends it after each run, and puts back the process state each run found. When that
    cannot be done, it says RETIRING before the result and exits after it: the pool starts
    a fresh worker instead."""
    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # the driver's fork server ignores it
    faulthandler.enable()  # a crash prints the Python stack to fd 2: the run's log
    isolation.become_subreaper()
    threading.Thread(target=_die_with_driver, args=(alive,), daemon=True).start()
    state = isolation.ProcessState.capture()  # what every run starts from
    owner = os.getpid()
    conn.send(READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = _serve_one(task, owner)
        # a command runs as a child process: no code of the run ran in this interpreter,
        # so nothing of its state can have changed (env and cwd are put back by `isolated`)
        problems = state.restore() if task.command is None else []
        try:
            if problems:
                conn.send(RETIRING)
            conn.send(result)
        except OSError:
            return
        if problems:
            return


def _serve_one(task: RunTask, owner: int) -> RunResult:
    """Execute a task in a worker; end what the run started, whatever comes of it."""
    started = time.time()
    try:
        return execute_safely(task, after_run=isolation.end_descendants)
    except BaseException as exc:  # raised outside the run's code: this worker goes on
        isolation.exit_if_forked(owner)
        return failed_result(task, RunStatus.FAILED, f"interrupted: {exc!r}", started, owner)
    finally:
        isolation.exit_if_forked(owner)
        isolation.end_descendants()


def execute_safely(task: RunTask, *, after_run: Callable[[], object] | None = None) -> RunResult:
    """execute(), with a bug of qaflow's own as an ERRORED result. KeyboardInterrupt propagates."""
    started = time.time()
    try:
        return execute(task, after_run=after_run)
    except Exception as exc:
        error = f"qaflow failed to execute the run: {exc!r}\n{traceback.format_exc()}"
        return failed_result(task, RunStatus.ERRORED, error, started, os.getpid())


def _die_with_driver(alive: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()
    isolation.kill_tree(os.getpid())  # the run's daemons too, which left the group
    os.killpg(os.getpgid(0), signal.SIGKILL)
