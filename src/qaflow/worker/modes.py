"""How a run's code is invoked: the user's entrypoint, or a shell command.

Entrypoint mode imports the project's entrypoint once per process (again only if the file
changed), fills `context.input_metadata` from its `metadata()` if defined
(`qaflow.worker.metadata`), and calls its `run(context)`, then `postprocess(metrics, context)`
if defined (action "postprocess": only the latter, on the metrics.json already there). Command mode
runs the command in a shell, after the run-start interpolation pass (`config.passes`).
Either way the outcome is an `Outcome`: the user's code failing is FAILED with the reason
(the exception and its traceback without qaflow's frames, an exit status, a signal),
qaflow unable to invoke it is ERRORED; no Exception of the user's code escapes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from qaflow.config import passes
from qaflow.errors import InterpolationError
from qaflow.worker.context import MetricsError, RunContext, read_metrics
from qaflow.worker.isolation import exit_if_forked
from qaflow.worker.metadata import run_metadata
from qaflow.worker.model import RunStatus
from qaflow.worker.task import RunTask

_MODULES: dict[str, tuple[int, ModuleType]] = {}  # entrypoint path -> (mtime_ns, module)


class _Errored(Exception):
    """qaflow itself cannot execute the run (as opposed to the user's code failing)."""


class _Failed(Exception):
    """The user's code failed; the message is the run's error."""


@dataclass
class Outcome:
    """What came of invoking a run's code, before qaflow writes its files."""

    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    compute_time: float = 0.0


def invoke(task: RunTask, output_dir: Path, env: dict[bytes, bytes] | None = None) -> Outcome:
    """Run the task's code (its command, or its entrypoint's functions) in this process;
    `env`: a command's environment (default: this process's)."""
    try:
        if task.command is not None:
            outcome = _run_command(task, output_dir, env)
        else:
            module = _load_entrypoint(task)
            run = task.payload  # as QA-Board's `qa run`: the metadata() of the run's input
            database = run.database or task.project_root
            metadata = run_metadata(module, run.input_path, database, run.rel_input_path)
            context = RunContext.from_task(task, output_dir, input_metadata=metadata)
            if task.action == "postprocess":
                outcome = _postprocess_only(module, context, output_dir)
            else:
                outcome = _run_entrypoint(module, context, output_dir, task.postprocess)
    except _Errored as exc:
        outcome = Outcome(RunStatus.ERRORED, error=str(exc))
    except _Failed as exc:
        outcome = Outcome(RunStatus.FAILED, error=str(exc))
    return outcome


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


def _run_entrypoint(
    module: ModuleType, context: RunContext, output_dir: Path, postprocessed: bool
) -> Outcome:
    """run(), then postprocess() unless `postprocessed` is False (QA-Board's --no-postprocess)."""
    start = time.perf_counter()
    try:
        returned = _call(module.run, "run()", context)
        if returned is not None and not isinstance(returned, dict):
            shown = repr(returned)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise _Failed(f"run() returned {shown}, expected a dict of metrics or None")
        metrics = {**_read_metrics(output_dir), **(returned or {})}
        postprocess = getattr(module, "postprocess", None) if postprocessed else None
        if callable(postprocess) and not metrics.get("is_failed"):
            # as QA-Board: the runtime metrics, with is_failed and the run's compute_time
            metrics = {"is_failed": False, **metrics, "compute_time": time.perf_counter() - start}
            new = _call(postprocess, "postprocess()", metrics, context)
            metrics = new if isinstance(new, dict) else metrics
    except _Failed as exc:
        return Outcome(RunStatus.FAILED, error=str(exc), compute_time=time.perf_counter() - start)
    return _judge(metrics, "run()", time.perf_counter() - start)


def _postprocess_only(module: ModuleType, context: RunContext, output_dir: Path) -> Outcome:
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
    """Call the user's function; its failure (exception, sys.exit(N != 0), KeyboardInterrupt
    it raised) becomes _Failed. A copy of this process that the function forked without
    exec ends here, whichever way it returns: it must not record a result."""
    owner = os.getpid()
    try:
        return function(*args)
    except SystemExit as exc:
        exit_if_forked(owner, exc.code if isinstance(exc.code, int) else 1)
        if exc.code is None or exc.code == 0:
            return None
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        raise _Failed(f"{name} called sys.exit({exc.code!r})") from None
    except KeyboardInterrupt as exc:  # a worker gets no Ctrl-C (own session): the run raised it
        raise _Failed(_describe(exc, f"{name} was interrupted")) from None
    except Exception as exc:
        raise _Failed(_describe(exc)) from None
    finally:
        exit_if_forked(owner)


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


def _judge(metrics: dict[str, Any], who: str, compute_time: float) -> Outcome:
    if metrics.get("is_failed"):
        return Outcome(RunStatus.FAILED, metrics, f"{who} reported is_failed", compute_time)
    return Outcome(RunStatus.SUCCEEDED, metrics, None, compute_time)


# ---------------------------------------------------------------- command mode
def _run_command(task: RunTask, output_dir: Path, env: dict[bytes, bytes] | None) -> Outcome:
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
        return Outcome(RunStatus.FAILED, error=f"invalid command: {exc}")
    if task.forwarded_args:
        command = f"{command} {shlex.join(task.forwarded_args)}"
    start = time.perf_counter()
    try:
        status = subprocess.run(
            command,
            shell=True,
            cwd=task.project_root,
            env=env,  # None: this process's
        ).returncode
    except OSError as exc:
        raise _Errored(f"cannot start the command: {exc}") from None
    elapsed = time.perf_counter() - start
    try:
        metrics = _read_metrics(output_dir)
    except _Failed as exc:
        return Outcome(RunStatus.FAILED, error=str(exc), compute_time=elapsed)
    if status != 0:
        error = (
            f"command exited with status {status}"
            if status > 0
            else f"command killed by signal {signal_name(-status)}"
        )
        return Outcome(RunStatus.FAILED, metrics, error, elapsed)
    return _judge(metrics, "the command", elapsed)


def signal_name(number: int) -> str:
    """SIGSEGV for 11; the number itself if it names no signal."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
