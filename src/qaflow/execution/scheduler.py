"""The scheduler: execute a graph of runs on an executor, each as soon as what it needs is done.

Policy
- A run is submitted when every run it needs has finished with an ok status; a run whose
  upstream did not succeed is SKIPPED ("upstream failed") without being submitted.
- The runs settled before anything runs (reused results) come as `Run`s beside the jobs:
  reported first, in one pass, and left out of the graph (a fully cached DAG builds none).
- `decide(job)` may settle a job without executing it (an existing result, as with
  --action-on-existing skip or sync);
  `prepare(job, results)` completes a run once what it needs is done (expressions that read
  upstream metrics), or settles it (a failure to evaluate them).
- Capacity: at most `capacity` slots in use; a run takes `task.cpus` slots (clamped to the
  capacity, so a big run still runs, alone); a batch with `concurrency` has at most that
  many runs in flight. Ready runs start in plan order; a smaller run may pass a bigger one
  that does not fit yet.
- Ahead: an executor that queues (the local pool) may be given `ahead` more slots' worth
  of runs than the capacity, so that a worker starts its next run as soon as it sent a
  result, without waiting for this thread. Such a run is reported started when the
  executor starts it (its `on_start`, from the executor's thread, which queues the start
  and wakes this thread): every event is still reported from this thread, a run's start
  before its end. A batch with `concurrency` is never given runs ahead beyond it.
- A FAILED run is re-submitted up to `retries` times (attempt 2, 3, …). ERRORED runs are
  not retried: retrying cannot fix qaflow being unable to execute them.
- cancel() or Ctrl-C: queued runs become CANCELLED, the executor kills the runs in flight,
  and run() returns normally with every result.

State: a `graphlib.TopologicalSorter` over run keys, the ready queue, the futures in
flight. Waiting is a blocking `get` on one inbox (a `queue.SimpleQueue`) where the futures'
done-callbacks, the executor's starts and `cancel()` put what happened: never a polling
sleep, and no waiter installed on every future at each wait.

Invariant: every job and every settled run gets exactly one final result, reported once to
`events.run_finished`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import graphlib
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from qaflow.errors import GraphError
from qaflow.execution.model import Events, Executor, Job, Run, RunResult, RunStatus
from qaflow.plan.model import RunSpec

__all__ = ["Decide", "Job", "Prepare", "Scheduler", "settled_result"]


Decide = Callable[[Job], RunResult | None]
Prepare = Callable[[Job, Mapping[str, RunResult]], "Job | RunResult"]


@dataclass
class _State:
    sorter: graphlib.TopologicalSorter[str]
    results: dict[str, RunResult] = field(default_factory=dict)
    ready: deque[Job] = field(default_factory=deque)
    inflight: dict[concurrent.futures.Future[RunResult], Job] = field(default_factory=dict)
    used: int = 0
    per_batch: Counter[str] = field(default_factory=Counter)
    undecided: set[str] = field(default_factory=set)  # keys `decide` declined: not asked again
    settled: Sequence[Run] = ()  # the runs settled up front


class Scheduler:
    """Runs jobs on an executor, respecting their dependencies and the capacity."""

    def __init__(
        self,
        *,
        executor: Executor,
        events: Events,
        capacity: int,
        decide: Decide | None = None,
        prepare: Prepare | None = None,
        ahead: int = 0,
    ) -> None:
        """`ahead`: slots' worth of runs given to the executor beyond `capacity` (its
        `submit` must then take `on_start`, called when the run starts)."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.executor = executor
        self.events = events
        self.capacity = capacity
        self.decide = decide
        self.prepare = prepare
        self.ahead = max(0, ahead)
        self._cancelled = threading.Event()
        # what happened, from any thread: a done future, a run started (`_Started`), _WAKE
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def cancel(self) -> None:
        """Stop: runs not started yet become CANCELLED, runs in flight are killed. Thread-safe."""
        self._cancelled.set()
        self._inbox.put(_WAKE)  # reentrant: callable from a signal handler

    def run(self, jobs: Sequence[Job], settled: Sequence[Run] = ()) -> dict[str, RunResult]:
        """Execute every job; return the final result of each, and of the `settled` runs, by
        run key. The settled runs (results known before anything runs) are reported first."""
        results = self._report_settled(settled)
        by_key = {job.key: job for job in jobs}
        _check_needs(by_key, results)
        undecided = self._settle_upfront(results, jobs)
        state = _State(
            sorter=_sorter(by_key, results), results=results, undecided=undecided, settled=settled
        )
        try:
            while state.sorter.is_active():
                if self._cancelled.is_set():
                    self._cancel_all(state, by_key)
                    break
                self._take_ready(state, by_key)
                self._start(state)
                if state.inflight:
                    self._wait(state)
        except KeyboardInterrupt:  # Ctrl-C: the same as cancel(); the caller records the outcome
            self._cancelled.set()
            self._cancel_all(state, by_key)
        return state.results

    # ------------------------------------------------------------ transitions
    def _report_settled(self, settled: Sequence[Run]) -> dict[str, RunResult]:
        """The results of the settled runs, reported in one pass (a cached DAG: all of it,
        without the graph's bookkeeping)."""
        results: dict[str, RunResult] = {}
        for run in settled:
            results[run.spec.key] = run.result
            self.events.run_finished(run.spec, run.result)
        return results

    def _settle_upfront(self, results: dict[str, RunResult], jobs: Sequence[Job]) -> set[str]:
        """Finish, in one pass, the jobs that `decide` settles and whose upstream was settled
        ok already (--action-on-existing skip over a whole DAG, without the graph's
        bookkeeping); jobs in plan order settle whole chains. Returns the keys `decide`
        declined, not to ask again."""
        undecided: set[str] = set()
        if self.decide is None:
            return undecided
        for job in jobs:
            if not all(key in results and results[key].status.ok for key in job.needs):
                continue
            decided = self.decide(job)
            if decided is None:
                undecided.add(job.key)
                continue
            results[job.key] = decided
            self.events.run_finished(job.run, decided)
        return undecided

    def _take_ready(self, state: _State, by_key: dict[str, Job]) -> None:
        for key in state.sorter.get_ready():
            job = by_key[key]
            failed = [k for k in sorted(job.needs) if not state.results[k].status.ok]
            if failed:
                upstream = _spec(failed[0], by_key, state.settled)
                reason = f"skipped (upstream failed): {upstream.batch} {upstream.rel_input_path or ''}".rstrip()
                self._finish(state, job, settled_result(job, RunStatus.SKIPPED, reason))
                continue
            decided = self.decide(job) if self.decide and key not in state.undecided else None
            if decided is None and self.prepare is not None:
                prepared = self.prepare(job, state.results)
                decided = prepared if isinstance(prepared, RunResult) else None
                job = prepared if isinstance(prepared, Job) else job
            if decided is not None:
                self._finish(state, job, decided)
            else:
                state.ready.append(job)

    def _start(self, state: _State) -> None:
        limit = self.capacity + self.ahead
        for job in list(state.ready):
            cpus = min(job.task.cpus, self.capacity)
            if state.used + cpus > limit:
                continue
            if job.batch_limit is not None and state.per_batch[job.run.batch] >= job.batch_limit:
                continue
            state.ready.remove(job)
            state.used += cpus
            state.per_batch[job.run.batch] += 1
            if self.ahead:
                on_start = functools.partial(self._inbox.put, _Started(job))
                future = self.executor.submit(job.task, on_start=on_start)  # type: ignore[call-arg]
            else:
                self.events.run_started(job.run, job.task.attempt)
                future = self.executor.submit(job.task)
            state.inflight[future] = job
            future.add_done_callback(self._inbox.put)
            if state.used >= limit:
                return

    def _wait(self, state: _State) -> None:
        """Take what happened (blocking for the first), then handle it: the runs done (one
        that also started since last time is reported started first), then the starts of
        the runs still running (after the ends: fewer shown running at once)."""
        happened = [self._inbox.get()]
        with contextlib.suppress(queue.Empty):
            while True:
                happened.append(self._inbox.get_nowait())
        started = {id(e.job): e.job for e in happened if isinstance(e, _Started)}
        for future in happened:
            if not isinstance(future, Future):  # a start, the cancel's wake-up
                continue
            job = state.inflight.pop(future)
            if started.pop(id(job), None) is not None:
                self.events.run_started(job.run, job.task.attempt)
            state.used -= min(job.task.cpus, self.capacity)
            state.per_batch[job.run.batch] -= 1
            result = _result_of(job, future)
            if (
                result.status is RunStatus.FAILED
                and job.task.attempt <= job.retries
                and not self._cancelled.is_set()
            ):
                retry = dataclasses.replace(
                    job, task=dataclasses.replace(job.task, attempt=job.task.attempt + 1)
                )
                state.ready.appendleft(retry)
            else:
                self._finish(state, job, result)
        self._report_started(started.values())

    def _report_started(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self.events.run_started(job.run, job.task.attempt)

    def _finish(self, state: _State, job: Job, result: RunResult) -> None:
        state.results[job.key] = result
        self.events.run_finished(job.run, result)
        state.sorter.done(job.key)

    def _cancel_all(self, state: _State, by_key: dict[str, Job]) -> None:
        self.executor.shutdown(cancel=True)
        with contextlib.suppress(queue.Empty):  # what started before the cancel: before its end
            while True:
                if isinstance(happened := self._inbox.get_nowait(), _Started):
                    self._report_started([happened.job])
        for future, job in list(state.inflight.items()):
            state.inflight.pop(future)
            self._record(state, job, _result_of(job, future, wait=5.0))
        for key, job in by_key.items():
            if key not in state.results:
                self._record(state, job, settled_result(job, RunStatus.CANCELLED, "cancelled"))

    def _record(self, state: _State, job: Job, result: RunResult) -> None:
        state.results[job.key] = result
        self.events.run_finished(job.run, result)


@dataclass(frozen=True)
class _Started:
    """In the inbox: the executor started a run given ahead (its `on_start`)."""

    job: Job


_WAKE = object()  # in the inbox: cancel() was called


def _check_needs(by_key: dict[str, Job], settled: Mapping[str, RunResult]) -> None:
    for job in by_key.values():
        unknown = [k for k in job.needs if k not in by_key and k not in settled]  # O(needs)
        if unknown:
            raise GraphError(
                f"Run {job.run.batch} {job.run.rel_input_path} needs runs that are not planned: {sorted(unknown)}."
            )


def _spec(key: str, by_key: dict[str, Job], settled: Sequence[Run]) -> RunSpec:
    """The run `key`, a job's or a settled one's (rare: settled runs are mostly ok)."""
    if key in by_key:
        return by_key[key].run
    return next(run.spec for run in settled if run.spec.key == key)


def _sorter(
    by_key: dict[str, Job], settled: Mapping[str, RunResult]
) -> graphlib.TopologicalSorter[str]:
    """The graph of the jobs not `settled` yet (what they need of those is done)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for key, job in by_key.items():
        if key not in settled:
            sorter.add(key, *sorted(k for k in job.needs if k not in settled))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise GraphError(f"The runs form a cycle: {' -> '.join(exc.args[1])}.") from exc
    return sorter


def _result_of(
    job: Job, future: concurrent.futures.Future[RunResult], wait: float | None = None
) -> RunResult:
    try:
        return future.result(timeout=wait)
    except concurrent.futures.CancelledError:
        return settled_result(job, RunStatus.CANCELLED, "cancelled")
    except Exception as exc:  # an executor bug must not lose the run: it is reported as errored
        return settled_result(
            job, RunStatus.ERRORED, f"the executor failed: {type(exc).__name__}: {exc}"
        )


def settled_result(job: Job, status: RunStatus, error: str) -> RunResult:
    """The result of a job that did not run (skipped, cancelled, errored), ended now."""
    now = time.time()
    return RunResult(
        key=job.key,
        status=status,
        error=error,
        started_at=now,
        ended_at=now,
        attempt=job.task.attempt,
    )
