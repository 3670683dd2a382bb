"""The worker processes of `LocalPool`: starting them from the fork server, killing them,
and saying why one died. (What a worker runs is `qaflow.worker.execute.serve`.)"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from qaflow.execution.executors.local_queue import Pending
from qaflow.execution.interrupts import hangup_ignored
from qaflow.worker.context import record_failure
from qaflow.worker.execute import failed_result, serve
from qaflow.worker.isolation import kill_tree
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.modes import signal_name

_SIGNAL_HINTS: dict[int, str] = {signal.SIGKILL: "killed, e.g. by the out-of-memory killer"}


@dataclass(eq=False)
class Running:
    """A task sent to a worker."""

    pending: Pending
    started_at: float  # time.time() when sent
    deadline: float | None  # time.monotonic()


@dataclass(eq=False)
class Worker:
    """One worker process, as the pool's manager thread sees it: its run (`job`), and the
    task sent ahead to start after it (`next`, see `local_ahead`)."""

    process: BaseProcess
    conn: Connection
    pid: int
    sentinel: int
    ready: bool = False
    eof: bool = False  # its pipe is closed: it is dying, its sentinel will tell
    job: Running | None = None  # None: idle
    # sent ahead, waiting in its pipe: it starts when `job` ends (only while `job` is set)
    next: Pending | None = None
    retiring: bool = False  # it exits after its current run (its state could not be reset)

    @property
    def idle(self) -> bool:
        """Ready for a task, and without one."""
        return self.ready and not (self.eof or self.retiring or self.job)

    def begin(self, pending: Pending) -> None:
        """`pending` is its run from now: its timeout starts, it is announced (`announce`)."""
        timeout = pending.task.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self.job = Running(pending, time.time(), deadline)
        announce(pending)

    def take_next(self) -> Pending | None:
        """Its run ended: the task sent ahead begins; it is returned instead if this worker
        will not run it (it retires, or its pipe is closed), to queue again."""
        pending, self.next = self.next, None
        if pending is None or self.retiring or self.eof:
            return pending
        self.begin(pending)
        return None

    def take_back(self, pending: Pending) -> None:
        """`pending` could not be sent to it: it is neither its run nor its next task."""
        if self.next is pending:
            self.next = None
        elif self.job is not None and self.job.pending is pending:
            self.job = None

    def fail(self, error: str, status: RunStatus) -> tuple[Pending, RunResult] | None:
        """Its run ended without a result (the worker died, or was killed): the failure is
        recorded in the run's attempt folder (metrics.json, log.txt); the run and its result.
        None if it had no run."""
        job, self.job = self.job, None
        if job is None:
            return None
        task = job.pending.task
        metrics = record_failure(task, error, time.time() - job.started_at)
        result = failed_result(task, status, error, job.started_at, self.pid)
        return job.pending, dataclasses.replace(result, metrics=metrics)

    def receive(self) -> Any:
        """Its next message (READY, RETIRING or a result); None at the end of its pipe."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.eof = True
            return None

    def unread(self) -> bool:
        """Whether its pipe holds a message (or its end) not yet received."""
        try:
            return not self.eof and self.conn.poll()
        except (EOFError, OSError):
            return False

    def drop_next(self) -> Pending | None:
        """The task sent ahead, taken back (this worker died or was killed: it never ran)."""
        pending, self.next = self.next, None
        return pending


def announce(pending: Pending) -> None:
    """Call the task's `on_start` (given to `LocalPool.submit`), from the pool's thread: once,
    when the task becomes a worker's run, before its result can be resolved."""
    if pending.on_start is not None:
        with contextlib.suppress(Exception):  # the caller's: never the pool's problem
            pending.on_start()
        pending.on_start = None


def spawn(mp: ForkServerContext, alive: Connection) -> Worker:
    """Start a worker; it serves tasks on its pipe and dies when `alive` is closed."""
    parent, child = mp.Pipe()
    process = mp.Process(
        target=serve,
        args=(child, alive, dict(os.environ), _cwd()),
        name="qaflow-worker",
        daemon=True,
    )
    try:
        with _without_main_fixup(), hangup_ignored():
            process.start()
    finally:
        child.close()
    assert process.pid is not None
    return Worker(process, parent, process.pid, process.sentinel)


def waitables(wake: int, workers: list[Worker]) -> list[Connection | int]:
    """What the manager thread waits on: the wake-up pipe `wake`, every worker's sentinel,
    and the pipes of the workers it expects a message from (READY, or a result)."""
    found: list[Connection | int] = [wake]
    for worker in workers:
        found.append(worker.sentinel)
        if not worker.eof and (worker.job is not None or not worker.ready):
            found.append(worker.conn)
    return found


def timeout(workers: list[Worker]) -> float | None:
    """Seconds until the nearest run's deadline (None: no run has one)."""
    deadlines = [w.job.deadline for w in workers if w.job and w.job.deadline is not None]
    return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None


def kill_group(worker: Worker) -> None:
    """SIGKILL the worker's process group (the worker and what its run started), and the
    worker's descendants that left it (daemons: a worker adopts them)."""
    kill_tree(worker.pid)
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if worker.process.exitcode is None:  # not yet leading its own group
            with contextlib.suppress(OSError):
                worker.process.kill()


def close(worker: Worker) -> None:
    """Release what the pool holds of a worker whose process ended."""
    worker.conn.close()
    with contextlib.suppress(ValueError):
        worker.process.close()


def stop(workers: list[Worker], *, graceful: bool, timeout: float) -> None:
    """End the workers: asked to exit (if graceful) within `timeout` s, else killed."""
    if graceful:
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
    deadline = time.monotonic() + timeout
    for worker in workers:
        if graceful:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            kill_group(worker)
            worker.process.join()
        close(worker)


def death_reason(code: int | None) -> str:
    """Why a worker's run ended without a result, from the worker's exit status."""
    if code is not None and code < 0:
        hint = _SIGNAL_HINTS.get(-code) or (signal.strsignal(-code) or "").lower()
        suffix = f" ({hint})" if hint else ""
        return f"the run's process was killed by signal {signal_name(-code)}{suffix}"
    return f"the run's process exited with status {code} (os._exit or a crash)"


def _cwd() -> str:
    try:
        return str(Path.cwd())
    except OSError:  # removed: the worker keeps the forkserver's
        return ""


_MAIN_LOCK = threading.Lock()
_MISSING = object()


@contextlib.contextmanager
def _without_main_fixup() -> Iterator[None]:
    """Start a worker without multiprocessing re-running the driver's `__main__` in it.

    Workers only ever run `serve()` on plain-data tasks, so they never need the driver's main
    module; re-running it costs the import of whatever it imports (the `qa` script: all of
    qaflow.cli.main) and breaks outright when it is not a file (`python - < script`, a REPL).
    """
    main = sys.modules["__main__"]
    with _MAIN_LOCK:
        saved_file = main.__dict__.pop("__file__", _MISSING)
        saved_spec = main.__dict__.get("__spec__", _MISSING)
        main.__spec__ = None
        try:
            yield
        finally:
            if saved_file is not _MISSING:
                main.__file__ = saved_file
            if saved_spec is _MISSING:
                main.__dict__.pop("__spec__", None)
            else:
                main.__spec__ = saved_spec
