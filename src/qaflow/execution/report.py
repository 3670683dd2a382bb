"""Reporting an execution as it goes: live progress on a terminal, plain lines elsewhere, a summary.

Reporters are event sinks (`execution_started`, `run_started`, `run_finished`,
`execution_finished`); the console and the store recorder are two of them, fanned out by
`Reporters`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from qaflow.execution.model import Execution


class Reporter(Protocol):
    def execution_started(self, execution_id: str, plan: Plan) -> None: ...

    def run_started(self, run: RunSpec, attempt: int) -> None: ...

    def run_finished(self, run: RunSpec, result: RunResult) -> None: ...

    def execution_finished(self, execution: Execution) -> None: ...


class Reporters:
    """Fans every event out to several reporters, in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

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


@dataclass
class _BatchCounts:
    total: int
    running: int = 0
    states: Counter[RunStatus] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return sum(self.states.values())

    def text(self) -> str:
        parts = [f"{self.states[RunStatus.SUCCEEDED]} done"]
        if self.states[RunStatus.CACHED]:
            parts.append(f"{self.states[RunStatus.CACHED]} cached")
        parts.append(f"{self.running} running")
        failed = self.states[RunStatus.FAILED] + self.states[RunStatus.ERRORED]
        parts.append(f"[red]{failed} failed[/red]" if failed else "0 failed")
        other = (
            self.finished
            - self.states[RunStatus.SUCCEEDED]
            - self.states[RunStatus.CACHED]
            - failed
        )
        if other:
            parts.append(f"[yellow]{other} skipped/cancelled[/yellow]")
        return ", ".join(parts)


class ConsoleReporter:
    """Live progress bars per batch on a terminal; one plain line per finished run otherwise."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        live: bool | None = None,
        quiet: bool = False,
        single: bool = False,
    ) -> None:
        self.console = console or Console(highlight=False)
        self.live = (self.console.is_terminal if live is None else live) and not single
        self.quiet = quiet
        self.single = single  # `qa run`: the run's own output is the progress; end with one line
        self.counts: dict[str, _BatchCounts] = {}
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}
        self._running: set[str] = set()
        self._cached: Counter[str] = Counter()
        self._done = 0
        self._total = 0
        self._root = Path.cwd()

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        self._total = len(plan.runs)
        for run in plan.runs:
            self.counts.setdefault(run.batch, _BatchCounts(0)).total += 1
        if not self.quiet and not self.single:
            batches = ", ".join(
                f"{name} ({self.counts[name].total})"
                for name in plan.batches
                if name in self.counts
            )
            self.console.print(
                f"execution [bold]{execution_id}[/bold]: {self._total} run(s) in {batches or 'no batch'}"
            )
        if self.live and not self.quiet:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            for name, counts in self.counts.items():
                self._bars[name] = self._progress.add_task(
                    name, total=counts.total, counts=counts.text()
                )
            self._progress.start()

    def run_started(self, run: RunSpec, attempt: int) -> None:
        self._flush_cached()
        if run.key not in self._running:  # a retry is still the same running run
            self._running.add(run.key)
            self.counts[run.batch].running += 1
        self._refresh(run.batch)

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        counts = self.counts[run.batch]
        if run.key in self._running:
            self._running.discard(run.key)
            counts.running -= 1
        counts.states[result.status] += 1
        self._done += 1
        if self._progress is not None:
            self._refresh(run.batch)
        elif result.status is RunStatus.CACHED:
            self._cached[run.batch] += 1  # one line per batch, not thousands of lines
        elif not self.quiet and not self.single:
            self._flush_cached()
            self._line(run, result)

    def _flush_cached(self) -> None:
        """In plain mode, up-to-date runs are told as one line per batch."""
        if self._cached and not self.quiet and not self.single and self._progress is None:
            for batch, count in self._cached.items():
                line = Text(
                    f"{RunStatus.CACHED.symbol} {RunStatus.CACHED.value:<9}",
                    style=RunStatus.CACHED.style,
                )
                line.append(f" {batch}: {count} run(s) up to date")
                self.console.print(line, soft_wrap=True)
        self._cached.clear()

    def _refresh(self, batch: str) -> None:
        if self._progress is not None:
            counts = self.counts[batch]
            self._progress.update(
                self._bars[batch], completed=counts.finished, counts=counts.text()
            )

    def _line(self, run: RunSpec, result: RunResult) -> None:
        width = len(str(self._total))
        status = result.status
        line = Text(f"[{self._done:>{width}}/{self._total}] ")
        line.append(f"{status.symbol} {status.value:<9}", style=status.style)
        line.append(f" {run.batch}  {run.rel_input_path or '-'}  ({result.duration:.2f}s)")
        if not status.ok and result.error_line:
            line.append(f"  {result.error_line}", style=status.style)
        self.console.print(line, soft_wrap=True)

    def execution_finished(self, execution: Execution) -> None:
        self._flush_cached()
        if self._progress is not None:
            self._progress.stop()
        if self.single and not self.quiet:
            self.console.print(compact(execution, self._root), soft_wrap=True)
        elif not self.quiet:
            for renderable in summary(execution, self._root):
                self.console.print(renderable, soft_wrap=isinstance(renderable, Text))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary(execution: Execution, root: Path) -> list[Table | Text]:
    """The end-of-execution table: counts per batch, failed runs and where their logs are."""
    table = Table(
        title=f"execution {execution.id} ({execution.label}): {execution.status}",
        title_justify="left",
    )
    for column in ("batch", "runs", "succeeded", "cached", "failed", "skipped", "time"):
        table.add_column(column, justify="left" if column == "batch" else "right")
    by_batch: dict[str, list[RunResult]] = {}
    failures: list[tuple[RunSpec, RunResult]] = []
    for spec in execution.plan.runs:  # not execution.runs(): no object per run (10,000s)
        result = execution.results.get(spec.key)
        if result is not None:
            by_batch.setdefault(spec.batch, []).append(result)
            if not result.status.ok:
                failures.append((spec, result))
    for name, results in by_batch.items():
        states = Counter(r.status for r in results)
        failed = states[RunStatus.FAILED] + states[RunStatus.ERRORED]
        skipped = (
            states[RunStatus.SKIPPED] + states[RunStatus.CANCELLED] + states[RunStatus.INTERRUPTED]
        )
        table.add_row(
            name,
            str(len(results)),
            str(states[RunStatus.SUCCEEDED]),
            str(states[RunStatus.CACHED]),
            Text(str(failed), style="red" if failed else ""),
            Text(str(skipped), style="yellow" if skipped else ""),
            _seconds(sum(r.duration for r in results)),
        )
    lines: list[Table | Text] = [table]
    reused = sum(
        1 for rs in by_batch.values() for r in rs if r.status is RunStatus.CACHED and r.pid
    )
    if reused:  # decided when they started: their upstream had re-run, with the same outputs
        lines.append(Text(f"{reused} run(s) reused after upstream re-ran", style="blue"))
    lines.extend(_failure_line(spec, result, root) for spec, result in failures[:20])
    if len(failures) > 20:
        lines.append(Text(f"… and {len(failures) - 20} more failed or skipped runs"))
    outputs = _short(execution.storage / "runs", root)
    lines.append(
        Text(f"outputs: {outputs}/  logs: <output dir>/log.txt, or `qa logs RUN`", style="dim")
    )
    return lines


def _failure_line(run: RunSpec, result: RunResult, root: Path) -> Text:
    line = Text(
        f"{result.status.symbol} {run.batch} {run.rel_input_path or '-'}: ",
        style=result.status.style,
    )
    line.append(result.error_line or result.status.value)
    where = Path(result.output_dir) if result.output_dir else run.output_dir  # its attempt
    line.append(f"  → {_short(where / 'log.txt', root)}", style="dim")
    return line


def compact(execution: Execution, root: Path) -> Text:
    """The ending of `qa run`: one line with the status, the metrics and the output directory."""
    [run] = execution.runs()
    status = run.result.status
    line = Text(f"{status.symbol} {status.value} in {run.result.duration:.2f}s", style=status.style)
    if not status.ok and run.result.error_line:
        line.append(f": {run.result.error_line}")
    metrics = {
        k: v for k, v in run.result.metrics.items() if k not in ("is_failed", "compute_time")
    }
    if metrics:
        line.append(f"\nmetrics: {json.dumps(metrics, default=str)[:500]}", style="")
    line.append(f"\noutputs: {_short(run.output_dir, root)}", style="dim")
    return line


def _short(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


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


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"
