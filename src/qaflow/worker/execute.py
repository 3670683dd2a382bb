"""Execute one run in this process: isolate it, capture its output at the fd level, record it.

`execute(task)` runs inside a worker of the local pool (or in-process for `qa run`). A failure
of the user's code is a FAILED result with the reason, never an exception; ERRORED means
qaflow could not run it. The files it leaves are described in `qaflow.worker.context`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from qaflow.config import passes
from qaflow.errors import ExecutorError, InterpolationError
from qaflow.worker import rundir
from qaflow.worker.context import (
    MetricsError,
    RunContext,
    captured,
    isolated,
    jsonable,
    read_metrics,
    write_manifest,
    write_metrics,
)
from qaflow.worker.model import RunResult, RunStatus, RunTask
from qaflow.worker.rundir import completed_metrics, output_dir_of, run_lock

HOST = socket.gethostname()
READY = "ready"  # a worker's first message: it leads its own process group and waits for tasks
_MODULES: dict[str, tuple[int, ModuleType]] = {}  # entrypoint path -> (mtime_ns, module)


class _Errored(Exception):
    """qaflow itself cannot execute the run (as opposed to the user's code failing)."""


class _Failed(Exception):
    """The user's code failed; the message is the run's error."""


@dataclass
class _Outcome:
    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    compute_time: float = 0.0


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
            _Outcome(RunStatus.FAILED, error=f"no results to postprocess in {output_dir}"),
            started,
        )
    try:
        _prepare(task, output_dir, started)
    except (OSError, _Errored) as exc:
        error = f"cannot prepare the output directory {output_dir}: {exc}"
        return _result(task, _Outcome(RunStatus.ERRORED, {"is_failed": True}, error), started)
    try:
        with (
            isolated(task, output_dir),
            captured(output_dir / "log.txt", tee=task.tee, append=task.action != "run"),
        ):
            outcome = _dispatch(task, output_dir)
    except ExecutorError as exc:
        outcome = _Outcome(RunStatus.ERRORED, error=str(exc))
    except OSError as exc:
        outcome = _Outcome(RunStatus.ERRORED, error=f"cannot capture the run's output: {exc}")
    return _result(task, _finish(output_dir, outcome), started)


def _prepare(task: RunTask, output_dir: Path, started: float) -> None:
    if task.action != "run":
        return
    try:
        rundir.fresh(output_dir, Path(task.project_root))
    except rundir.UnsafeRunDir as exc:
        raise _Errored(str(exc)) from None
    record = task.payload.record(task.key)
    record.update(key=task.key, attempt=task.attempt, started_at=started)
    if task.command is not None:
        record["command"] = task.command
    with open(output_dir / "run.json", "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2, default=jsonable)


def _dispatch(task: RunTask, output_dir: Path) -> _Outcome:
    try:
        if task.command is not None:
            outcome = _run_command(task, output_dir)
        else:
            module = _load_entrypoint(task)
            context = RunContext.from_task(task)
            if task.action == "postprocess":
                outcome = _postprocess_only(module, context, output_dir)
            else:
                outcome = _run_entrypoint(module, context, output_dir)
    except _Errored as exc:
        outcome = _Outcome(RunStatus.ERRORED, error=str(exc))
    except _Failed as exc:
        outcome = _Outcome(RunStatus.FAILED, error=str(exc))
    if task.action == "postprocess" and outcome.status is not RunStatus.SUCCEEDED:
        outcome = _keeping_results(outcome, output_dir)
    if outcome.error:
        print(f"qaflow: {outcome.error}", file=sys.stderr)
    return outcome


def _keeping_results(outcome: _Outcome, output_dir: Path) -> _Outcome:
    """A failed postprocess keeps the run's metrics and compute time (now with is_failed)."""
    try:
        previous = read_metrics(output_dir)
    except MetricsError:
        return outcome
    seconds = previous.get("compute_time")
    if not isinstance(seconds, int | float):
        seconds = outcome.compute_time
    return _Outcome(outcome.status, {**previous, **outcome.metrics}, outcome.error, float(seconds))


def _finish(output_dir: Path, outcome: _Outcome) -> _Outcome:
    """Write the manifest, then metrics.json (with is_failed, compute_time); the final outcome."""
    failed = outcome.status is not RunStatus.SUCCEEDED
    metrics = {**outcome.metrics, "is_failed": failed, "compute_time": outcome.compute_time}
    error = outcome.error
    try:
        write_manifest(output_dir)
        try:  # last: a valid metrics.json is the sign that a run completed (crash safety)
            metrics = write_metrics(output_dir, metrics)
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON-serialisable
            error = error or f"the metrics cannot be written as JSON: {exc}"
            metrics = {"is_failed": True, "compute_time": outcome.compute_time}
            metrics = write_metrics(output_dir, metrics)
    except OSError as exc:
        status = outcome.status if failed else RunStatus.ERRORED
        return _Outcome(
            status, metrics, error or f"cannot write the results in {output_dir}: {exc}"
        )
    status = RunStatus.FAILED if error and not failed else outcome.status
    return _Outcome(status, metrics, error, outcome.compute_time)


def _result(task: RunTask, outcome: _Outcome, started: float) -> RunResult:
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


# ---------------------------------------------------------------- entrypoint mode
def _load_entrypoint(task: RunTask) -> ModuleType:
    """The user's module, imported once per process (again only if the file changed)."""
    if task.entrypoint is None:
        raise _Errored("nothing to run: no entrypoint and no command; create one with `qa init`")
    path = Path(task.project_root, task.entrypoint)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise _Errored(
            f"the entrypoint {path} does not exist: create it with `qa init` (it defines "
            "run(context)), or give the batch a command to run instead"
        ) from None
    cached = _MODULES.get(str(path))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    module = _import(path, task.project_root)
    if not callable(getattr(module, "run", None)):
        raise _Errored(f"the entrypoint {path} defines no run(context) function")
    _MODULES[str(path)] = (mtime, module)
    return module


def _import(path: Path, root: str) -> ModuleType:
    for folder in (root, str(path.parent)):  # as QA-Board: the entrypoint's folder first
        if folder not in sys.path:
            sys.path.insert(0, folder)
    name = "qaflow_entrypoint_" + hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _Errored(f"cannot import the entrypoint {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, Exception | SystemExit):
            raise _Failed(_describe(exc, f"importing {path} failed")) from None
        raise
    return module


def _run_entrypoint(module: ModuleType, context: RunContext, output_dir: Path) -> _Outcome:
    start = time.perf_counter()
    try:
        returned = _call(module.run, "run()", context)
        if returned is not None and not isinstance(returned, dict):
            shown = repr(returned)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise _Failed(f"run() returned {shown}, expected a dict of metrics or None")
        metrics = {**_read_metrics(output_dir), **(returned or {})}
        postprocess = getattr(module, "postprocess", None)
        if callable(postprocess):
            new = _call(postprocess, "postprocess()", metrics, context)
            metrics = new if isinstance(new, dict) else metrics
    except _Failed as exc:
        return _Outcome(RunStatus.FAILED, error=str(exc), compute_time=time.perf_counter() - start)
    return _judge(metrics, "run()", time.perf_counter() - start)


def _postprocess_only(module: ModuleType, context: RunContext, output_dir: Path) -> _Outcome:
    """Action "postprocess": the existing metrics.json through postprocess(), rewritten."""
    postprocess = getattr(module, "postprocess", None)
    if not callable(postprocess):
        raise _Errored(f"{module.__file__} defines no postprocess(metrics, context) function")
    metrics = _read_metrics(output_dir)
    start = time.perf_counter()
    new = _call(postprocess, "postprocess()", metrics, context)
    metrics = new if isinstance(new, dict) else metrics
    compute_time = metrics.get("compute_time")
    if not isinstance(compute_time, int | float):
        compute_time = time.perf_counter() - start
    return _judge(metrics, "postprocess()", float(compute_time))


def _call(function: Callable[..., Any], name: str, *args: Any) -> Any:
    """Call the user's function; its failure (exception, sys.exit(N != 0)) becomes _Failed."""
    try:
        return function(*args)
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:
            return None
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        raise _Failed(f"{name} called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise _Failed(_describe(exc)) from None


def _describe(exc: BaseException, first: str | None = None) -> str:
    """The error text: `Type: message` first, then the traceback without qaflow's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
    details = "".join(traceback.format_exception(type(exc), exc, tb))
    return f"{first}: {summary}\n{details}" if first else f"{summary}\n{details}"


def _read_metrics(output_dir: Path) -> dict[str, Any]:
    try:
        return read_metrics(output_dir)
    except MetricsError as exc:
        raise _Failed(str(exc)) from None


def _judge(metrics: dict[str, Any], who: str, compute_time: float) -> _Outcome:
    if metrics.get("is_failed"):
        return _Outcome(RunStatus.FAILED, metrics, f"{who} reported is_failed", compute_time)
    return _Outcome(RunStatus.SUCCEEDED, metrics, None, compute_time)


# ---------------------------------------------------------------- command mode
def _run_command(task: RunTask, output_dir: Path) -> _Outcome:
    if task.action != "run":
        raise _Errored("a run defined by a command has no postprocess step")
    run = task.payload
    try:
        command = passes.at_run_start(
            task.command or "",
            output_dir=str(output_dir),
            params=run.params,
            configs=list(run.configurations),
            matrix=run.matrix,
            input_path=run.input_path,
            rel_input_path=run.rel_input_path,
        )
    except InterpolationError as exc:
        return _Outcome(RunStatus.FAILED, error=f"invalid command: {exc}")
    if task.forwarded_args:
        command = f"{command} {shlex.join(task.forwarded_args)}"
    start = time.perf_counter()
    try:
        status = subprocess.run(
            command, shell=True, cwd=task.project_root, env=dict(os.environ)
        ).returncode
    except OSError as exc:
        raise _Errored(f"cannot start the command: {exc}") from None
    elapsed = time.perf_counter() - start
    try:
        metrics = _read_metrics(output_dir)
    except _Failed as exc:
        return _Outcome(RunStatus.FAILED, error=str(exc), compute_time=elapsed)
    if status != 0:
        error = (
            f"command exited with status {status}"
            if status > 0
            else f"command killed by signal {signal_name(-status)}"
        )
        return _Outcome(RunStatus.FAILED, metrics, error, elapsed)
    return _judge(metrics, "the command", elapsed)


def signal_name(number: int) -> str:
    """SIGSEGV for 11; the number itself if it names no signal."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


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
