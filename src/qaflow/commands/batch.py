"""`qa batch`: plan the runs of batches, list them, or run them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qaflow.cli import Globals
from qaflow.errors import UsageError
from qaflow.plan import Plan, PlanOptions, RunSpec, plan


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
@click.pass_obj
def batch(
    g: Globals,
    names: tuple[str, ...],
    batch_opts: tuple[str, ...],
    list_runs: bool,
    list_inputs: bool,
    list_output_dirs: bool,
) -> int:
    """Plan and run the batches NAME… (batch names, aliases, wildcards or folders of the database)."""
    project = g.project()
    options = PlanOptions(
        configs=g.configs,
        platform=g.platform,
        database=g.database,
        type=g.type,
        label=g.label,
        extra_parameters=g.tuning,
    )
    the_plan = plan(project, [*names, *batch_opts], options)
    if list_runs:
        click.echo(the_plan.to_json())
    elif list_inputs:
        _echo_lines(str(run.input_path) for run in the_plan.runs if run.input_path is not None)
    elif list_output_dirs:
        _echo_lines(str(run.output_dir) for run in the_plan.runs)
    elif g.dryrun:
        click.echo(describe(the_plan, project.root))
    else:
        raise UsageError(
            "Executing runs is not available yet in this version of qaflow: plan with "
            "`qa batch NAME --list` or `qa --dryrun batch NAME`."
        )
    return 0


def _echo_lines(lines: object) -> None:
    click.echo("\n".join(lines), nl=True)  # type: ignore[call-overload]


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
