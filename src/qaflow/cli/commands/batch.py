"""`qa batch`: plan the runs of batches, list them, or run them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qaflow.cli.main import Globals

if TYPE_CHECKING:
    from qaflow.execution.model import ActionOnExisting
from qaflow.plan.model import Plan, RunSpec
from qaflow.plan.planner import plan


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
    "--dask-scheduler",
    metavar="ADDRESS",
    help="With --runner dask: the scheduler to use, e.g. tcp://host:8786 (default: runners.dask).",
)
@click.option(
    "--local-concurrency",
    type=int,
    metavar="N",
    help="Runs at once on this machine (-1: one per CPU).",
)
@click.option(
    "--force", is_flag=True, help="Execute every planned run, even those with an up-to-date result."
)
@click.option(
    "--force-batch",
    "force_batches",
    multiple=True,
    metavar="NAME",
    help="Execute the runs of batch NAME (and what needs them) even if up to date (repeatable).",
)
@click.option(
    "--action-on-existing",
    type=click.Choice(["run", "postprocess", "sync", "skip"]),
    default="run",
    show_default=True,
    help="For runs whose output directory holds results: run (reuse up-to-date results, run the rest), only postprocess, record them as they are, or skip them.",
)
# -- background executions (qaflow.execution.background): begin
@click.option(
    "--no-wait", is_flag=True, help="Start in the background, print the execution id, return."
)
# -- background executions: end
@click.pass_obj
def batch(
    g: Globals,
    names: tuple[str, ...],
    batch_opts: tuple[str, ...],
    list_runs: bool,
    list_inputs: bool,
    list_output_dirs: bool,
    runner: str | None,
    dask_scheduler: str | None,
    local_concurrency: int | None,
    force: bool,
    force_batches: tuple[str, ...],
    action_on_existing: ActionOnExisting,
    no_wait: bool,
) -> int:
    """Plan and run the batches NAME… (batch names, aliases, wildcards or folders of the database)."""
    project = g.project()
    on_pool = not (list_runs or list_inputs or list_output_dirs or g.dryrun or no_wait)
    if on_pool:
        from qaflow.execution.executors.forkserver import may_execute, warm_up
        from qaflow.execution.preflight import runner_of

        options = g.options(runner=runner, dask_scheduler=dask_scheduler)
        on_pool = runner_of(project, options) == "local"
        if on_pool and not project.storage.exists():  # nothing ran here: runs will execute
            warm_up()  # the pool's processes start while we plan
    # input hashes are kept once planning succeeds (listing too: the next plan reads no input)
    the_plan = plan(project, [*names, *batch_opts], g.plan_options(), persist=True)
    if on_pool and may_execute(
        (run.output_dir for run in reversed(the_plan.runs)), force=force or bool(force_batches)
    ):
        warm_up()  # the pool's processes start while the store opens and records
    if list_runs:
        click.echo(the_plan.to_json(statuses(the_plan, force, force_batches)))
    elif list_inputs:
        _echo_lines(str(run.input_path) for run in the_plan.runs if run.input_path is not None)
    elif list_output_dirs:
        _echo_lines(str(run.output_dir) for run in the_plan.runs)
    elif g.dryrun:
        click.echo(describe(the_plan, project.root, statuses(the_plan, force, force_batches)))
    else:
        options = g.options(
            runner=runner,
            dask_scheduler=dask_scheduler,
            concurrency=local_concurrency,
            action_on_existing=action_on_existing,
            force=force,
            force_batches=force_batches,
        )
        if no_wait:  # background executions
            from qaflow.cli.commands.status import started_message
            from qaflow.execution.background import start

            handle = start(project, the_plan, [*names, *batch_opts], options)
            click.echo(started_message(handle, the_plan, project.root))
            return 0
        from qaflow.execution.driver import execute

        return execute(project, the_plan, options).exit_code
    return 0


def statuses(the_plan: Plan, force: bool, force_batches: tuple[str, ...]) -> dict[str, str]:
    """'cached' for each run with an up-to-date result, 'run' for the runs that would execute."""
    from qaflow.plan.reuse import reusable

    cached = reusable(the_plan, force=force, force_batches=force_batches)
    return {run.key: "cached" if run.key in cached else "run" for run in the_plan.runs}


def _echo_lines(lines: Iterable[str]) -> None:
    click.echo("\n".join(lines))


def describe(the_plan: Plan, root: Path, status: dict[str, str]) -> str:
    """The readable plan of `qa --dryrun batch`: one line per run, then counts per batch."""
    lines = [_describe_run(run, root, status[run.key]) for run in the_plan.runs]
    counts: dict[str, Counter[str]] = {}
    for run in the_plan.runs:
        counts.setdefault(run.batch, Counter())[status[run.key]] += 1
    summary = ", ".join(
        f"{name}: {_counts(counts.get(name, Counter()))}" for name in the_plan.batches
    )
    cached = sum(1 for s in status.values() if s == "cached")
    lines.append(
        f"{len(the_plan.runs)} run(s) planned, {len(the_plan.runs) - cached} to run, {cached} cached ({summary}); nothing was executed (--dryrun)."
    )
    return "\n".join(lines)


def _counts(counts: Counter[str]) -> str:
    return f"{counts['run']} to run" + (f" + {counts['cached']} cached" if counts["cached"] else "")


def _describe_run(run: RunSpec, root: Path, status: str) -> str:
    configs = ", ".join(
        c if isinstance(c, str) else json.dumps(c, default=str) for c in run.configurations
    )
    out = (
        run.output_dir.relative_to(root) if run.output_dir.is_relative_to(root) else run.output_dir
    )
    return f"{status:<6}  {run.batch}  {run.rel_input_path or '-'}  [{configs}]  {run.platform}  -> {out}"
