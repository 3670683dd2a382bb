"""`qa batch`: plan the runs of batches, list them, or run them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import click

from qaflow.api import ActionOnExisting, execute
from qaflow.cli import Globals
from qaflow.plan import Plan, RunSpec, plan


@click.command()
@click.argument("names", nargs=-1)
@click.option(
    "--batch",
    "-b",
    "batch_opts",
    multiple=True,
    metavar="NAME",
    help="A batch to run (repeatable; same as a positional NAME).",
)
@click.option(
    "--list", "list_runs", is_flag=True, help="Print the planned runs as a JSON array and exit."
)
@click.option(
    "--list-inputs", is_flag=True, help="Print the input path of each planned run and exit."
)
@click.option(
    "--list-output-dirs",
    is_flag=True,
    help="Print the output directory of each planned run and exit.",
)
@click.option(
    "--runner",
    type=click.Choice(["local", "dask"]),
    help="Where runs execute (default: runners.default, else local).",
)
@click.option(
    "--local-concurrency",
    type=int,
    metavar="N",
    help="Runs at once on this machine (-1: one per CPU).",
)
@click.option(
    "--action-on-existing",
    type=click.Choice(["run", "postprocess", "sync", "skip"]),
    default="run",
    show_default=True,
    help="For runs whose output directory holds results: run again, only postprocess, record them as they are, or skip them.",
)
@click.pass_obj
def batch(
    g: Globals,
    names: tuple[str, ...],
    batch_opts: tuple[str, ...],
    list_runs: bool,
    list_inputs: bool,
    list_output_dirs: bool,
    runner: str | None,
    local_concurrency: int | None,
    action_on_existing: ActionOnExisting,
) -> int:
    """Plan and run the batches NAME… (batch names, aliases, wildcards or folders of the database)."""
    project = g.project()
    the_plan = plan(project, [*names, *batch_opts], g.plan_options())
    if list_runs:
        click.echo(the_plan.to_json())
    elif list_inputs:
        _echo_lines(str(run.input_path) for run in the_plan.runs if run.input_path is not None)
    elif list_output_dirs:
        _echo_lines(str(run.output_dir) for run in the_plan.runs)
    elif g.dryrun:
        click.echo(describe(the_plan, project.root))
    else:
        options = g.options(
            runner=runner, concurrency=local_concurrency, action_on_existing=action_on_existing
        )
        return execute(project, the_plan, options).exit_code
    return 0


def _echo_lines(lines: Iterable[str]) -> None:
    click.echo("\n".join(lines))


def describe(the_plan: Plan, root: Path) -> str:
    """The readable plan of `qa --dryrun batch`: one line per run, then a count per batch."""
    lines = [_describe_run(run, root) for run in the_plan.runs]
    counts: dict[str, int] = {}
    for run in the_plan.runs:
        counts[run.batch] = counts.get(run.batch, 0) + 1
    summary = ", ".join(f"{name}: {counts.get(name, 0)}" for name in the_plan.batches)
    lines.append(
        f"{len(the_plan.runs)} run(s) planned ({summary}); nothing was executed (--dryrun)."
    )
    return "\n".join(lines)


def _describe_run(run: RunSpec, root: Path) -> str:
    configs = ", ".join(
        c if isinstance(c, str) else json.dumps(c, default=str) for c in run.configurations
    )
    out = (
        run.output_dir.relative_to(root) if run.output_dir.is_relative_to(root) else run.output_dir
    )
    return f"{run.batch}  {run.rel_input_path or '-'}  [{configs}]  {run.platform}  -> {out}"
