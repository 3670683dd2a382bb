"""Backends: where an execution's runs execute, behind one `GraphRunner` contract.

A backend is opened before the execution is recorded (the local pool's workers boot while
the driver records; a Dask cluster is reached and checked, so a refusal records nothing),
gives the execution its graph runner, winds down once the graph ran, and is closed after
the execution is finished (on an error: what still runs is killed).

- `LocalBackend`: a `LocalPool` of worker processes, scheduled by our `Scheduler`.
- `DaskBackend`: a Dask cluster, which holds the graph's edges (`DaskScheduler`). Dask is
  imported only when this backend is opened: `qa --help` and a cached `qa batch` never
  import it.

`backend_for` is the one place that chooses between them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from qaflow.config.project import Project
from qaflow.execution.executors.inline import InlineExecutor
from qaflow.execution.model import (
    Events,
    Executor,
    Job,
    Options,
    Run,
    RunResult,
    RunStatus,
)
from qaflow.execution.preflight import Preflight
from qaflow.execution.prepare import Preparer
from qaflow.execution.scheduler import Decide, Prepare, Scheduler
from qaflow.execution.settle import Decisions
from qaflow.plan.model import Plan
from qaflow.worker.task import RunTask

if TYPE_CHECKING:
    from qaflow.execution.executors.cluster import Cluster
    from qaflow.execution.executors.local import LocalPool


class GraphRunner(Protocol):
    """Executes a graph of jobs; `Scheduler` and `DaskScheduler` implement it."""

    def run(self, jobs: Sequence[Job], settled: Sequence[Run]) -> dict[str, RunResult]:
        """Execute every job; return the final result of each job and settled run, by key.
        The settled runs (results known up front) are reported first, never executed."""
        ...

    def cancel(self) -> None:
        """Stop: runs not started become CANCELLED, runs in flight are killed. Safe to call
        from a signal handler; run() then returns normally with every result."""
        ...


class Backend(Protocol):
    """Where runs execute (see the module docstring). A context manager."""

    def __enter__(self) -> Backend: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def runner(self, *, events: Events, execution_id: str) -> GraphRunner:
        """The graph runner of the execution `execution_id`, reporting to `events`."""
        ...

    def wind_down(self) -> None:
        """Once the graph ran: let what executed runs end (the local pool's workers exit)."""
        ...


def backend_for(
    project: Project,
    the_plan: Plan,
    options: Options,
    checks: Preflight,
    decisions: Decisions,
    pool: LocalPool | None = None,
) -> Backend:
    """The backend of the runner the preflight resolved, for the runs not settled up front;
    `pool`: the local pool to share (owned by the caller) instead of one of its own."""
    settled = decisions.settled
    if checks.runner == "dask":
        from qaflow.execution.executors.cluster import cluster_options

        return DaskBackend(
            project=project,
            plan=the_plan,
            address=options.dask_scheduler,
            cluster=cluster_options(project, options),
            batches={spec.batch for spec in the_plan.runs if spec.key not in settled},
            decide=decisions.decide,
            forced=decisions.forced,
            concurrency=options.dask_concurrency
            if options.dask_concurrency is not None
            else project.dask.get("concurrency"),
        )
    return LocalBackend(
        capacity=checks.capacity,
        executes=len(the_plan.runs) - len(settled),
        decide=decisions.decide,
        prepare=Preparer(the_plan, forced=decisions.forced),
        shared=pool,
    )


class LocalBackend:
    """Runs on a pool of `capacity` local worker processes, scheduled by `Scheduler`."""

    def __init__(
        self,
        *,
        capacity: int,
        executes: int | bool = True,
        decide: Decide | None = None,
        prepare: Prepare | None = None,
        shared: LocalPool | None = None,
    ) -> None:
        """`executes`: how many runs are to execute (True: unknown): no more worker processes
        are started; none, no pool at all (a fully cached DAG). `shared`: a pool other
        executions use too, left running at the end."""
        self.capacity = capacity
        self.executes = executes
        self.decide = decide
        self.prepare = prepare
        self.shared = shared
        self.pool: LocalPool | None = None

    def __enter__(self) -> LocalBackend:
        if self.executes:  # the pool's modules only then: a fully cached DAG imports none
            if self.shared is not None:
                self.pool = self.shared
            else:
                from qaflow.execution.executors.local import LocalPool

                workers = None if self.executes is True else int(self.executes)
                self.pool = LocalPool(self.capacity, workers=workers)  # its workers boot meanwhile
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.pool is not None and self.pool is not self.shared:
            self.pool.__exit__(exc_type, exc, tb)

    def runner(self, *, events: Events, execution_id: str) -> Scheduler:
        executor: Executor = InlineExecutor()  # without a pool, nothing is submitted
        if self.pool is not None:
            executor = self.pool if self.pool is not self.shared else SharedPool(self.pool)
        own = self.pool is not None and self.pool is not self.shared
        return Scheduler(
            executor=executor,
            events=events,
            capacity=self.capacity,
            decide=self.decide,
            prepare=self.prepare,
            # each worker's next run waits at the pool, and one more: the pool sends a
            # worker its next run ahead only while it has more queued than workers
            ahead=2 * self.capacity if own else 0,
        )

    def wind_down(self) -> None:
        if self.pool is not None and self.pool is not self.shared:
            self.pool.shutdown()


class SharedPool:
    """A local pool several executions use at once, owned by their caller (`qa optimize
    --parallel`), who cancels them all together (`Cancellation`): cancelling one kills the
    runs in flight, and a run submitted after that is CANCELLED instead of refused."""

    def __init__(self, pool: LocalPool) -> None:
        self.pool = pool

    def submit(self, task: RunTask) -> concurrent.futures.Future[RunResult]:
        try:
            return self.pool.submit(task)
        except RuntimeError:  # shut down by a cancel
            from qaflow.worker.execute import failed_result

            future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
            future.set_result(failed_result(task, RunStatus.CANCELLED, "cancelled", 0.0, 0))
            return future

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            self.pool.shutdown(cancel=True)


class DaskBackend:
    """Runs on a Dask cluster (`runners.dask`, or the scheduler at `address`)."""

    def __init__(
        self,
        *,
        project: Project,
        plan: Plan,
        address: str | None = None,
        cluster: Mapping[str, Any] | None = None,
        batches: Collection[str] | None = None,
        decide: Decide | None = None,
        forced: frozenset[str] = frozenset(),
        concurrency: int | None = None,
    ) -> None:
        """`cluster`: the cluster's options (default: runners.dask.cluster); `batches`: those
        with runs to execute: only their `resources:` must be offered; `concurrency`: at most
        that many runs at once on the cluster (--dask-concurrency; None or 0: any)."""
        self.project = project
        self.concurrency = concurrency
        self.plan = plan
        self.address = address
        self.cluster_options = cluster
        self.batches = batches
        self.decide = decide
        self.forced = forced
        self._stack = contextlib.ExitStack()
        self.cluster: Cluster | None = None

    def __enter__(self) -> DaskBackend:
        from qaflow.execution.executors.cluster import open_cluster

        opened = open_cluster(
            self.project,
            self.plan,
            self.address,
            batches=self.batches,
            options=self.cluster_options,
        )
        self.cluster = self._stack.enter_context(opened)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)
        self.cluster = None

    def runner(self, *, events: Events, execution_id: str) -> GraphRunner:
        from qaflow.execution.executors.dask import DaskScheduler

        if self.cluster is None:
            raise RuntimeError("DaskBackend.runner() outside its `with` block")
        return DaskScheduler(
            cluster=self.cluster,
            events=events,
            plan=self.plan,
            execution_id=execution_id,
            root=self.project.root,
            storage=self.project.storage,
            decide=self.decide,
            forced=self.forced,
            concurrency=self.concurrency,
        )

    def wind_down(self) -> None:
        """Nothing to wait for: the cluster is closed with the backend."""
