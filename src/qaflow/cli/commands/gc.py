"""`qa gc`: remove the run directories that no kept execution references."""

from __future__ import annotations

import time

import click

from qaflow.cli.main import Globals
from qaflow.results.gc import GcPlan, GcResult, apply_gc, human_size, parse_duration, plan_gc

RECORDS_KEPT = (
    "The run store's execution records are kept (history stays comparable): only files are removed."
)


@click.command()
@click.option(
    "--keep-labels",
    "keep_labels",
    multiple=True,
    metavar="LABELS",
    help="Keep the runs of executions with these labels, whatever their age (repeatable, or comma-separated).",
)
@click.option(
    "--older-than",
    metavar="AGE",
    help="Keep only executions started less than AGE ago (45s, 90m, 12h, 30d, 2w), plus running ones and --keep-labels. Default: keep every execution, remove only run directories none references.",
)
@click.option("--dryrun", is_flag=True, help="List what would be removed, remove nothing.")
@click.pass_obj
def gc(g: Globals, keep_labels: tuple[str, ...], older_than: str | None, dryrun: bool) -> int:
    """Remove run directories under STORAGE/runs that no kept execution references."""
    from qaflow.store import Store

    age = None if older_than is None else parse_duration(older_than)
    project = g.project()
    with Store.open(project.database_url, storage=project.storage) as store:
        the_plan = plan_gc(project.storage, store, keep_labels, age, time.time())
    if dryrun or g.dryrun:
        _print_plan(the_plan)
        return 0
    result = apply_gc(the_plan)
    _print_result(the_plan, result)
    return 1 if result.skipped else 0


def _kept(the_plan: GcPlan) -> str:
    return f"{the_plan.kept} kept, referenced by {the_plan.kept_executions} executions"


def _print_plan(the_plan: GcPlan) -> None:
    for removal in the_plan.removals:
        shown = removal.path.relative_to(the_plan.runs_root).as_posix()
        suffix = "  (pipeline)" if removal.pipeline else ""
        click.echo(f"{human_size(removal.size):>10}  {shown}{suffix}")
    click.echo(
        f"would remove {len(the_plan.removals)} run directories, "
        f"freeing {human_size(the_plan.size)} ({_kept(the_plan)})"
    )
    click.echo(RECORDS_KEPT)


def _print_result(the_plan: GcPlan, result: GcResult) -> None:
    for removal, reason in result.skipped:
        click.secho(f"warning: kept {removal.path}: {reason}", fg="yellow", err=True)
    click.echo(
        f"removed {len(result.removed)} run directories, freed {human_size(result.freed)} "
        f"({_kept(the_plan)})"
    )
    click.echo(RECORDS_KEPT)
