"""`DaskScheduler`: execute the graph of runs on a Dask cluster, which holds its edges.

Policy
- What is settled before anything runs is never submitted: the settled runs given beside
  the jobs (reused results), runs that `decide` settles when what they need is settled too,
  and runs whose upstream is settled and not ok (SKIPPED). Every
  other run becomes one Dask task whose arguments are the futures (or the settled results)
  of the runs it needs, so the cluster starts it when they are done, on a worker offering
  its batch's resources. The task (`dask_worker.run_work`) skips, completes, executes and
  retries the run there; the driver only submits and reports.
- Packing: the runs nothing in the execution needs (leaves) are queued instead, and handed
  out as workers need them in packs of consecutive runs lasting about 150 ms each
  (`qaflow.execution.executors.dask_pack`); a pack's runs are reported one by one.
- Events: the workers publish each run's start and result on an event topic of the
  execution; a task's future completes after its result event (one stream), so the driver
  reports `run_finished` when the future is done without fetching the result (it fetches
  it only if the event is missing). Reporters are called from the thread that called
  run(), which waits on one queue fed by the events, the futures' callbacks and cancel():
  never a polling sleep.
- Why Dask holds the edges rather than our `Scheduler` releasing ready runs: the cluster
  then starts each run as soon as its upstream is done, on a worker of its choosing,
  without a round trip to the driver per run. What needs upstream results (skips, deferred `needs[x].metrics`,
  `$QA_PREVIOUS_BATCH`) is done on the worker, from the upstream results Dask passes in.
- cancel() (SIGTERM, `qa cancel`) or Ctrl-C: the futures are cancelled, the execution's
  pool on every worker kills its runs, every unfinished run is CANCELLED.
- A task Dask gave up on (its workers died more often than the scheduler's
  `allowed-failures`) is FAILED with that reason; another error of a task is ERRORED.
  Per-batch `local.concurrency` does not apply: the cluster's workers are the capacity;
  `concurrency` (QA-Board's --dask-concurrency) caps the runs of the execution at once, by
  leases taken on the workers (`dask_worker`).

State: the futures by run key, the jobs by Dask key, the results, the keys reported started,
the results received as events and not yet matched with their future.
Invariant: every job and every settled run gets exactly one final result, reported once to
`run_finished`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.errors import ExecutorError, GraphError
from qaflow.execution.executors.dask_pack import Packer
from qaflow.execution.executors.dask_worker import Shared, Work, close_pool, run_work, topic
from qaflow.execution.model import Events, Job, Run, RunResult, RunStatus
from qaflow.execution.scheduler import settled_result
from qaflow.plan.model import Plan
from qaflow.worker.context import record_failure
from qaflow.worker.rundir import attempt_dir_of

if TYPE_CHECKING:
    from distributed import Client, Future

    from qaflow.execution.executors.cluster import Cluster

Decide = Callable[[Job], RunResult | None]
_CANCEL = object()


@dataclass
class _State:
    results: dict[str, RunResult] = field(default_factory=dict)
    submit: list[tuple[Job, RunResult | None]] = field(default_factory=list)
    futures: dict[str, Future] = field(default_factory=dict)  # run key -> its unfinished task
    jobs: dict[object, Job] = field(default_factory=dict)  # Dask key -> job, while unfinished
    started: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)  # keys of the jobs in `submit`
    reported: dict[str, RunResult] = field(default_factory=dict)  # results sent as events
    packer: Packer | None = None  # the leaf jobs handed out in packs (dask_pack)


class DaskScheduler:
    """Runs jobs as a graph of Dask tasks; the same `run(jobs)` / `cancel()` as `Scheduler`."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        events: Events,
        plan: Plan,
        execution_id: str,
        root: Path,
        storage: Path,
        decide: Decide | None = None,
        forced: frozenset[str] = frozenset(),
        pack: bool = True,
        concurrency: int | None = None,
    ) -> None:
        """`pack`: short leaf runs in packs (`dask_pack`); `concurrency`: runs at once (0: any)."""
        self.pack, self.concurrency = pack, concurrency or 0
        self.cluster = cluster
        self.events = events
        self.plan = plan
        self.execution_id = execution_id
        self.root = root
        self.scratch = storage / "executions" / f"{execution_id}.dask"
        self.decide, self.forced = decide, forced
        self._by_key = {run.key: run for run in plan.runs}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cancelled = False

    def cancel(self) -> None:
        """Stop: queued runs become CANCELLED, runs in flight are killed. Thread-safe, and safe
        in a signal handler (SimpleQueue.put is reentrant)."""
        self._cancelled = True
        self._queue.put(_CANCEL)

    def run(self, jobs: Sequence[Job], settled: Sequence[Run] = ()) -> dict[str, RunResult]:
        """Execute every job; return the final result of each, and of the `settled` runs, by
        run key. The settled runs (results known before anything runs) are reported first."""
        state = _State()
        for run in settled:
            state.results[run.spec.key] = run.result
            self.events.run_finished(run.spec, run.result)
        for job in jobs:
            self._settle(job, state)
        if not state.submit:
            return state.results
        if self._cancelled:
            self._cancel_all(None, state, [job for job, _ in state.submit])
            return state.results
        try:
            client = self.cluster.client(len(state.submit))
        except ExecutorError as exc:  # every run that was to execute fails with the reason
            for job, _ in state.submit:
                self._finish(state, job, settled_result(job, RunStatus.ERRORED, str(exc)))
            return state.results
        try:
            with self._subscribed(client):
                self._write_marker()
                try:
                    self._submit(client, state)
                    self._wait(client, state)
                except KeyboardInterrupt:
                    self._cancelled = True
                if self._cancelled:
                    self._cancel_all(client, state, [job for job, _ in state.submit])
        finally:
            with contextlib.suppress(Exception):
                client.run(close_pool, self.execution_id)
            shutil.rmtree(self.scratch, ignore_errors=True)
        return state.results

    # ------------------------------------------------------------ before submitting
    def _settle(self, job: Job, state: _State) -> None:
        unknown = [k for k in sorted(job.needs) if k not in state.results and k not in state.queued]
        if unknown:
            raise GraphError(
                f"Run {job.run.batch} {job.run.rel_input_path} needs runs that are not planned "
                f"before it: {unknown}."
            )
        failed = [
            k for k in sorted(job.needs) if k in state.results and not state.results[k].status.ok
        ]
        if failed:
            self._finish(
                state, job, settled_result(job, RunStatus.SKIPPED, self._skip_reason(failed[0]))
            )
            return
        decided = self.decide(job) if self.decide else None
        if decided is not None and all(k in state.results for k in job.needs):
            self._finish(state, job, decided)
        else:
            state.submit.append((job, decided))
            state.queued.add(job.key)

    def _skip_reason(self, key: str) -> str:
        run = self._by_key[key]
        return f"skipped (upstream failed): {run.batch} {run.rel_input_path or ''}".rstrip()

    def _write_marker(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        (self.scratch / "shared").write_text(self.execution_id, encoding="utf-8")

    @contextlib.contextmanager
    def _subscribed(self, client: Client) -> Iterator[None]:
        name = topic(self.execution_id)
        client.subscribe_topic(name, lambda event: self._queue.put(tuple(event[1])))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(name)

    def _submit(self, client: Client, state: _State) -> None:
        shared = Shared.of(self.root, self.scratch / "shared", self.execution_id)
        resources: dict[str, dict[str, float]] = {}

        def work_of(job: Job, settled: RunResult | None = None) -> Work:
            upstream = tuple(sorted(job.needs))
            return Work(
                job=_slim(job),
                execution_id=self.execution_id,
                scratch=str(self.scratch),
                shared=shared,
                upstream=upstream,
                upstream_names=tuple(self._skip_reason(k).partition(": ")[2] for k in upstream),
                plan=self._plan_for(job),
                forced=job.key in self.forced,
                settled=settled,
                leases=self.concurrency,
            )

        def argument(key: str) -> Any:
            return state.futures[key] if key in state.futures else state.results[key]

        def submit_one(job: Job, settled: RunResult | None = None) -> None:
            work = work_of(job, settled)
            future = client.submit(
                run_work,
                work,
                *[argument(k) for k in work.upstream],
                key=f"qaflow-{job.run.batch}-{job.key}-{self.execution_id}",
                resources=resources[job.run.batch] or None,
                pure=False,
            )
            state.futures[job.key] = future
            state.jobs[future.key] = job
            future.add_done_callback(self._queue.put)

        packer = Packer(self.scratch, work_of, argument, self._queue.put, submit_one)
        leaves = Packer.leaves([job for job, _ in state.submit]) if self.pack else set()
        for job, settled in state.submit:
            if self._cancelled:
                return
            if job.run.batch not in resources:
                wanted = (
                    self.plan.settings[job.run.batch].resources
                    if job.run.batch in self.plan.settings
                    else {}
                )
                resources[job.run.batch] = self.cluster.resources(job.run.batch, wanted)
            if settled is None and job.key in leaves:
                packer.queue(job, resources[job.run.batch] or None)
            else:
                submit_one(job, settled)
        state.packer = packer
        packer.fill(client)

    def _plan_for(self, job: Job) -> Plan:
        """The part of the plan that `Preparer` reads to complete this run on a worker."""
        listing = job.task.env.get("QA_PREVIOUS_BATCH")
        link = self.plan.links.get(job.key)  # resolved again if its fingerprint changes
        links = {job.key: link} if link is not None else {}
        keys = set(links[job.key].needs) if links else set()
        previous = {listing: self.plan.previous_files.get(listing, ())} if listing else {}
        for listed in previous.values():
            keys.update(listed)
        return Plan(
            runs=[dataclasses.replace(self._by_key[k], parts=None) for k in sorted(keys)],
            batches=[],
            links=links,
            edges={k: self.plan.edges[k] for k in keys if k in self.plan.edges},
            env={k: self.plan.env[k] for k in keys if k in self.plan.env},
            previous_files=previous,
        )

    # ------------------------------------------------------------ while running
    def _wait(self, client: Client, state: _State) -> None:
        packer = state.packer
        assert packer is not None
        while (state.jobs or packer.pending) and not self._cancelled:
            items = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(items) < 1000:
                    items.append(self._queue.get_nowait())
            for item in items:
                if isinstance(item, tuple):
                    self._event(state, *item)
            done = [item for item in items if item is not _CANCEL and not isinstance(item, tuple)]
            for future in [f for f in done if f.key in packer.packs]:
                for job, result in packer.done(client, future):
                    self._finish(state, job, result)
            done = [f for f in done if f.key in state.jobs]
            for future, result in zip(done, self._results(client, done, state), strict=True):
                job = state.jobs.pop(future.key)
                del state.futures[job.key]
                if job.key not in state.started and result.pid:  # its start event is late
                    self._started(state, job.key, result.attempt)
                self._finish(state, job, result)
            packer.fill(client)

    def _event(self, state: _State, kind: str, *args: Any) -> None:
        if kind == "started":
            self._started(state, *args)
        elif kind == "finished":
            message = args[0]
            result = RunResult(**{**message, "status": RunStatus(message["status"])})
            packed = state.packer.packed(result.key) if state.packer else None
            if packed is None:
                state.reported[result.key] = result
            elif result.key not in state.results:  # a run of a pack: reported at once
                if result.key not in state.started and result.pid:
                    self._started(state, result.key, result.attempt)
                self._finish(state, packed, result)

    def _started(self, state: _State, key: str, attempt: int) -> None:
        job = state.futures.get(key) and state.jobs.get(state.futures[key].key)
        job = job or (state.packer.packed(key) if state.packer else None)
        if job and key not in state.results:
            state.started.add(key)
            self.events.run_started(job.run, attempt)

    def _results(self, client: Client, done: list[Future], state: _State) -> list[RunResult]:
        """The result of each finished task (sent as an event, else fetched), failures explained."""
        jobs = [state.jobs.get(f.key) for f in done]
        values = {
            f.key: state.reported.pop(job.key)
            for f, job in zip(done, jobs, strict=True)
            if job is not None and job.key in state.reported and f.status == "finished"
        }
        fetch = [f for f in done if f.status == "finished" and f.key not in values]
        if fetch:
            with contextlib.suppress(Exception):  # a result lost meanwhile is explained below
                values.update(zip([f.key for f in fetch], client.gather(fetch), strict=True))
        return [values[f.key] if f.key in values else self._failure(f, state) for f in done]

    def _failure(self, future: Future, state: _State) -> RunResult:
        job = state.jobs.get(future.key)
        if job is None:
            return RunResult(str(future.key), RunStatus.CANCELLED)
        if future.status == "cancelled":
            return settled_result(job, RunStatus.CANCELLED, "cancelled")
        failed = [
            k
            for k in sorted(job.needs)
            if (k in state.results and not state.results[k].status.ok)
            or (k in state.futures and state.futures[k].status == "error")
        ]
        if failed:
            return settled_result(job, RunStatus.SKIPPED, self._skip_reason(failed[0]))
        try:
            exc = future.exception(timeout=5)
        except Exception as lost:
            exc = lost
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            error = (
                f"Dask gave up on it: the workers running it died {exc.allowed_failures + 1} "
                f"times, the last {getattr(exc.last_worker, 'address', exc.last_worker)} "
                "(killed, out of memory, or lost; the scheduler's "
                "distributed.scheduler.allowed-failures)"
            )
            result = settled_result(job, RunStatus.FAILED, error)
            metrics = record_failure(job.task, error, 0.0)
            return dataclasses.replace(
                result, metrics=metrics, output_dir=str(attempt_dir_of(job.task))
            )
        return settled_result(
            job, RunStatus.ERRORED, f"the Dask task failed: {type(exc).__name__}: {exc}"
        )

    def _finish(self, state: _State, job: Job, result: RunResult) -> None:
        if state.packer is not None:
            state.packer.finished(job.key, result)
        state.results[job.key] = result
        self.events.run_finished(job.run, result)

    def _cancel_all(self, client: Client | None, state: _State, jobs: list[Job]) -> None:
        packs = state.packer.cancel() if state.packer is not None else []
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel([*state.futures.values(), *packs])
            with contextlib.suppress(Exception):
                client.run(close_pool, self.execution_id, True)
        for job in jobs:
            if job.key not in state.results:
                self._finish(state, job, settled_result(job, RunStatus.CANCELLED, "cancelled"))
        state.jobs.clear()
        state.futures.clear()


def _slim(job: Job) -> Job:
    """The job as a task carries it: without the fingerprint's parts, unless the worker makes
    its fingerprint final (what its upstream runs produced: `Preparer`)."""
    if job.run.upstream:
        return job
    return dataclasses.replace(job, run=dataclasses.replace(job.run, parts=None))
