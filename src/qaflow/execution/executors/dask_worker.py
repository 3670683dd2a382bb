"""What runs on a Dask worker: one task per run (or per pack of short runs: `dask_pack`),
executed by a local pool of this worker.

Each Dask task (`run_work`) receives its run and the results of the runs it needs (Dask
holds the edges and passes them as arguments), then, in order:
1. checks that this worker sees the project and the storage folder at the driver's paths;
2. settles the run without executing it if something it needs did not succeed (SKIPPED);
3. completes it with the upstream results (`qaflow.execution.prepare.Preparer`: deferred
   `needs[x].metrics` expressions, the `$QA_PREVIOUS_BATCH` listing, result reuse);
4. executes it in a `LocalPool` owned by this worker process for this execution, so a crash,
   a timeout or a cancel kills the run's process, never the Dask worker; a FAILED run is
   executed again up to `retries`. With --dask-concurrency N, a run first takes one of the
   execution's N leases (a `distributed.Semaphore`), so at most N run at once on the cluster.

Attempts survive the worker: each start and end is appended to a small file in the
execution's scratch folder on the shared storage, with the final result. A task that finds
a start without an end knows that a worker died while running it (Dask re-runs the tasks of
a lost worker elsewhere): it executes again if `retries` allows, else it fails with that
reason. A task that finds a final result returns it: Dask re-runs a finished task whose
result it lost with a worker, and the run must not execute twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.worker.context import record_failure
from qaflow.worker.model import RunResult, RunStatus, hostname
from qaflow.worker.rundir import attempt_dir_of, run_lock
from qaflow.worker.task import RunTask

if TYPE_CHECKING:
    from qaflow.execution.executors.local import LocalPool
    from qaflow.execution.model import Job
    from qaflow.plan.model import Plan

WORKER_ENV = "QA_DASK_WORKER"  # the run's environment names the Dask worker executing it
IDLE_POOL = 300.0  # seconds: the pool of an execution whose driver went away is closed after it
# A batch system ending a job (walltime, scancel, bkill) signals every process of it: the run's
# process may die first, and its end must not be taken for the run's own failure. After a run
# killed (a signal, or an exit without a result), the task waits this long: if the worker is dying, it goes with the run
# unrecorded, and the run's next attempt knows its worker died (see `Ledger`).
SIGNALLED_GRACE = 5.0
# local_workers.death_reason: the run's process died without a result (a signal, or an exit
# status when a handler turned the job's SIGTERM into an exit)
KILLED = "the run's process "


@dataclass(frozen=True)
class Shared:
    """What a worker must see as the driver does: the project (its qaboard.yaml, same size and
    modification time) and the storage folder (a marker file with a known content)."""

    root: str
    marker: str
    token: str
    stamp: tuple[int, int] | None = None  # None: only check that qaboard.yaml is there

    @classmethod
    def of(cls, root: Path, marker: Path, token: str, *, stamped: bool = False) -> Shared:
        """At the start of an execution the stamp is checked too; not per run, since the
        user may edit qaboard.yaml while a long execution goes on."""
        stat = (root / "qaboard.yaml").stat()
        stamp = (stat.st_size, stat.st_mtime_ns) if stamped else None
        return cls(str(root), str(marker), token, stamp)


def shared_problem(shared: Shared) -> str | None:
    """Why this process does not see the driver's files, or None when it does."""
    try:
        stat = Path(shared.root, "qaboard.yaml").stat()
    except OSError:
        return f"it cannot see the project folder {shared.root}"
    if shared.stamp is not None and (stat.st_size, stat.st_mtime_ns) != shared.stamp:
        return f"its {shared.root}/qaboard.yaml is not the driver's (another copy of the project?)"
    try:
        seen = Path(shared.marker).read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != shared.token:
        return f"it cannot see the storage folder {Path(shared.marker).parent.parent}"
    return None


@dataclass(frozen=True)
class Work:
    """One Dask task: a run, what it needs (in the order of the task's arguments), how to
    complete it. Plain data: it pickles."""

    job: Job
    execution_id: str
    scratch: str  # STORAGE/executions/ID.dask: attempt records, the shared-storage marker
    shared: Shared
    upstream: tuple[str, ...] = ()  # keys of the runs it needs, as passed to run_work
    upstream_names: tuple[str, ...] = ()  # "batch input" of each, for the skip reason
    plan: Plan | None = None  # the part of the plan that Preparer reads for this run
    forced: bool = False  # --force: never reuse a result made meanwhile
    settled: RunResult | None = None  # decided by the driver, once what it needs succeeded
    leases: int = 0  # --dask-concurrency: runs of the execution at once on the cluster; 0: any


def run_work(work: Work, *upstream: RunResult) -> RunResult:
    """The Dask task of one run (see the module docstring). Never raises for a run's failure.
    The result is also sent to the driver as an event: it gets it without fetching it."""
    from distributed import get_worker

    return run_one(work, upstream, get_worker())


def run_one(work: Work, upstream: tuple[RunResult, ...], worker: Any) -> RunResult:
    """One run on this worker, its result sent as an event."""
    return run_many([(work, upstream)], worker)[work.job.key]


def finished_result(work: Work) -> RunResult | None:
    """The run's final result if an execution of it ended in this execution, else None."""
    return Ledger(Path(work.scratch) / "runs" / _digest(work.job.key)).read()[2]


def run_many(
    works: Sequence[tuple[Work, tuple[RunResult, ...]]], worker: Any
) -> dict[str, RunResult]:
    """Runs of one execution on this worker (one task's, or a pack's: `dask_pack`), each
    with the results of what it needs; their results by key, each sent as an event.

    Each run is settled, or prepared and queued at once in the execution's pool of this
    worker: the pool starts the next as soon as one ends, while this thread records the
    ends. A run's start is recorded when the pool sends it to a process (`on_start`)."""
    out: dict[str, RunResult] = {}
    execution_id = works[0][0].execution_id

    def finish(work: Work, result: RunResult) -> None:
        message = {**dataclasses.asdict(result), "status": result.status.value}
        _publish(worker, execution_id, ["finished", message])
        out[work.job.key] = result

    begun: list[_Attempt] = []
    for work, upstream in works:
        ready = _run(work, upstream, worker)
        attempt = ready if isinstance(ready, RunResult) else _begin(work, ready, worker)
        if isinstance(attempt, RunResult):
            finish(work, attempt)
        else:
            begun.append(attempt)
    if not begun:
        return out
    size = int(getattr(getattr(worker, "state", None), "nthreads", 1))
    try:
        with _pooled(execution_id, size) as pool:
            gated = _Gated(pool, _leases(execution_id, works[0][0].leases))
            flights: dict[concurrent.futures.Future[RunResult], _Attempt] = {}
            for attempt in begun:
                attempt.submit(gated, flights, worker)
            while flights:
                done, _ = concurrent.futures.wait(
                    flights, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    attempt = flights.pop(future)
                    result = future.result()
                    if (result.error or "").startswith(KILLED):
                        time.sleep(
                            SIGNALLED_GRACE
                        )  # if this worker's job was ended, we end here with it
                    if result.status is RunStatus.FAILED and attempt.number <= attempt.job.retries:
                        attempt.ledger.end(attempt.number)
                        attempt.number += 1
                        attempt.submit(gated, flights, worker)
                    else:
                        attempt.ledger.end(attempt.number, result)
                        finish(attempt.work, result)
    except RuntimeError:  # the execution was cancelled: its pool is shut down
        pass
    for attempt in begun:
        if attempt.work.job.key not in out:
            finish(attempt.work, _settled(attempt.job, RunStatus.CANCELLED, "cancelled"))
    return out


def _run(work: Work, upstream: tuple[RunResult, ...], worker: Any) -> Job | RunResult:
    """The run prepared to execute, or its result if it is settled without executing."""
    job = work.job
    problem = shared_problem(work.shared)
    if problem is not None:
        return _settled(
            job, RunStatus.ERRORED, f"the Dask worker {worker.address} cannot run it: {problem}"
        )
    results = dict(zip(work.upstream, upstream, strict=True))
    for key, name in zip(work.upstream, work.upstream_names, strict=True):
        if not results[key].status.ok:
            return _settled(job, RunStatus.SKIPPED, f"skipped (upstream failed): {name}".rstrip())
    if work.settled is not None:
        return work.settled
    return _prepare(work, results)


def _prepare(work: Work, results: dict[str, RunResult]) -> Job | RunResult:
    from qaflow.execution.prepare import Preparer

    if work.plan is None:
        return work.job
    preparer = Preparer(work.plan, forced=frozenset({work.job.key} if work.forced else ()))
    listing = work.job.task.env.get("QA_PREVIOUS_BATCH")
    if not listing:
        return preparer(work.job, results)
    with run_lock(Path(listing)):  # the runs of a step, on several workers, write it in turn
        return preparer(work.job, results)


@dataclass
class _Attempt:
    """A run's next execution: it is executed again after a failure or a dead worker, up to
    `retries` more times."""

    work: Work
    job: Job
    ledger: Ledger
    number: int
    env: dict[str, str]
    address: str

    def submit(
        self,
        pool: _Gated,
        flights: dict[concurrent.futures.Future[RunResult], _Attempt],
        worker: Any,
    ) -> None:
        task = dataclasses.replace(self.job.task, attempt=self.number, env=self.env)
        number = self.number

        def started() -> None:
            self.ledger.start(number, self.address)
            _publish(worker, self.work.execution_id, ["started", self.job.key, number])

        flights[pool.submit(task, on_start=started)] = self


def _begin(work: Work, job: Job, worker: Any) -> _Attempt | RunResult:
    """The run's next attempt, from its ledger: or its result, if an earlier execution of it
    ended (Dask lost the result with its worker, not the run: no re-execution), or if its
    worker died while running it more often than `retries` allows."""
    address = str(getattr(worker, "address", ""))
    ledger = Ledger(Path(work.scratch) / "runs" / _digest(job.key))
    started, died_on, done = ledger.read()
    if done is not None:
        return done
    if died_on is not None and started > job.retries:
        error = (
            f"the Dask worker {died_on} died while running it (killed, out of memory, lost, "
            f"or its batch job ended), {_times(started)}; retries: {job.retries}"
        )
        return dataclasses.replace(
            _settled(job, RunStatus.FAILED, error),
            metrics=record_failure(job.task, error, 0.0),
            output_dir=str(attempt_dir_of(job.task)),
        )
    return _Attempt(work, job, ledger, started + 1, {**job.task.env, WORKER_ENV: address}, address)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _publish(worker: Any, execution_id: str, message: list[Any]) -> None:
    """Tell the driver (an event it subscribed to: see DaskScheduler). Events travel on the
    same stream as the task's completion, before it."""
    with contextlib.suppress(Exception):  # the driver falls back to fetching the result
        worker.log_event(topic(execution_id), message)


def topic(execution_id: str) -> str:
    return f"qaflow-{execution_id}"


class Ledger:
    """A run's executions in this execution: starts and ends appended to one file (small
    appends are atomic), and the final result, pickled next to it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, str | None, RunResult | None]:
        """(attempts started, the worker of the last one if it never ended, the final result)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0, None, None
        with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError):
            return len(lines), None, pickle.loads(self.path.with_suffix(".result").read_bytes())
        starts = [line.split(" ", 2) for line in lines if line.startswith("start ")]
        ended = {line.split(" ")[1] for line in lines if line.startswith("end ")}
        if starts and starts[-1][1] not in ended:
            return len(starts), starts[-1][2] if len(starts[-1]) > 2 else "?", None
        return len(starts), None, None

    def start(self, attempt: int, worker: str) -> None:
        self._append(f"start {attempt} {worker}\n")

    def end(self, attempt: int, result: RunResult | None = None) -> None:
        if result is not None:
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(result))
            tmp.replace(self.path.with_suffix(".result"))
        self._append(f"end {attempt}\n")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _digest(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def _settled(job: Job, status: RunStatus, error: str) -> RunResult:
    now = time.time()
    return RunResult(job.key, status, error=error, started_at=now, ended_at=now, host=hostname())


# ---------------------------------------------------------------- --dask-concurrency
class _Leases:
    """At most `count` runs of an execution at once on the whole cluster (QA-Board's
    --dask-concurrency): a run takes a lease of the execution's `distributed.Semaphore`
    (held by the scheduler) before this worker's pool starts it, and gives it back when it
    ends. Runs wait for their lease in threads of their own, so the task's thread goes on
    recording the runs that end."""

    def __init__(self, execution_id: str, count: int) -> None:
        from distributed import Semaphore

        self.count = count
        self.semaphore = Semaphore(max_leases=count, name=f"qaflow-{execution_id}-runs")
        self.threads = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="qaflow-lease")
        self.closed = False

    def run(self, pool: LocalPool, task: RunTask, on_start: Callable[[], None]) -> RunResult:
        while not self.semaphore.acquire(timeout=1):
            if self.closed:
                raise RuntimeError("cancelled")
        try:
            return pool.submit(task, on_start=on_start).result()
        finally:
            with contextlib.suppress(Exception):  # closed meanwhile: nothing to give back
                self.semaphore.release()

    def close(self) -> None:
        self.closed = True
        self.threads.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.semaphore.close()


@dataclass
class _Gated:
    """The execution's pool on this worker, behind its leases if it has some."""

    pool: LocalPool
    leases: _Leases | None

    def submit(
        self, task: RunTask, on_start: Callable[[], None]
    ) -> concurrent.futures.Future[RunResult]:
        if self.leases is None:
            return self.pool.submit(task, on_start=on_start)
        return self.leases.threads.submit(self.leases.run, self.pool, task, on_start)


_LEASES: dict[str, _Leases] = {}


def _leases(execution_id: str, count: int) -> _Leases | None:
    """The execution's leases on this worker (made once, in a task's thread); None: no limit."""
    if count <= 0:
        return None
    with _LOCK:
        if execution_id not in _LEASES:
            _LEASES[execution_id] = _Leases(execution_id, count)
        return _LEASES[execution_id]


# ---------------------------------------------------------------- one pool per execution
@dataclass
class _Pool:
    pool: LocalPool
    last_used: float
    inflight: int = 0


_POOLS: dict[str, _Pool] = {}
_CLOSED: set[str] = set()  # executions cancelled or ended: their late tasks get no new pool
_LOCK = threading.Lock()


@contextlib.contextmanager
def _pooled(execution_id: str, size: int) -> Iterator[LocalPool]:
    """This worker's pool for the execution, started on its first run (one process per
    thread); pools idle for IDLE_POOL seconds (their driver went away) are closed."""
    from qaflow.execution.executors.local import LocalPool

    with _LOCK:
        if execution_id in _CLOSED:
            raise RuntimeError("cancelled")
        now = time.monotonic()
        idle = [k for k, e in _POOLS.items() if not e.inflight and now - e.last_used > IDLE_POOL]
        stale = [_POOLS.pop(k) for k in idle]
        entry = _POOLS.get(execution_id)
        if entry is None:
            _allow_children()
            # no task sent ahead (`local_ahead`): a run's ledger must record its start before
            # it can start, so that a run never started is never taken for one its worker died in
            entry = _POOLS[execution_id] = _Pool(LocalPool(max(1, size), ahead_below=0.0), now)
        entry.inflight += 1
    for old in stale:
        old.pool.shutdown()
    try:
        yield entry.pool
    finally:
        with _LOCK:
            entry.inflight -= 1
            entry.last_used = time.monotonic()


def close_pool(execution_id: str, cancel: bool = False) -> None:
    """End the execution's pool on this worker (run on every worker by the driver, at the end
    or, with cancel, to kill the runs in flight)."""
    with _LOCK:
        _CLOSED.add(execution_id)
        entry = _POOLS.pop(execution_id, None)
        leases = _LEASES.pop(execution_id, None)
    if leases is not None:
        leases.close()
    if entry is not None:
        entry.pool.shutdown(cancel=cancel)


def _allow_children() -> None:
    """Let this worker process start the pool's processes.

    Dask starts worker processes as daemons, and multiprocessing refuses children to a
    daemon, because a daemon's children would outlive it. The pool's processes do not: each
    kills its process group when the pipe it holds from this process closes (see
    `qaflow.worker.execute.serve`), so the flag's protection is not needed here.
    """
    process = multiprocessing.current_process()
    if process.daemon:
        process._config["daemon"] = False  # type: ignore[attr-defined]
