"""The types an execution hands on: `Options` in, `Job`s to the graph runners, `Run`s and the
`Execution` out, and the seams (`Executor`, `Events`) the scheduler talks through.

The orchestrator (`driver`) and its helpers (`background`, `recorder`, `report`, the
schedulers) all import this module, never one another's orchestrator. The worker-level
types (`RunStatus`, `RunResult`) live in `qaflow.worker.model`, below; they are re-exported
here for the run side. `RunTask` (`qaflow.worker.task`) is imported where tasks are made.
`Options` lives in `qaflow.execution.options` (re-exported here): a dry run needs only it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qaflow.execution.options import ActionOnExisting, Options
from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import PENDING_SKIPPED, RunResult, RunStatus

if TYPE_CHECKING:
    import concurrent.futures  # the Executor seam's type: not imported on a no-op's path

    from qaflow.worker.task import RunTask  # made only where runs execute

__all__ = [
    "ActionOnExisting",
    "Cancellation",
    "Events",
    "Execution",
    "Executor",
    "Job",
    "Options",
    "Run",
    "RunResult",
    "RunStatus",
]

CANCELLED_EXIT = 130  # 128 + SIGINT


@dataclass(frozen=True)
class Run:
    """A planned run and what came of it."""

    spec: RunSpec
    result: RunResult

    @property
    def status(self) -> RunStatus:
        return self.result.status

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics

    @property
    def output_dir(self) -> Path:
        """Where its files are: its committed result (its fingerprint final, so it may differ
        from the planned one when it waited on upstream runs), or a failed attempt's files."""
        where = self.result.output_dir
        return Path(where) if where else self.spec.output_dir

    @property
    def error(self) -> str | None:
        return self.result.error


@dataclass(frozen=True)
class Execution:
    """One `qa batch`: its plan and the result of every run."""

    id: str
    label: str
    plan: Plan
    results: dict[str, RunResult]
    storage: Path
    started_at: float
    ended_at: float = field(default_factory=time.time)

    def runs(self) -> list[Run]:
        """Every run, in plan order."""
        return [
            Run(spec, self.results[spec.key]) for spec in self.plan.runs if spec.key in self.results
        ]

    @property
    def status(self) -> str:
        statuses = {result.status for result in self.results.values()}
        if RunStatus.CANCELLED in statuses:
            return "cancelled"
        # as in QA-Board, a run skipped because another execution runs it is left out
        ok = all(r.status.ok or r.error == PENDING_SKIPPED for r in self.results.values())
        return "succeeded" if ok else "failed"

    @property
    def exit_code(self) -> int:
        """0 succeeded, 1 a run failed, 130 cancelled (Ctrl-C, `qa cancel`), as a shell says
        of a command ended by SIGINT."""
        return {"succeeded": 0, "cancelled": CANCELLED_EXIT}.get(self.status, 1)


@dataclass(frozen=True)
class Job:
    """One run of the graph: what to execute, what it needs, and its scheduling limits.

    Only runs to execute become jobs: the runs settled before anything runs (reused
    results) reach the graph runners as `Run`s, beside the jobs."""

    run: RunSpec
    task: RunTask
    needs: frozenset[str] = frozenset()
    retries: int = 0
    batch_limit: int | None = None

    @property
    def key(self) -> str:
        return self.run.key


class Events(Protocol):
    """What the graph runners tell the outside world (console, store…) as runs progress."""

    def run_started(self, run: RunSpec, attempt: int) -> None: ...

    def run_finished(self, run: RunSpec, result: RunResult) -> None: ...


class Executor(Protocol):
    """The seam between the scheduler and where runs execute (local pool, in-process)."""

    def submit(self, task: RunTask) -> concurrent.futures.Future[RunResult]:
        """Start the task (or queue it); the future resolves to its result, never raises."""
        ...

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release the workers; with cancel, kill the runs in flight (their futures get CANCELLED)."""
        ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Cancellation:
    """Cancels every execution driven under it, now or when `cancel()` is called: for a
    caller driving several executions at once from threads (`qa optimize --parallel`), where
    SIGTERM cannot reach each execution's graph runner. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: set[Cancellable] = set()
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            runners = list(self._runners)
        for runner in runners:
            runner.cancel()

    @contextlib.contextmanager
    def covering(self, runner: Cancellable) -> Iterator[None]:
        """While the block runs, `cancel()` cancels `runner` (at once if already cancelled)."""
        with self._lock:
            self._runners.add(runner)
            cancelled = self.cancelled
        if cancelled:
            runner.cancel()
        try:
            yield
        finally:
            with self._lock:
                self._runners.discard(runner)
