"""The console reporter: what a person (or a CI log) sees of an execution as it goes.

- On a terminal: one live progress bar per batch (done/total, counts, elapsed, ETA).
- Off a terminal (CI logs, pipes): a line per run that failed, and a progress line every
  `interval` seconds: a log of 10,000 runs is tens of lines, not 10,000.
- `quiet`: only the failed runs' lines. `single` (`qa run`): the run's own output is the
  progress; one line at the end.
- At the end: the summary (`qaflow.execution.summary`).
- An execution settled before anything ran (a no-op re-run: every run up to date, no
  summary metric asked for) is shown whole as plain lines (`show_settled`): the table would
  only repeat them, and rich (~80 ms of imports) is then never imported.
Writing never raises (`qaflow.execution.display`): a closed pipe or terminal only stops it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.execution.display import GuardedStream
from qaflow.execution.summary import SummaryMetric, compact, outputs_line, seconds, summary
from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from qaflow.execution.model import Execution

PROGRESS_INTERVAL = 10.0  # seconds between progress lines off a terminal
_FAILURES = (RunStatus.FAILED, RunStatus.ERRORED)


@dataclass
class _BatchCounts:
    total: int
    running: int = 0
    states: Counter[RunStatus] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return sum(self.states.values())

    @property
    def completed(self) -> int:
        """What the bar shows done: not the cancelled runs (they never ran)."""
        return self.finished - self.states[RunStatus.CANCELLED]

    def text(self) -> str:
        parts = [f"{self.states[RunStatus.SUCCEEDED]} done"]
        if self.states[RunStatus.CACHED]:
            parts.append(f"{self.states[RunStatus.CACHED]} cached")
        parts.append(f"{self.running} running")
        failed = sum(self.states[s] for s in _FAILURES)
        parts.append(f"[red]{failed} failed[/red]" if failed else "0 failed")
        skipped = self.states[RunStatus.SKIPPED] + self.states[RunStatus.INTERRUPTED]
        if skipped:
            parts.append(f"[yellow]{skipped} skipped[/yellow]")
        if self.states[RunStatus.CANCELLED]:
            parts.append(f"[yellow]{self.states[RunStatus.CANCELLED]} cancelled[/yellow]")
        return ", ".join(parts)


class ConsoleReporter:
    """Live progress on a terminal, progress lines and failures elsewhere, then a summary."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        live: bool | None = None,
        quiet: bool = False,
        single: bool = False,
        interval: float = PROGRESS_INTERVAL,
        summary_metrics: Sequence[SummaryMetric] = (),
        before_output: Callable[[], None] | None = None,
    ) -> None:
        """`before_output`: called once, before the first thing shown (the CLI's spinner
        clears its line)."""
        self.stream = GuardedStream()
        self._console = console  # made at first use (`console`)
        self._live = live
        self.quiet = quiet
        self.single = single  # `qa run`: the run's own output is the progress; end with one line
        self.interval = interval
        self.summary_metrics = tuple(summary_metrics)
        self.counts: dict[str, _BatchCounts] = {}
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}
        self._running: set[str] = set()
        self._done = self._executed = self._total = 0
        self._cached: Counter[str] = Counter()  # off a terminal: told as a line per batch
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._root = Path.cwd()
        self._before_output = before_output

    @property
    def console(self) -> Console:
        """rich's console, on the guarded stream: made when first needed."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)  # type: ignore[arg-type]
        return self._console

    @property
    def live(self) -> bool:
        """Live progress bars: on a terminal (as rich sees it), unless `single`."""
        if self._live is None:
            self._live = self.console.is_terminal
        return self._live and not self.single

    @property
    def verbose(self) -> bool:
        return not self.quiet and not self.single

    def close_display(self) -> None:
        """The terminal went away (SIGHUP): show nothing more, the execution goes on."""
        self.stream.close_display()
        self.close()

    def warm_up(self) -> None:
        """Import what showing a running execution takes (rich's console, and its table for
        the end) now: the driver calls this before it waits for the worker processes to
        start, so the imports take time that would otherwise be spent waiting."""
        self.console  # noqa: B018 - made now, not at the first line shown
        if self.verbose:
            import rich.table  # noqa: F401

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        self._cleared()
        if self.verbose:  # when the driver did not: imported while the first runs start
            self.warm_up()
        self._started = time.monotonic()
        self._total = len(plan.runs)
        for run in plan.runs:
            self.counts.setdefault(run.batch, _BatchCounts(0)).total += 1
        if self.verbose:
            batches = ", ".join(
                f"{name} ({self.counts[name].total})"
                for name in plan.batches
                if name in self.counts
            )
            self._print(
                f"execution [bold]{execution_id}[/bold]: {self._total} run(s) in "
                f"{batches or 'no batch'}"
            )
        if self.live and self.verbose:
            self._start_bars()
        elif self.verbose and self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="qaflow-progress", daemon=True)
            self._ticker.start()

    def _start_bars(self) -> None:
        from rich.progress import (  # on a terminal only (~20 ms)
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
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
        with self._lock:
            if run.key not in self._running:  # a retry is still the same running run
                self._running.add(run.key)
                self.counts[run.batch].running += 1
        self._refresh(run.batch)

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        with self._lock:
            counts = self.counts[run.batch]
            if run.key in self._running:
                self._running.discard(run.key)
                counts.running -= 1
            counts.states[result.status] += 1
            self._done += 1
            if result.status not in (RunStatus.CACHED, RunStatus.CANCELLED):
                self._executed += 1
            elif result.status is RunStatus.CACHED and self._progress is None:
                self._cached[run.batch] += 1
        self._refresh(run.batch)
        if result.status in _FAILURES and not self.single:
            self._flush_cached()
            self._line(run, result)

    def execution_finished(self, execution: Execution) -> None:
        self._cleared()
        self._flush_cached()
        self.close()
        if self.single and not self.quiet:
            self._print(compact(execution, self._root))
        elif not self.quiet:
            for renderable in summary(execution, self._root, self.summary_metrics):
                self._print(renderable)

    def show_settled(self, execution: Execution) -> bool:
        """Show an execution settled before anything ran, whole, as plain lines: when every
        run is up to date (CACHED) and no summary metric is asked for (else False: nothing
        shown, the events show it). A line per batch says what the table would repeat."""
        results = execution.results
        if (
            self.single
            or self.summary_metrics
            or any(r.status is not RunStatus.CACHED for r in results.values())
        ):
            return False
        self._cleared()
        if self.quiet:
            return True
        per_batch = Counter(run.batch for run in execution.plan.runs)
        batches = ", ".join(
            f"{name} ({per_batch[name]})" for name in execution.plan.batches if name in per_batch
        )
        lines = [
            f"execution {execution.id}: {len(execution.plan.runs)} run(s) in "
            f"{batches or 'no batch'}"
        ]
        symbol = f"{RunStatus.CACHED.symbol} {RunStatus.CACHED.value:<9}"
        lines += [
            f"{symbol} {name}: {count} run(s) up to date" for name, count in per_batch.items()
        ]
        lines.append(
            f"execution {execution.id} ({execution.label}): {execution.status}, nothing to run: "
            f"{len(results)} run(s) up to date"
        )
        lines.append(outputs_line(execution, self._root))
        self.stream.write("".join(f"{line}\n" for line in lines))
        self.stream.flush()
        return True

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
            self._ticker = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ------------------------------------------------------------ output
    def _cleared(self) -> None:
        before, self._before_output = self._before_output, None
        if before is not None:
            before()

    def _refresh(self, batch: str) -> None:
        if self._progress is not None:
            counts = self.counts[batch]
            self._progress.update(
                self._bars[batch], completed=counts.completed, counts=counts.text()
            )

    def _flush_cached(self) -> None:
        """Off a terminal, up-to-date runs are told as one line per batch."""
        with self._lock:
            cached, self._cached = self._cached, Counter()
        if self.verbose:
            from rich.text import Text

            for batch, count in cached.items():
                line = Text(f"{RunStatus.CACHED.symbol} {RunStatus.CACHED.value:<9}")
                line.stylize(RunStatus.CACHED.style)
                line.append(f" {batch}: {count} run(s) up to date")
                self._print(line)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._print(self.progress_line())

    def progress_line(self) -> str:
        """One line of progress: runs finished, per batch, elapsed and estimated time left."""
        with self._lock:
            elapsed = time.monotonic() - self._started
            left = self._total - self._done
            per_batch = "; ".join(f"{name}: {c.text()}" for name, c in self.counts.items())
            eta = (
                f", ETA {seconds(elapsed / self._executed * left)}"
                if self._executed and left
                else ""
            )
            return f"progress: {self._done}/{self._total} ({per_batch}) in {seconds(elapsed)}{eta}"

    def _line(self, run: RunSpec, result: RunResult) -> None:
        from rich.text import Text

        status = result.status
        line = Text(f"{status.symbol} {status.value:<9}", style=status.style)
        line.append(f" {run.batch}  {run.rel_input_path or '-'}  ({result.duration:.2f}s)")
        if result.error_line:
            line.append(f"  {result.error_line}", style=status.style)
        self._print(line)

    def _print(self, renderable: Any) -> None:
        from rich.text import Text

        if self._progress is not None:
            self._progress.console.print(renderable, soft_wrap=isinstance(renderable, Text | str))
        else:
            self.console.print(renderable, soft_wrap=isinstance(renderable, Text | str))
