"""The end of an execution as the console shows it: a table per batch, the failures, a hint.

Per batch: its runs by outcome, its wall time (first start to last end of the runs that
executed, not the sum of their durations: they ran in parallel), and the mean of each
`summary_metrics` metric of `qa/metrics.yaml` over its successful runs, formatted as the
file says (the CLI passes them in as `SummaryMetric`s: results are a phase above this one).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.plan.model import RunSpec
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from qaflow.execution.model import Execution

MAX_FAILURES_SHOWN = 20
RESUME_HINT = "run the same command again to resume: the runs that finished are reused"


def _plain(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class SummaryMetric:
    """A metric shown per batch in the end summary: its key in the runs' metrics, its
    column title, and how a value is shown."""

    key: str
    label: str
    format: Callable[[float], str] = _plain


def summary(
    execution: Execution, root: Path, metrics: Sequence[SummaryMetric] = ()
) -> list[Table | Text]:
    """The end-of-execution table, the failed runs and where their logs are, what next."""
    from rich.text import Text  # imported when shown: a no-op's plain lines need no rich

    by_batch: dict[str, list[RunResult]] = {}
    failures: list[tuple[RunSpec, RunResult]] = []
    for spec in execution.plan.runs:  # not execution.runs(): no object per run (10,000s)
        result = execution.results.get(spec.key)
        if result is not None:
            by_batch.setdefault(spec.batch, []).append(result)
            if not result.status.ok and result.status is not RunStatus.CANCELLED:
                failures.append((spec, result))
    cancelled = sum(1 for r in execution.results.values() if r.status in (RunStatus.CANCELLED,))
    lines: list[Table | Text] = [_table(execution, by_batch, metrics, bool(cancelled))]
    reused = sum(
        1 for rs in by_batch.values() for r in rs if r.status is RunStatus.CACHED and r.pid
    )
    if reused:  # decided when they started: their upstream had re-run, with the same outputs
        lines.append(Text(f"{reused} run(s) reused after upstream re-ran", style="blue"))
    lines.extend(
        _failure_line(spec, result, root) for spec, result in failures[:MAX_FAILURES_SHOWN]
    )
    if len(failures) > MAX_FAILURES_SHOWN:
        lines.append(
            Text(f"… and {len(failures) - MAX_FAILURES_SHOWN} more failed or skipped runs")
        )
    if cancelled:
        lines.append(
            Text(f"cancelled: {cancelled} run(s) did not finish; {RESUME_HINT}.", style="yellow")
        )
    lines.append(Text(outputs_line(execution, root), style="dim"))
    return lines


def outputs_line(execution: Execution, root: Path) -> str:
    """The summary's last line: where the runs' outputs and logs are."""
    outputs = _short(execution.storage / "runs", root)
    return f"outputs: {outputs}/  logs: <output dir>/log.txt, or `qa logs RUN`"


def _table(
    execution: Execution,
    by_batch: dict[str, list[RunResult]],
    metrics: Sequence[SummaryMetric],
    cancelled: bool,
) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"execution {execution.id} ({execution.label}): {execution.status}",
        title_justify="left",
    )
    columns = ["batch", "runs", "succeeded", "cached", "failed", "skipped"]
    columns += ["cancelled"] if cancelled else []
    columns += ["wall time", *(metric.label for metric in metrics)]
    for column in columns:
        table.add_column(column, justify="left" if column == "batch" else "right")
    for name, results in by_batch.items():
        states = Counter(r.status for r in results)
        failed = states[RunStatus.FAILED] + states[RunStatus.ERRORED]
        skipped = states[RunStatus.SKIPPED] + states[RunStatus.INTERRUPTED]
        row: list[str | Text] = [
            name,
            str(len(results)),
            str(states[RunStatus.SUCCEEDED]),
            str(states[RunStatus.CACHED]),
            Text(str(failed), style="red" if failed else ""),
            Text(str(skipped), style="yellow" if skipped else ""),
        ]
        if cancelled:
            count = states[RunStatus.CANCELLED]
            row.append(Text(str(count), style="yellow" if count else ""))
        row.append(wall_time(results))
        row.extend(_mean(results, metric) for metric in metrics)
        table.add_row(*row)
    return table


def wall_time(results: Sequence[RunResult]) -> str:
    """From the first start to the last end of the runs that executed ('-': none did)."""
    executed = [
        r for r in results if r.status is not RunStatus.CACHED and r.started_at and r.ended_at
    ]
    if not executed:
        return "-"
    return seconds(max(r.ended_at for r in executed) - min(r.started_at for r in executed))


def _mean(results: Sequence[RunResult], metric: SummaryMetric) -> str:
    values = [
        float(value)
        for r in results
        if r.status.ok
        for value in [r.metrics.get(metric.key)]
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]
    if not values:
        return ""
    return metric.format(sum(values) / len(values))


def _failure_line(run: RunSpec, result: RunResult, root: Path) -> Text:
    from rich.text import Text

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
    from rich.text import Text

    [run] = execution.runs()
    status = run.result.status
    line = Text(f"{status.symbol} {status.value} in {run.result.duration:.2f}s", style=status.style)
    if not status.ok and run.result.error_line:
        line.append(f": {run.result.error_line}")
    shown: dict[str, Any] = {
        k: v for k, v in run.result.metrics.items() if k not in ("is_failed", "compute_time")
    }
    if shown:
        line.append(f"\nmetrics: {json.dumps(shown, default=str)[:500]}", style="")
    line.append(f"\noutputs: {_short(run.output_dir, root)}", style="dim")
    return line


def _short(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def seconds(value: float) -> str:
    """1.2s, 340ms, 2m05s, 1h02m."""
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
