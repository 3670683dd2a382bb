"""Reporting an execution as it goes: the `Reporter` events and their fan-out.

Reporters are event sinks (`execution_started`, `run_started`, `run_finished`,
`execution_finished`); the console (`qaflow.execution.console`) and the store recorder are
two of them, fanned out by `Reporters`. `NullReporter` shows nothing; `RecordingReporter`
remembers every event, for tests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from qaflow.execution.console import ConsoleReporter
from qaflow.execution.summary import SummaryMetric, compact, summary
from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import RunResult

if TYPE_CHECKING:
    from qaflow.execution.model import Execution


__all__ = [
    "ConsoleReporter",
    "NullReporter",
    "RecordingReporter",
    "Reporter",
    "Reporters",
    "SummaryMetric",
    "compact",
    "summary",
]


class Reporter(Protocol):
    def execution_started(self, execution_id: str, plan: Plan) -> None: ...

    def run_started(self, run: RunSpec, attempt: int) -> None: ...

    def run_finished(self, run: RunSpec, result: RunResult) -> None: ...

    def execution_finished(self, execution: Execution) -> None: ...


class Reporters:
    """Fans every event out to several reporters, in order."""

    def __init__(self, *reporters: Reporter) -> None:
        # flat: the driver looks for optional methods (close_display, flush) on each one
        self.reporters: tuple[Reporter, ...] = tuple(
            inner
            for r in reporters
            for inner in (r.reporters if isinstance(r, Reporters) else (r,))
        )

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        for reporter in self.reporters:
            reporter.execution_started(execution_id, plan)

    def run_started(self, run: RunSpec, attempt: int) -> None:
        for reporter in self.reporters:
            reporter.run_started(run, attempt)

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        for reporter in self.reporters:
            reporter.run_finished(run, result)

    def execution_finished(self, execution: Execution) -> None:
        for reporter in self.reporters:
            reporter.execution_finished(execution)


class NullReporter:
    """Shows nothing: `qaflow.batch()` from Python prints nothing unless asked."""

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        pass

    def run_started(self, run: RunSpec, attempt: int) -> None:
        pass

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        pass

    def execution_finished(self, execution: Execution) -> None:
        pass


class RecordingReporter:
    """A reporter that remembers every event, for tests."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.times: dict[str, list[float]] = {}

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        self.events.append(("execution_started", execution_id, str(len(plan.runs))))

    def run_started(self, run: RunSpec, attempt: int) -> None:
        self.events.append(("run_started", run.batch, run.rel_input_path or ""))
        self.times.setdefault(run.key, []).append(time.monotonic())

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        self.events.append(
            ("run_finished", run.batch, f"{run.rel_input_path or ''}:{result.status.value}")
        )
        self.times.setdefault(run.key, []).append(time.monotonic())

    def execution_finished(self, execution: Execution) -> None:
        self.events.append(("execution_finished", execution.id, execution.status))

    def names(self, kind: str) -> Sequence[tuple[str, str, str]]:
        return [e for e in self.events if e[0] == kind]
