"""The worker processes of `LocalPool`: starting them from the fork server, killing them,
and saying why one died. (What a worker runs is `qaflow.worker.execute.serve`.)"""

from __future__ import annotations

import contextlib
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

from qaflow.execution.executors.local_queue import Pending
from qaflow.execution.interrupts import hangup_ignored
from qaflow.worker.execute import serve
from qaflow.worker.isolation import kill_tree
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
    """One worker process, as the pool's manager thread sees it."""

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
