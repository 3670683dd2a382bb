"""A `Comparison` as text: table cells, CSV, JSON and Markdown (for a merge-request comment).

Table and Markdown show values as metrics.yaml formats them (scale, suffix, precision) and,
unless asked for everything, only the matched runs whose status or metrics changed. CSV and
JSON hold every run and the raw values, to be read by programs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qaflow.results.compare import BatchComparison, CompareRun, Comparison, MetricDelta, Row
from qaflow.results.filecompare import FilesComparison
from qaflow.results.metrics import MetricSpec

LIMIT = 100  # matched runs shown per batch in the table and Markdown (comments have size limits)
# (qaflow.cli.commands.compare repeats it as its --limit default, so `qa --help` need not load this)
CSV_COLUMNS = (
    "batch",
    "input",
    "configuration",
    "match",
    "metric",
    "ref",
    "new",
    "delta",
    "delta_pct",
    "direction",
    "regression",
    "ref_status",
    "new_status",
)


@dataclass(frozen=True)
class Cell:
    """One line of a batch's table: texts, and the verdict that colours it."""

    input: str
    configuration: str
    metric: str
    ref: str
    new: str
    delta: str
    delta_pct: str
    verdict: str  # "regression", "failed", "better", "worse", "same" or ""


def aligned(rows: list[list[str]]) -> str:
    """Plain columns, two spaces apart: for pipes, files and CI logs."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def verdict(cell: MetricDelta) -> str:
    if cell.regression:
        return "regression"
    return cell.direction or ("" if cell.changed else "same")


def pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}%"


def shown_rows(batch: BatchComparison, show_all: bool, limit: int = LIMIT) -> tuple[list[Row], int]:
    """Regressions first, then changed runs (or every run), in plan order; at most `limit`
    of them (0: no limit), and how many more there are."""
    rows = [row for row in batch.rows if show_all or row.changed]
    rows.sort(key=lambda row: not row.regression)
    return (rows[:limit], len(rows) - limit) if 0 < limit < len(rows) else (rows, 0)


def cells(comparison: Comparison, row: Row) -> Iterator[Cell]:
    """The lines of one matched run: its status when it changed, then each metric."""
    name = row.input or "-"
    if row.status_changed:
        state = "failed" if row.failed else ""
        yield Cell(name, row.configuration, "status", row.ref.status, row.new.status, "", "", state)
    for cell in row.metrics:
        if cell.ref is None and cell.new is None:
            continue
        spec = comparison.spec(cell.metric)
        yield Cell(
            name,
            row.configuration,
            spec.short_label,
            spec.format(cell.ref),
            spec.format(cell.new),
            spec.format_delta(cell.delta),
            pct(cell.delta_pct),
            verdict(cell),
        )


def summary_line(spec: MetricSpec, summary: Any, tolerance: str | None) -> str:
    """`loss: 5 runs, mean Δ +0.02 (+10.0%), median Δ +0.02; 0 better, 4 worse, 4 regressions`."""
    if not summary.compared:
        return f"{spec.short_label}: no run with a number on both sides"
    mean = f"{spec.format_delta(summary.mean_delta)} ({pct(summary.mean_delta_pct)})"
    counts = f"{summary.better} better, {summary.worse} worse"
    judged = spec.described
    regressions = f", {summary.regressions} regression(s)" if judged else ""
    allowed = f" (tolerance {tolerance})" if judged and tolerance else ""
    return (
        f"{spec.short_label}: {summary.compared} run(s), mean Δ {mean}, median Δ "
        f"{spec.format_delta(summary.median_delta)}; {counts}{regressions}{allowed}"
    )


def run_name(run: CompareRun) -> str:
    configuration = f" [{run.configuration}]" if run.configuration else ""
    return f"{run.input or '-'}{configuration}"


def failures(comparison: Comparison) -> list[str]:
    """One line per failing row and target miss: what the gate prints."""
    lines = []
    for row in comparison.regressions:
        what = [f"failed ({row.new.status})"] if row.failed else []
        for cell in row.metrics:
            if cell.regression:
                spec = comparison.spec(cell.metric)
                what.append(
                    f"{spec.short_label} {spec.format(cell.ref)} → {spec.format(cell.new)} "
                    f"({spec.format_delta(cell.delta)}, {pct(cell.delta_pct)}; allowed "
                    f"{spec.format_delta(cell.allowed) or '0'})"
                )
        lines.append(f"✗ {row.batch} {run_name(row.new)}: {'; '.join(what)}")
    for miss in comparison.target_misses:
        spec = comparison.spec(miss.metric)
        side = "above" if spec.smaller_is_better is not False else "below"
        lines.append(
            f"✗ {miss.batch} {miss.input or '-'}: {spec.short_label} {spec.format(miss.value)} "
            f"is {side} its target {spec.format(miss.target)}"
        )
    return lines


# ---------------------------------------------------------------- machine formats
def to_json(comparison: Comparison, files: FilesComparison | None = None) -> str:
    data = comparison.to_dict()
    if files is not None:
        data["files"] = files.to_dict()
    return json.dumps(data, default=str)  # no indent: the C encoder, 5x faster on 10,000 runs


def to_csv(comparison: Comparison) -> str:
    """One line per matched run and metric, and one per unmatched run (metric empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for batch in comparison.batches:
        for row in batch.rows:
            for cell in row.metrics:
                writer.writerow(
                    [
                        row.batch,
                        row.input or "",
                        row.configuration,
                        "matched",
                        cell.metric,
                        _raw(cell.ref),
                        _raw(cell.new),
                        _raw(cell.delta),
                        _raw(cell.delta_pct),
                        cell.direction or "",
                        "true" if cell.regression else "false",
                        row.ref.status,
                        row.new.status,
                    ]
                )
        for side, runs in (("only_ref", batch.only_ref), ("only_new", batch.only_new)):
            for run in runs:
                statuses = [run.status, ""] if side == "only_ref" else ["", run.status]
                line = [run.batch, run.input or "", run.configuration, side, *[""] * 7]
                writer.writerow([*line, *statuses])
    return out.getvalue()


def _raw(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- Markdown
def to_markdown(
    comparison: Comparison,
    files: FilesComparison | None = None,
    *,
    show_all: bool = False,
    limit: int = LIMIT,
) -> str:
    """A merge-request comment: the verdict, a summary per metric, each batch folded."""
    regressions = len(comparison.regressions)
    misses = len(comparison.target_misses)
    verdict_line = (
        f"**✗ {regressions} regression(s), {misses} target miss(es)**"
        if comparison.failed
        else "**✓ no regression**"
    )
    lines = [
        f"### qa compare: `{comparison.ref}` → `{comparison.new}`",
        "",
        verdict_line,
        "",
        "| metric | runs | ref mean | new mean | mean Δ | median Δ | better | worse | regressions |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for spec, summary in zip(comparison.metrics, comparison.summaries, strict=True):
        if not summary.compared:
            continue
        lines.append(
            _md_row(
                [
                    spec.label,
                    str(summary.compared),
                    spec.format(summary.ref_mean),
                    spec.format(summary.new_mean),
                    f"{spec.format_delta(summary.mean_delta)} {pct(summary.mean_delta_pct)}",
                    spec.format_delta(summary.median_delta),
                    str(summary.better),
                    str(summary.worse),
                    str(summary.regressions) if spec.described else "",
                ]
            )
        )
    failing = failures(comparison)
    if failing:
        lines += ["", "<details><summary>Failing rows</summary>", ""]
        lines += [f"- {_md_escape(line)}" for line in failing[: limit or None]]
        if 0 < limit < len(failing):
            lines.append(f"- … and {len(failing) - limit} more")
        lines += ["", "</details>"]
    for batch in comparison.batches:
        lines += _md_batch(comparison, batch, show_all, limit)
    if files is not None:
        lines += _md_files(files)
    return "\n".join(lines) + "\n"


def _md_batch(
    comparison: Comparison, batch: BatchComparison, show_all: bool, limit: int
) -> list[str]:
    rows, hidden = shown_rows(batch, show_all, limit)
    unmatched = f", {len(batch.only_ref)} only in ref, {len(batch.only_new)} only in new"
    title = f"{batch.batch}: {len(batch.rows)} matched run(s), {sum(r.changed for r in batch.rows)} changed{unmatched}"
    lines = ["", f"<details><summary>{_md_escape(title)}</summary>", ""]
    if rows:
        lines += ["| input | metric | ref | new | Δ | Δ% | |", "|---|---|--:|--:|--:|--:|---|"]
        for row in rows:
            name = run_name(row.new)
            for cell in cells(comparison, row):
                mark = {"regression": "❌", "failed": "❌", "better": "🟢", "worse": "🔴"}
                lines.append(
                    _md_row(
                        [
                            name,
                            cell.metric,
                            cell.ref,
                            cell.new,
                            cell.delta,
                            cell.delta_pct,
                            mark.get(cell.verdict, ""),
                        ]
                    )
                )
        if hidden:
            lines.append(f"\n… and {hidden} more run(s)")
    for side, runs in (("only in ref", batch.only_ref), ("only in new", batch.only_new)):
        if runs:
            lines.append(f"\n{side}: " + ", ".join(f"`{run_name(run)}`" for run in runs[:50]))
    return [*lines, "", "</details>"]


def _md_files(files: FilesComparison) -> list[str]:
    counts = ", ".join(f"{n} {status}" for status, n in files.counts.items())
    lines = ["", f"**Output files:** {counts}", ""]
    changed = [(run, f) for run in files.runs for f in run.files if f.status != "identical"]
    if changed:
        lines += ["| run | file | status |", "|---|---|---|"]
        for run, diff in changed[:LIMIT]:
            name = f"{run.batch} {run.input or '-'}" + (
                f" [{run.configuration}]" if run.configuration else ""
            )
            lines.append(_md_row([name, diff.path, diff.status]))
    return lines


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_row(values: list[str]) -> str:
    return "| " + " | ".join(_md_escape(v) for v in values) + " |"


BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """One block per value, from ▁ (the smallest) to █ (the largest); a space for None."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return " " * len(values)
    low, span = min(numbers), max(numbers) - min(numbers)
    top = len(BLOCKS) - 1
    return "".join(
        " " if v is None else BLOCKS[round((v - low) / span * top) if span else top // 2]
        for v in values
    )
