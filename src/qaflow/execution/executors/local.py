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
from multiprocessing.connection import wait
from types import TracebackType

from qaflow.errors import ExecutorError
from qaflow.execution.executors.forkserver import context, warm_up
from qaflow.execution.executors.local_ahead import AHEAD_BELOW, Ahead
from qaflow.execution.executors.local_queue import Pending, SlotQueue, WakeUp
from qaflow.execution.executors.local_workers import (
    Worker,
    close,
    death_reason,
    kill_group,
    spawn,
    stop,
    timeout,
    waitables,
)
from qaflow.worker.execute import RETIRING, failed_result
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.task import RunTask

__all__ = ["LocalPool", "warm_up"]

Announce = Callable[[], None] | None  # LocalPool.submit's on_start

_STOP_TIMEOUT = 5.0  # graceful stop: how long a worker may take to exit before it is killed
_CANCEL_TIMEOUT = 10.0  # how long shutdown(cancel=True) waits for the manager thread
_MAX_START_FAILURES = 3  # workers dying before their first message, in a row: the pool is broken


class LocalPool(contextlib.AbstractContextManager["LocalPool"]):
    """Worker processes (`concurrency`, or fewer if asked) living as long as the pool, each
    executing one run at a time; one that cannot be reset after a run retires, replaced.

    Policy: tasks start in submission order when enough of the `concurrency` slots are free
    (`SlotQueue`: no starvation); a task needs `cpus` slots and runs on one worker while the
    others stay reserved. A worker that dies mid-run, or is killed at the run's timeout or at
    cancel, fails that run only (FAILED with the reason, metrics.json written from here) and
    is replaced; the other runs go on.

    Ahead: while runs are short, a busy worker also gets its next task (`local_ahead`); one
    it never started (it died, retired, was killed) goes back first, or is CANCELLED at cancel.

    State: submitters and the manager thread share the queue (`SlotQueue`) and the flags,
    under `_lock`. Everything else (workers, their jobs, the slots in use) belongs to the
    manager thread alone. It sleeps in `connection.wait()` on the wake-up pipe (`WakeUp`),
    the connections of workers it expects a message from, every worker's sentinel, with the
    nearest deadline as timeout.

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
        self._ahead = Ahead(ahead_below)
        self._mp = context()
        self._lock = threading.Lock()
        self._queue = SlotQueue(concurrency)
        self._closing = self._cancelling = self._stopped = False
        self._broken: str | None = None
        self._wake = WakeUp()
        self._alive_r, self._alive_w = self._mp.Pipe(duplex=False)
        self._workers: list[Worker] = []
        self._start_failures = 0
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
        """Queue the task (thread-safe; RuntimeError after shutdown()); `on_start`: `announce`."""
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
        ready = set(wait(waitables(self._wake.fd, self._workers), timeout(self._workers)))
        if self._wake.fd in ready:
            self._drain_wake()
        for worker in list(self._workers):
            if worker.conn in ready:
                self._receive(worker)
        for worker in list(self._workers):
            if worker.sentinel in ready:
                self._lost(worker)
        self._expire()
        return True

    def _drain_wake(self) -> None:
        """Empty the pipe, then clear it: a wake-up after this writes a byte again, and one
        before it is seen by this round (the state is read after, under the lock)."""
        self._wake.drain()
        with self._lock:
            self._wake.clear()

    def _wake_locked(self) -> None:
        if not self._stopped:
            self._wake.set()

    # ------------------------------------------------------------ scheduling
    def _assign(self) -> None:
        idle = [w for w in self._workers if w.idle]
        if idle:
            picks: list[Pending] = []
            with self._lock:
                while len(picks) < len(idle) and (pending := self._queue.pick()) is not None:
                    picks.append(pending)
            for worker, pending in zip(idle, picks, strict=False):
                self._send(worker, pending)
        if busy := [w for w in self._workers if self._ahead.wanted(w)]:
            with self._lock:
                aheads = self._ahead.assign(busy, self._queue, len(self._workers))
            for worker, pending in aheads:
                self._send(worker, pending, ahead=True)

    def _send(self, worker: Worker, pending: Pending, *, ahead: bool = False) -> None:
        task = pending.task
        if ahead:
            worker.next = pending
        else:
            worker.begin(pending)
        try:
            worker.conn.send(task)
        except Exception as exc:
            worker.take_back(pending)
            if isinstance(exc, OSError):  # the worker died: the task goes back first in line
                worker.eof = True
                return self._requeue(pending)
            self._queue.release(pending)  # the task does not pickle
            error = f"cannot send the run to a worker process: {exc!r}"
            _resolve(pending.future, failed_result(task, RunStatus.ERRORED, error, time.time(), 0))

    def _requeue(self, pending: Pending | None) -> None:
        """A task sent that did not run goes back, first in line."""
        if pending is not None:
            with self._lock:
                self._queue.push_back(pending)

    # ------------------------------------------------------------ events
    def _receive(self, worker: Worker) -> None:
        if (message := worker.receive()) is None:
            return
        if isinstance(message, str):  # READY, or RETIRING: it exits after its result
            worker.retiring = worker.retiring or message == RETIRING
            worker.ready = True
            self._start_failures = 0
            return
        job, worker.job = worker.job, None
        if job is not None:
            self._queue.release(job.pending)
            self._ahead.learn(time.time() - job.started_at)
            self._requeue(worker.take_next())  # announced before this run's end is resolved
            _resolve(job.pending.future, message)

    def _lost(self, worker: Worker) -> None:
        """The worker's process ended: fail its run if it had one, and replace it. What it sent
        before is read first (RETIRING, its result, then its exit: seen in one round)."""
        while worker.unread():
            self._receive(worker)
        kill_group(worker)  # before the pid is reaped: what the run started dies too
        worker.process.join()
        code = worker.process.exitcode
        self._discard(worker)
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
                self._fail(
                    worker, f"timed out after {job.pending.task.timeout:g} s", RunStatus.FAILED
                )
                self._replace()

    def _fail(self, worker: Worker, error: str, status: RunStatus) -> None:
        """Resolve the worker's run, which cannot tell (`Worker.fail`)."""
        if (failed := worker.fail(error, status)) is not None:
            self._queue.release(failed[0])
            _resolve(failed[0].future, failed[1])

    def _abort(self, status: RunStatus, error: str) -> None:
        """Resolve every queued and running task with status; kill the running ones."""
        with self._lock:
            pendings = self._queue.clear()
            self._stopped = True
        for ahead in filter(None, [worker.drop_next() for worker in self._workers]):
            self._queue.release(ahead)  # sent ahead: it never ran either
            pendings.append(ahead)
        now = time.time()
        for pending in pendings:
            result = failed_result(pending.task, status, error, now)
            _resolve(pending.future, dataclasses.replace(result, metrics={}))  # it never ran
        for worker in list(self._workers):
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
        """Forget a worker whose process ended; its task sent ahead, if any, goes back."""
        if worker in self._workers:
            self._workers.remove(worker)
        close(worker)
        self._requeue(worker.drop_next())

    def _stop_workers(self, *, graceful: bool) -> None:
        workers, self._workers = self._workers, []
        stop(workers, graceful=graceful, timeout=_STOP_TIMEOUT)

    def _close_pipes(self) -> None:
        with self._lock:
            if self._wake.closed:
                return
            self._stopped = True
            self._wake.close()
        self._alive_w.close()
        self._alive_r.close()


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
