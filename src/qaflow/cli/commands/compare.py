"""`qa compare REF NEW`: per-input metric tables between two executions; a CI regression gate."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qaflow.cli.commands.status import open_store
from qaflow.errors import StoreError, UsageError

if TYPE_CHECKING:  # the comparison modules load when the command runs, not with `qa --help`
    from qaflow.cli.main import Globals
    from qaflow.results.compare import BatchComparison, CompareRun, Comparison
    from qaflow.results.compare_format import Cell
    from qaflow.results.filecompare import FilesComparison, RunFiles
    from qaflow.store import ExecutionRecord, Store

FORMATS = ("table", "json", "csv", "markdown")
LIMIT = 100  # matched runs shown per batch in the table and Markdown
LISTED = 20  # unmatched runs and non-identical files listed per batch in the table
_COLOURS = {"regression": "bold red", "failed": "bold red", "worse": "red", "better": "green"}


@click.command()
@click.argument("ref")
@click.argument("new")
@click.option("--batch", "batch_name", metavar="NAME", help="Only this batch.")
@click.option(
    "--metric",
    "-m",
    "metric_names",
    multiple=True,
    metavar="NAME",
    help="Only these metrics (repeatable). Default: main_metrics of metrics.yaml, else all.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="markdown fits a merge-request comment; json and csv hold every run and raw values.",
)
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when a metric gets worse by more than its tolerance, a run fails that "
    "succeeded in REF, or a target_passfail metric misses its target; print those rows.",
)
@click.option(
    "--tolerance",
    "-t",
    multiple=True,
    metavar="METRIC=AMOUNT",
    help="How much worse METRIC may get: absolute (loss=0.01) or relative (psnr=5%). "
    "Overrides `tolerance:` in metrics.yaml; default 0.",
)
@click.option(
    "--files",
    is_flag=True,
    help="Also compare the output files of matched runs by hash; exit 1 when a file "
    "differs or is missing in NEW.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="GLOB",
    help="With --files: skip files whose path or name matches (repeatable, e.g. '*.log').",
)
@click.option(
    "--all", "show_all", is_flag=True, help="table/markdown: also runs whose metrics are unchanged."
)
@click.option(
    "--limit",
    default=LIMIT,
    show_default=True,
    metavar="N",
    help="table/markdown: at most N runs per batch, regressions first (0: all).",
)
@click.pass_obj
def compare(
    g: Globals,
    ref: str,
    new: str,
    batch_name: str | None,
    metric_names: tuple[str, ...],
    fmt: str,
    fail_on_regression: bool,
    tolerance: tuple[str, ...],
    files: bool,
    ignore: tuple[str, ...],
    show_all: bool,
    limit: int,
) -> int:
    """Compare the results of NEW with those of REF, run by run and metric by metric.

    REF and NEW are each an execution id (or a prefix of it), a label, a git branch or a
    git commit: the latest execution of the label, branch or commit. Runs are matched by
    batch and input, and by configuration where a side holds several runs of one input.

    Exit codes: 0; 1 with --fail-on-regression when something regressed, or with --files
    when an output file differs or is missing; 2 for a usage error (unknown REF…)."""
    from qaflow.results import compare_format as out
    from qaflow.results.compare import ExecutionSide
    from qaflow.results.compare import compare as compare_executions
    from qaflow.results.metrics import Metrics, parse_tolerances

    if limit < 0:
        raise UsageError(f"--limit {limit}: give 0 (no limit) or more.")
    if ignore and not files:
        raise UsageError("--ignore only applies to the file comparison: add --files.")
    tolerances = parse_tolerances(tolerance)
    project = g.project()
    metrics = Metrics.load(project.metrics_path)
    with open_store(project) as store:
        sides = [resolve(store, name) for name in (ref, new)]
        runs = [store.history.compare_runs(side.id, batch=batch_name) for side in sides]
        if batch_name is not None and not any(runs):
            _unknown_batch(store, batch_name, sides)
    comparison = compare_executions(
        runs[0],
        runs[1],
        metrics=metrics,
        ref=ExecutionSide.from_record(sides[0]),
        new=ExecutionSide.from_record(sides[1]),
        select=metric_names,
        tolerances=tolerances,
    )
    file_diff = None
    if files:
        from qaflow.results.filecompare import compare_files

        file_diff = compare_files(comparison, ignore=ignore, root=project.root)
    if fmt == "json":
        click.echo(out.to_json(comparison, file_diff))
    elif fmt == "csv":
        click.echo(out.to_csv(comparison), nl=False)
    elif fmt == "markdown":
        click.echo(out.to_markdown(comparison, file_diff, show_all=show_all, limit=limit), nl=False)
    else:
        _print_table(comparison, file_diff, show_all=show_all, limit=limit, gate=fail_on_regression)
    failed = (fail_on_regression and comparison.failed) or bool(file_diff and file_diff.failed)
    if failed and fmt != "table":  # the rows that fail the gate, where a CI log shows them
        for line in out.failures(comparison) if fail_on_regression else []:
            click.echo(line, err=True)
    return 1 if failed else 0


def resolve(store: Store, ref: str) -> ExecutionRecord:
    """An execution by id, label, branch or commit; a UsageError with did-you-mean otherwise."""
    try:
        return store.lookups.resolve_execution(ref)
    except StoreError as exc:
        names = store.board.names()
        known = names["labels"] + names["branches"] + names["ids"]
        close = difflib.get_close_matches(ref, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        labels = ", ".join(names["labels"][:8]) or "none yet"
        ids = ", ".join(names["ids"][:5]) or "none yet"
        raise UsageError(
            f"{exc}{hint} Give an execution id, a label, a git branch or a commit. "
            f"Recent labels: {labels}; recent executions: {ids}."
        ) from None


def _unknown_batch(store: Store, name: str, sides: Sequence[ExecutionRecord]) -> None:
    batches = sorted({run.batch for side in sides for run in store.history.compare_runs(side.id)})
    close = difflib.get_close_matches(name, batches, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UsageError(
        f"--batch {name!r}: neither execution has runs of that batch.{hint} "
        f"Their batches: {', '.join(batches) or 'none'}."
    )


# ---------------------------------------------------------------- the table
def _print_table(
    comparison: Comparison,
    files: FilesComparison | None,
    *,
    show_all: bool,
    limit: int,
    gate: bool,
) -> None:
    from qaflow.results import compare_format as out

    console = Console(highlight=False, soft_wrap=not _terminal())
    click.echo(f"REF {comparison.ref}  →  NEW {comparison.new}")
    for side in (comparison.ref, comparison.new):
        if side.status == "running":
            click.secho(f"note: execution {side.id} is still running", fg="yellow")
    for batch in comparison.batches:
        _print_batch(console, comparison, batch, show_all, limit)
    if files is not None:
        _print_files(files)
    failing = out.failures(comparison) if gate else []
    if failing:
        click.echo("\nregressions (--fail-on-regression):")
        for line in failing:
            click.echo(line)
    regressions = len(comparison.regressions)
    misses = len(comparison.target_misses)
    verdict = (
        f"✗ {regressions} regressed run(s), {misses} target miss(es)"
        if comparison.failed
        else "✓ no regression"
    )
    click.secho(f"\n{verdict}", fg="red" if comparison.failed else "green")


def _print_batch(
    console: Console, comparison: Comparison, batch: BatchComparison, show_all: bool, limit: int
) -> None:
    from qaflow.results import compare_format as out

    rows, hidden = out.shown_rows(batch, show_all, limit)
    changed = sum(row.changed for row in batch.rows)
    click.echo(
        f"\nbatch {batch.batch}: {len(batch.rows)} matched run(s), {changed} changed, "
        f"{len(batch.only_ref)} only in ref, {len(batch.only_new)} only in new"
    )
    lines = [cell for row in rows for cell in out.cells(comparison, row)]
    if lines:
        _table(console, lines, with_configuration=batch.by_configuration)
    if hidden:
        click.echo(f"(… and {hidden} more run(s): --limit 0 shows them all)")
    if not show_all and changed < len(batch.rows):
        click.echo(f"({len(batch.rows) - changed} unchanged run(s) not shown: --all shows them)")
    for spec, summary in zip(comparison.metrics, batch.summaries, strict=True):
        if summary.compared:
            click.echo("  " + out.summary_line(spec, summary, comparison.tolerances.get(spec.key)))
    _print_unmatched("only in ref", batch.only_ref)
    _print_unmatched("only in new", batch.only_new)


def _print_unmatched(title: str, runs: Sequence[CompareRun]) -> None:
    from qaflow.results import compare_format as out

    if runs:
        more = f", … {len(runs) - LISTED} more" if len(runs) > LISTED else ""
        click.echo(f"  {title}: " + ", ".join(out.run_name(r) for r in runs[:LISTED]) + more)


def _table(console: Console, lines: list[Cell], *, with_configuration: bool) -> None:
    from qaflow.results import compare_format as out

    headers = ["input", *(["configuration"] if with_configuration else []), "metric"]
    headers += ["ref", "new", "Δ", "Δ%", ""]
    rows = []
    previous = None
    for cell in lines:
        run = (cell.input, cell.configuration)
        first = [cell.input, *([cell.configuration] if with_configuration else [])]
        shown = first if run != previous else [""] * len(first)
        previous = run
        rows.append([*shown, cell.metric, cell.ref, cell.new, cell.delta, cell.delta_pct])
    verdicts = [cell.verdict for cell in lines]
    if not _terminal():  # plain aligned columns: pipes, files, CI logs
        marks = {"regression": "✗ regression", "failed": "✗ failed"}
        plain = [[*row, marks.get(v, v)] for row, v in zip(rows, verdicts, strict=True)]
        click.echo(out.aligned([headers, *plain]))
        return
    table = Table(*headers, box=None, header_style="bold")
    for row, v in zip(rows, verdicts, strict=True):
        style = _COLOURS.get(v, "")
        tail = [Text(c, style=style) for c in row[-3:]]
        table.add_row(*row[:-3], *tail, Text(v if v in ("regression", "failed") else "", style))
    console.print(table)


def _print_files(files: FilesComparison) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in files.counts.items())
    click.echo(f"\noutput files of {len(files.runs)} matched run(s): {counts}")
    shown = 0
    for run in files.runs:
        for diff in run.files:
            if diff.status != "identical" and shown < LISTED * 5:
                shown += 1
                mark = "✗" if diff.status in ("different", "missing") else "+"
                click.echo(f"  {mark} {diff.status:<9} {run.batch} {_name(run)}: {diff.path}")


def _terminal() -> bool:
    return Console().is_terminal


def _name(run: RunFiles) -> str:
    return f"{run.input or '-'}" + (f" [{run.configuration}]" if run.configuration else "")
