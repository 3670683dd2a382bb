"""`LocalPool`: long-lived worker processes on this machine that execute runs, crash-proof.

The pool's queue and slots are `local_queue`'s; starting, killing and explaining worker
processes is `local_workers`'.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import dataclasses
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from types import TracebackType

from qaflow.errors import ExecutorError
from qaflow.execution.executors.forkserver import context, warm_up
from qaflow.execution.executors.local_queue import Pending, SlotQueue
from qaflow.execution.executors.local_workers import (
    Running,
    Worker,
    close,
    death_reason,
    kill_group,
    spawn,
    stop,
)
from qaflow.worker.context import record_failure
from qaflow.worker.execute import RETIRING, failed_result
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.task import RunTask

__all__ = ["LocalPool", "warm_up"]

Announce = Callable[[], None] | None  # LocalPool.submit's on_start

_STOP_TIMEOUT = 5.0  # graceful stop: how long a worker may take to exit before it is killed
_CANCEL_TIMEOUT = 10.0  # how long shutdown(cancel=True) waits for the manager thread
_MAX_START_FAILURES = 3  # workers dying before their first message, in a row: the pool is broken
# a busy worker is sent its next task ahead while recent runs last less than this (seconds)
AHEAD_BELOW = 0.02
_AHEAD_WEIGHT = 0.2  # of the last run in the recent duration (an exponential moving average)


class LocalPool:
    """Worker processes (`concurrency`, or fewer if asked) living as long as the pool, each
    executing one run at a time; one that cannot be reset after a run retires, replaced.

    Policy: tasks start in submission order when enough of the `concurrency` slots are free
    (`SlotQueue`: no starvation); a task needs `cpus` slots and runs on one worker while the
    others stay reserved. A worker that dies mid-run, or is killed at the run's timeout or at
    cancel, fails that run only (FAILED with the reason, metrics.json written from here) and
    is replaced; the other runs go on.

    Ahead: while runs are short (recent ones lasted less than `ahead_below` on average), a
    worker busy with a one-slot run is also sent the next one-slot task, which waits in its
    pipe: the worker starts it as soon as it sent its result, without a round trip through
    this process. It counts as started (on_start, its timeout) when that result arrives. If
    the worker dies, retires or is killed first, the task goes back first in the queue; at
    cancel it is CANCELLED like the queued ones. A long run delays at most the one task
    sent ahead of it, and only if the runs before it were short.

    State: submitters and the manager thread share the queue (`SlotQueue`) and the flags,
    under `_lock`. Everything else (workers, their jobs, the slots in use) belongs to the
    manager thread alone. It sleeps in `connection.wait()` on the wake-up pipe, the
    connections of workers it expects a message from, every worker's sentinel, with the
    nearest deadline as timeout.
    `_woken` says a byte is in the wake-up pipe: submitters write one only when it is clear,
    and the manager clears it after draining the pipe, so no wake-up is ever lost.

    Invariants: a submitted future always resolves to a RunResult, never an exception, and
    futures resolve outside `_lock` (a done-callback may submit); a task is sent only to a
    worker that said it is ready (so it leads its own process group and `killpg` reaches the
    run's children); slots in use = sum of the running tasks' needs <= concurrency, plus one
    per task sent ahead; a worker has a task ahead only while it runs one; a worker dies
    with the driver (EOF on the `alive` pipe kills its process group).
    """

    def __init__(
        self, concurrency: int, *, workers: int | None = None, ahead_below: float = AHEAD_BELOW
    ) -> None:
        """`concurrency` slots; `workers` processes (at most `concurrency`: runs to do);
        tasks are sent ahead while runs last less than `ahead_below` seconds on average."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
            raise ValueError(f"concurrency must be a positive number of processes: {concurrency!r}")
        self.concurrency = concurrency
        self.size = max(1, min(concurrency, workers if workers is not None else concurrency))
        self.ahead_below = ahead_below
        self._mp = context()
        self._lock = threading.Lock()
        self._queue = SlotQueue(concurrency)
        self._closing = self._cancelling = self._stopped = self._woken = False
        self._broken: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._alive_r, self._alive_w = self._mp.Pipe(duplex=False)
        self._workers: list[Worker] = []
        self._start_failures = 0
        self._recent: float | None = None  # how long runs last lately (seconds), for `_ahead`
        try:
            for _ in range(self.size):
                self._workers.append(spawn(self._mp, self._alive_r))
        except Exception as exc:
            self._stop_workers(graceful=False)
            self._close_pipes()
            raise ExecutorError(f"cannot start the worker processes: {exc}") from exc
        self._thread = threading.Thread(target=self._manage, name="qaflow-local-pool", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # ------------------------------------------------------------ the Executor seam
    def submit(self, task: RunTask, *, on_start: Announce = None) -> Future[RunResult]:
        """Queue the task (thread-safe; RuntimeError after shutdown()); `on_start`: `_announce`."""
        future: Future[RunResult] = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit a run: the local pool is shut down")
            broken = self._stopped
            if not broken:
                self._queue.push(task, future, on_start)
                self._wake_locked()
        if broken:
            error = self._broken or "the pool stopped"
            future.set_result(failed_result(task, RunStatus.ERRORED, error, 0.0, 0))
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        """Wait for the runs (or with cancel, kill them: CANCELLED), then stop the workers."""
        with self._lock:
            self._closing = True
            self._cancelling = self._cancelling or cancel
            self._wake_locked()
        if threading.current_thread() is self._thread:
            return  # called from a done-callback: the manager finishes on its own
        try:
            self._thread.join(_CANCEL_TIMEOUT if cancel else None)
        except BaseException:  # interrupted while waiting for the runs: cancel them
            with self._lock:
                self._cancelling = True
                self._wake_locked()
            self._thread.join(_CANCEL_TIMEOUT)
            raise
        if self._thread.is_alive():  # the manager is stuck (in a done-callback?): kill anyway
            for worker in list(self._workers):
                with contextlib.suppress(OSError):
                    os.killpg(worker.pid, signal.SIGKILL)

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(cancel=exc_type is not None)

    @property
    def worker_pids(self) -> list[int]:  # for diagnostics and tests
        return [worker.pid for worker in list(self._workers)]

    @property
    def tasks_ahead(self) -> int:  # for diagnostics and tests: tasks waiting in workers' pipes
        return sum(worker.next is not None for worker in list(self._workers))

    # ------------------------------------------------------------ the manager thread
    def _manage(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:
            self._broken = f"the local pool failed: {exc}"
            with contextlib.suppress(BaseException):
                self._abort(RunStatus.ERRORED, self._broken)
        finally:
            self._stop_workers(graceful=self._broken is None and not self._cancelling)
            with self._lock:
                self._stopped = True
            self._close_pipes()

    def _step(self) -> bool:
        """One round: start what can start, wait for an event, handle it. False: stop."""
        with self._lock:
            cancelling = self._cancelling
        if cancelling:
            self._abort(RunStatus.CANCELLED, "cancelled")
            return False
        self._assign()
        with self._lock:
            idle = all(w.job is None for w in self._workers)
            if self._closing and not self._queue.queued and idle:
                self._stopped = True
                return False
        ready = set(wait(self._waitables(), self._timeout()))
        if self._wake_r in ready:
            self._drain_wake()
        for worker in list(self._workers):
            if worker.conn in ready:
                self._receive(worker)
        for worker in list(self._workers):
            if worker.sentinel in ready:
                self._lost(worker)
        self._expire()
        return True

    def _waitables(self) -> list[Connection | int]:
        waitables: list[Connection | int] = [self._wake_r]
        for worker in self._workers:
            waitables.append(worker.sentinel)
            if not worker.eof and (worker.job is not None or not worker.ready):
                waitables.append(worker.conn)
        return waitables

    def _timeout(self) -> float | None:
        deadlines = [w.job.deadline for w in self._workers if w.job and w.job.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _drain_wake(self) -> None:
        """Empty the pipe, then clear the flag: a wake-up after this writes a byte again, and
        one before it is seen by this round (the state is read after, under the lock)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            self._woken = False

    def _wake_locked(self) -> None:
        if not self._woken and not self._stopped:
            self._woken = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"w")

    # ------------------------------------------------------------ scheduling
    def _assign(self) -> None:
        idle = [w for w in self._workers if w.ready and not (w.eof or w.retiring or w.job)]
        if idle:
            picks: list[Pending] = []
            with self._lock:
                while len(picks) < len(idle) and (pending := self._queue.pick()) is not None:
                    picks.append(pending)
            for worker, pending in zip(idle, picks, strict=False):
                self._send(worker, pending)
        busy = [w for w in self._workers if self._ahead(w)]
        if busy:
            with self._lock:
                aheads = [(w, p) for w in busy if (p := self._queue.pick_ahead()) is not None]
            for worker, pending in aheads:
                self._send(worker, pending, ahead=True)

    def _ahead(self, worker: Worker) -> bool:
        """Whether to send the worker its next task now (see the policy)."""
        job = worker.job
        return (
            job is not None
            and worker.next is None
            and not (worker.eof or worker.retiring)
            and job.pending.need == 1
            and self._recent is not None
            and self._recent < self.ahead_below
            and time.time() - job.started_at < self.ahead_below
        )

    def _send(self, worker: Worker, pending: Pending, *, ahead: bool = False) -> None:
        task = pending.task
        if ahead:
            worker.next = pending
        else:
            self._begin(worker, pending)
        try:
            worker.conn.send(task)
        except OSError:  # the worker died: the task goes back first in line
            worker.eof = True
            if ahead:
                worker.next = None
            else:
                worker.job = None
            with self._lock:
                self._queue.push_back(pending)
        except Exception as exc:  # the task does not pickle
            if ahead:
                worker.next = None
            else:
                worker.job = None
            self._queue.release(pending)
            error = f"cannot send the run to a worker process: {exc!r}"
            _resolve(pending.future, failed_result(task, RunStatus.ERRORED, error, time.time(), 0))

    def _begin(self, worker: Worker, pending: Pending) -> None:
        """The task is the worker's run from now: its timeout starts, it is announced."""
        timeout = pending.task.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        worker.job = Running(pending, time.time(), deadline)
        _announce(pending)

    def _take_next(self, worker: Worker) -> None:
        """The worker's run ended: the task sent ahead starts, or goes back in the queue if
        the worker will not run it (it retires, or its pipe is closed)."""
        pending, worker.next = worker.next, None
        if pending is None:
            return
        if worker.retiring or worker.eof:
            with self._lock:
                self._queue.push_back(pending)
        else:
            self._begin(worker, pending)

    def _requeue_next(self, worker: Worker) -> None:
        """The worker died or was killed: its task sent ahead never ran, it goes back first."""
        pending, worker.next = worker.next, None
        if pending is not None:
            with self._lock:
                self._queue.push_back(pending)

    # ------------------------------------------------------------ events
    def _receive(self, worker: Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            worker.eof = True
            return
        if isinstance(message, str):  # READY, or RETIRING: it exits after its result
            worker.retiring = worker.retiring or message == RETIRING
            worker.ready = True
            self._start_failures = 0
            return
        job, worker.job = worker.job, None
        if job is not None:
            self._queue.release(job.pending)
            self._learn(time.time() - job.started_at)
            self._take_next(worker)  # announced before this run's end is resolved
            _resolve(job.pending.future, message)

    def _learn(self, seconds: float) -> None:
        recent = self._recent
        self._recent = seconds if recent is None else recent + _AHEAD_WEIGHT * (seconds - recent)

    def _lost(self, worker: Worker) -> None:
        """The worker's process ended: fail its run if it had one, and replace it."""
        kill_group(worker)  # before the pid is reaped: what the run started dies too
        worker.process.join()
        code = worker.process.exitcode
        self._discard(worker)
        self._requeue_next(worker)
        if worker.job is not None:
            self._fail(worker, death_reason(code), RunStatus.FAILED)
        elif not worker.ready:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                raise ExecutorError(
                    f"the worker processes die as they start (exit status {code}): "
                    "their messages, if any, are on stderr above"
                )
        self._replace()

    def _expire(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            job = worker.job
            if job is not None and job.deadline is not None and job.deadline <= now:
                self._kill(worker)
                self._requeue_next(worker)
                self._fail(
                    worker, f"timed out after {job.pending.task.timeout:g} s", RunStatus.FAILED
                )
                self._replace()

    def _fail(self, worker: Worker, error: str, status: RunStatus) -> None:
        """Resolve the worker's run, which cannot tell: record the failure in its output dir."""
        job, worker.job = worker.job, None
        if job is None:
            return
        self._queue.release(job.pending)
        task = job.pending.task
        metrics = record_failure(task, error, time.time() - job.started_at)
        result = failed_result(task, status, error, job.started_at, worker.pid)
        _resolve(job.pending.future, dataclasses.replace(result, metrics=metrics))

    def _abort(self, status: RunStatus, error: str) -> None:
        """Resolve every queued and running task with status; kill the running ones."""
        with self._lock:
            pendings = self._queue.clear()
            self._stopped = True
        now = time.time()
        for pending in pendings:
            result = failed_result(pending.task, status, error, now)
            _resolve(pending.future, dataclasses.replace(result, metrics={}))  # it never ran
        for worker in list(self._workers):
            if worker.next is not None:  # it never ran
                pending, worker.next = worker.next, None
                self._queue.release(pending)
                result = failed_result(pending.task, status, error, now)
                _resolve(pending.future, dataclasses.replace(result, metrics={}))
            if worker.job is not None:
                self._kill(worker)
                self._fail(worker, error, status)

    # ------------------------------------------------------------ processes
    def _replace(self) -> None:
        if not self._cancelling and self._broken is None:
            self._workers.append(spawn(self._mp, self._alive_r))

    def _kill(self, worker: Worker) -> None:
        kill_group(worker)
        worker.process.join()
        self._discard(worker)

    def _discard(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        close(worker)

    def _stop_workers(self, *, graceful: bool) -> None:
        workers, self._workers = self._workers, []
        stop(workers, graceful=graceful, timeout=_STOP_TIMEOUT)

    def _close_pipes(self) -> None:
        with self._lock:
            if self._wake_w < 0:
                return
            self._stopped = True
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        self._alive_w.close()
        self._alive_r.close()


def _announce(pending: Pending) -> None:
    """Call the task's `on_start` (given to `LocalPool.submit`), from the pool's thread: once,
    right before the task is sent to a worker, so before the run can start (even if resent)."""
    if pending.on_start is not None:
        with contextlib.suppress(Exception):  # the caller's: never the pool's problem
            pending.on_start()
        pending.on_start = None


def _resolve(future: concurrent.futures.Future[RunResult], result: RunResult) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(result)


_LIVE: weakref.WeakSet[LocalPool] = weakref.WeakSet()


@atexit.register
def _cancel_at_exit() -> None:
    """A pool still running when the interpreter exits: its runs are cancelled, workers stopped.

    Registered after multiprocessing's own exit hook, so it runs first (atexit is LIFO)."""
    for pool in list(_LIVE):
        pool.shutdown(cancel=True)
