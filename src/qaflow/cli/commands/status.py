"""`qa status [ID]`: recent executions, or one execution's progress per batch."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qaflow.cli.main import Globals
from qaflow.errors import StoreError, UsageError
from qaflow.execution.background import exit_code, is_alive, log_path, observe
from qaflow.results.present import (
    ORDER,
    ago,
    counts_text,
    duration,
    git_text,
    human_duration,
    summary_line,
    words,
)
from qaflow.store.records import ExecutionRecord, RunRecord
from qaflow.worker.model import RunStatus

if TYPE_CHECKING:
    from qaflow.config.project import Project
    from qaflow.execution.background import Handle
    from qaflow.plan.model import Plan
    from qaflow.store import Store

_STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "cancelled": "yellow"}
MAX_FAILURES = 10


@click.command()
@click.argument("ref", metavar="[ID]", required=False)
@click.option("--limit", default=20, show_default=True, metavar="N", help="Executions listed.")
@click.option("--label", help="Only the executions with this label.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def status(g: Globals, ref: str | None, limit: int, label: str | None, as_json: bool) -> int:
    """The recent executions (newest first), or with ID (or a prefix of it), that execution's
    progress per batch and its failed runs. An execution whose driver died shows as interrupted."""
    project = g.project()
    with open_store(project) as store:
        if ref is None:
            records = [
                _observed(store, r) for r in store.lookups.executions(limit=limit, label=label)
            ]
            _print_list(records, as_json)
        else:
            record = observe(store, find(store, ref).id)
            log = log_path(project.storage, record.id)
            _print_one(record, store.lookups.runs(record.id), log, as_json)
    return 0


@contextlib.contextmanager
def open_store(project: Project) -> Iterator[Store]:
    """The project's run store, to read (or cancel): a project that has none gets an empty
    one in memory, so that asking creates nothing."""
    from qaflow.store import Store

    with Store.open(project.database_url, storage=project.storage, readonly=True) as store:
        yield store


def find(store: Store, ref: str) -> ExecutionRecord:
    """The execution with this id or id prefix; a UsageError listing recent ids otherwise."""
    try:
        return store.lookups.execution(ref)
    except StoreError as exc:
        recent = store.lookups.executions(limit=5)  # the store answers: the id is what is wrong
        shown = ", ".join(f"{r.id} ({r.label}, {r.status})" for r in recent) or "none yet"
        raise UsageError(f"{exc} Recent executions: {shown}.") from None


def _observed(store: Store, record: ExecutionRecord) -> ExecutionRecord:
    return (
        observe(store, record.id) if record.status == "running" and not is_alive(record) else record
    )


def started_message(handle: Handle, the_plan: Plan, root: Path) -> str:
    """What `qa batch --no-wait` prints: the id, and how to follow the execution."""
    per_batch = Counter(run.batch for run in the_plan.runs)
    batches = ", ".join(
        name if len(per_batch) == 1 else f"{name} ({per_batch[name]})" for name in per_batch
    )
    cwd = Path.cwd()
    qa = "qa" if cwd.is_relative_to(root) else f"qa -C {root}"
    hints = [
        (f"{qa} status {handle.id}", "progress per batch"),
        (f"{qa} wait {handle.id}", "block until it ends (exit code as qa batch)"),
        (f"{qa} cancel {handle.id}", "stop it"),
    ]
    width = max(len(command) for command, _ in hints) + 4
    return "\n".join(
        [
            f"execution {handle.id} started in the background (pid {handle.pid}): "
            f"{len(the_plan.runs)} run(s) in {batches or 'no batch'}",
            *(f"  {command:<{width}}{what}" for command, what in hints),
            f"  log: {_shown(handle.log)}",
        ]
    )


# ---------------------------------------------------------------- printing
def _record_json(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "label": record.label,
        "project": record.project,
        "status": record.status,
        "exit_code": exit_code(record),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration": round(duration(record), 3),
        "host": record.host,
        "pid": record.pid,
        "git": {
            "branch": record.git.branch,
            "commit": record.git.commit,
            "dirty": record.git.dirty,
        },
        "argv": record.argv,
        "counts": words(record.counts),
    }


def _print_list(records: Sequence[ExecutionRecord], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_record_json(r) for r in records], indent=2))
        return
    if not records:
        click.echo(
            "no executions yet: start one with `qa batch NAME` (`--no-wait` to return at once)"
        )
        return
    with_git = any(git_text(r) for r in records)  # no column of blanks outside git
    headers = ["id", "label", "status", "started", "duration", "runs"]
    headers += ["git"] if with_git else []
    rows = [[*_list_row(r), *([git_text(r)] if with_git else [])] for r in records]
    _table(headers, rows, status_column=2)


def _list_row(r: ExecutionRecord) -> list[str]:
    took = human_duration(duration(r))
    return [r.id, r.label, r.status, ago(r.started_at), took, counts_text(r.counts)]


def _print_one(record: ExecutionRecord, runs: list[RunRecord], log: Path, as_json: bool) -> None:
    per_batch: dict[str, Counter[str]] = {}
    for run in runs:
        per_batch.setdefault(run.batch, Counter())[run.status.value] += 1
    batches = {name: words(dict(counts)) for name, counts in per_batch.items()}
    failures = [
        _failure(run) for run in runs if run.status in (RunStatus.FAILED, RunStatus.ERRORED)
    ]
    if as_json:
        data = {**_record_json(record), "batches": batches, "failures": failures[:MAX_FAILURES]}
        data["log"] = str(log) if log.is_file() else None
        click.echo(json.dumps(data, indent=2))
        return
    git = f", {git_text(record)}" if git_text(record) else ""
    click.echo(
        f"{summary_line(record)} (label {record.label}, started {ago(record.started_at)}{git})"
    )
    columns = [
        w
        for w in ORDER
        if w in ("done", "cached", "running", "failed", "skipped", "waiting")
        or any(b[w] for b in batches.values())
    ]
    rows = [
        [name, *(str(counts[w]) for w in columns), str(counts["total"])]
        for name, counts in batches.items()
    ]
    if rows:
        _table(["batch", *columns, "total"], rows)
    for failure in failures[:MAX_FAILURES]:
        click.echo(
            f"✗ {failure['batch']} {failure['input'] or '-'}: {failure['error']}"
            f"  → {_shown(Path(failure['log']))}"
        )
    if len(failures) > MAX_FAILURES:
        click.echo(f"… and {len(failures) - MAX_FAILURES} more failed run(s)")
    if log.is_file():  # a background execution: what its driver printed
        click.echo(f"log: {_shown(log)}")


def _failure(run: RunRecord) -> dict[str, Any]:
    error = (run.error or "").strip()
    return {
        "batch": run.batch,
        "input": run.rel_input_path,
        "status": run.status.value,
        "error": error.splitlines()[0] if error else run.status.value,
        "log": str(Path(run.output_dir) / "log.txt"),
    }


def _shown(path: Path) -> str:
    """The path relative to the cwd when it is below it, else absolute."""
    cwd = Path.cwd()
    return str(path.relative_to(cwd) if path.is_relative_to(cwd) else path)


def _table(headers: list[str], rows: list[list[str]], status_column: int | None = None) -> None:
    """A rich table on a terminal; aligned plain columns otherwise (pipes, files, CI)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
        for row in [headers, *rows]:
            click.echo(
                "  ".join(
                    str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
        return
    table = Table(*headers, box=None, header_style="bold")
    for row in rows:
        cells = [Text(cell) for cell in row]
        if status_column is not None:
            cells[status_column].stylize(_STYLES.get(row[status_column], "magenta"))
        table.add_row(*cells)
    console.print(table)
