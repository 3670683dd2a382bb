"""`qa batch`: plan the runs of batches, list them, or run them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click

from qaflow.cli.completion import batch_names
from qaflow.cli.main import Globals
from qaflow.config.project import Project

if TYPE_CHECKING:
    from qaflow.execution.options import ActionOnExisting, Options
    from qaflow.execution.report import ConsoleReporter
from qaflow.cli.commands.batch_qaboard import (
    BATCHES_FILE,
    linked,
    on_pending,
    qaboard_batch_environment,
    split_forwarded,
    team_cache,
    tuning_search_points,
    with_batches_files,
)
from qaflow.plan.memo import ByObject
from qaflow.plan.model import Plan, RunSpec
from qaflow.plan.planner import plan


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("names", nargs=-1, type=click.UNPROCESSED, shell_complete=batch_names)
@click.option(
    "--batch",
    "-b",
    "batch_opts",
    multiple=True,
    metavar="NAME",
    shell_complete=batch_names,
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
    type=click.Choice(["local", "dask", "lsf"]),
    help="Where runs execute (default: runners.default, else local). lsf: dask on an LSF cluster.",
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
    type=click.Choice(["run", "postprocess", "sync", "skip", "assert-exists"]),
    default=None,
    help="For runs whose output directory holds results: run (reuse up-to-date results, run the rest), only postprocess, record them as they are, skip them, or fail unless every run has a result (assert-exists). Default: outputs.action_on_existing, else run.",
)
# -- QA-Board parity (issue 15): begin
@BATCHES_FILE
@click.option(
    "--action-on-pending",
    type=click.Choice(["wait", "sync", "skip", "run"]),
    default=None,
    help="For runs another execution is running: wait for it (then reuse its result, or run if it failed), sync (take its result, even a failure), skip them, or run them at the same time. Default: outputs.action_on_pending, else wait.",
)
@click.option(
    "--tuning-search",
    metavar="JSON",
    help='A parameter search: every run once per point, with its parameters as extra parameters: \'{"parameter_search": {"k": [1, 2]}, "search_type": "grid"}\'.',
)
@click.option(
    "--tuning-search-file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="The --tuning-search, from a .json or .yaml file.",
)
@click.option(
    "--prefix-outputs-path",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Also make each run's results reachable at DIR/[TUNING/]INPUT (a link; DIR relative to the storage).",
)
@click.option(
    "--save-manifests-in-database",
    is_flag=True,
    help="Copy each successful run's manifest.inputs.json and manifest.outputs.json into its input folder (for qa check-bit-accuracy-manifest).",
)
@click.option(
    "--local-timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Fail a run that takes longer (default: QA_BATCH_TIMEOUT, else runners.local.timeout; batches' own `timeout:` win; 0: no limit).",
)
@click.option(
    "--dask-concurrency",
    type=int,
    metavar="N",
    help="With the Dask runner: at most N runs of this execution at once on the cluster (default: runners.dask.concurrency; 0: no limit).",
)
# -- QA-Board parity: end
# -- background executions (qaflow.execution.background): begin
@click.option(
    "--no-wait", is_flag=True, help="Start in the background, print the execution id, return."
)
# -- background executions: end
# -- QA-Board's LSF options (qaflow.config.lsf maps them onto dask-jobqueue's LSFCluster): begin
@click.option("--lsf-queue", metavar="QUEUE", help="LSF queue of the worker jobs (bsub -q).")
@click.option(
    "--lsf-max-threads", type=int, metavar="N", help="Slots per worker job (bsub -n); 0: unset."
)
@click.option(
    "--lsf-max-memory", metavar="MB", help="Memory per worker job, in MB (bsub -M); 0: unset."
)
@click.option("--lsf-resources", metavar="SPEC", help="LSF resource requirements (bsub -R).")
@click.option("--lsf-priority", type=int, metavar="N", help="LSF priority (bsub -sp).")
@click.option("--lsf-options", metavar="FLAGS", help="Other bsub flags, as one string.")
@click.option("--lsf-concurrency", type=int, metavar="N", help="Worker jobs at once; 0: unlimited.")
# -- QA-Board's LSF options: end
# -- terminal experience (issue 16): begin
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Print nothing but the runs that fail (the exit status tells the rest).",
)
# -- terminal experience: end
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
    action_on_existing: ActionOnExisting | Literal["assert-exists"] | None,
    batches_files: tuple[Path, ...],
    action_on_pending: str | None,
    tuning_search: str | None,
    tuning_search_file: Path | None,
    prefix_outputs_path: Path | None,
    save_manifests_in_database: bool,
    local_timeout: float | None,
    dask_concurrency: int | None,
    no_wait: bool,
    quiet: bool,
    **lsf_options: str | int | None,  # --lsf-*
) -> int:
    """Plan and run the batches NAME… (batch names, aliases, wildcards or folders of the database).

    As in QA-Board, the first argument after the names that starts with `-` and everything
    after it are forwarded to the runs (`qa batch B --my-flag`), as are the arguments after `--`."""
    names, forwarded = split_forwarded(names)
    if forwarded:
        g.forwarded_args = (*forwarded, *g.forwarded_args)
    project = with_batches_files(g.project(), batches_files)
    # outputs.action_on_existing: one of the choices of the option (checked as qaboard.yaml loads)
    action = action_on_existing or project.settings.get("outputs", {}).get("action_on_existing")
    action = action or "run"
    on_pool = not (list_runs or list_inputs or list_output_dirs or g.dryrun or no_wait)
    if on_pool:
        from qaflow.execution.executors.forkserver import may_execute, warm_up
        from qaflow.execution.options import runner_of

        options = g.options(runner=runner, dask_scheduler=dask_scheduler)
        on_pool = runner_of(project, options) == "local"
        if on_pool and not project.storage.exists():  # nothing ran here: runs will execute
            warm_up()  # the pool's processes start while we plan
    listing = list_runs or list_inputs or list_output_dirs or g.dryrun
    reusing = not (force or force_batches) and action in ("run", "assert-exists")
    plan_options = team_cache(g, project, reusing)
    searched = tuning_search_points(tuning_search, tuning_search_file)
    if searched is not None:
        plan_options = replace(plan_options, searched=tuple(searched))
    options = g.options(
        runner=runner,
        dask_scheduler=dask_scheduler,
        concurrency=local_concurrency,
        # assert-exists: every run must be reused (checked below), so nothing executes
        action_on_existing=cast("ActionOnExisting", "run" if action == "assert-exists" else action),
        force=force,
        force_batches=force_batches,
        lsf=lsf_settings(lsf_options),
        local_timeout=local_timeout,
        dask_concurrency=dask_concurrency,
        action_on_pending=on_pending(project, action_on_pending),
        outputs_prefix=None if prefix_outputs_path is None else str(prefix_outputs_path),
        save_manifests_in_database=save_manifests_in_database
        or "--save-manifests-in-database" in g.forwarded_args,
    )
    options = replace(options, plan=plan_options)
    # input hashes are kept once planning succeeds and the execution's preflight passed; as
    # in QA-Board, --list, --list-* and --dryrun write nothing anywhere
    with qaboard_batch_environment(project):  # the entrypoint's planning hooks see it
        the_plan = plan(
            project,
            [*names, *batch_opts],
            plan_options,
            persist=not listing,
            check=None if listing else lambda p: _preflight(project, p, options),
        )
    if on_pool and may_execute(
        (run.output_dir for run in reversed(the_plan.runs) if run.key not in the_plan.committed),
        force=force or bool(force_batches),
    ):
        warm_up()  # the pool's processes start while the store opens and records
    if list_runs:
        # written as is, in pieces: click.echo would scan it for colour codes to strip (JSON
        # has none: it escapes control characters), a pass over megabytes for 100,000 runs
        from qaflow.plan.listing import write_json

        write_json(the_plan, sys.stdout.write, statuses(the_plan, force, force_batches, project))
        sys.stdout.write("\n")
        sys.stdout.flush()
    elif list_inputs:
        _echo_lines(str(run.input_path) for run in the_plan.runs if run.input_path is not None)
    elif list_output_dirs:
        _echo_lines(str(run.output_dir) for run in linked(the_plan, options, project))
    elif g.dryrun:
        click.echo(
            describe(the_plan, project.root, statuses(the_plan, force, force_batches, project))
        )
        _echo_job_script(project, g.options(runner=runner, dask_scheduler=dask_scheduler,
                                            lsf=lsf_settings(lsf_options)))  # fmt: skip
    else:
        if action == "assert-exists":
            missing = [k for k, s in statuses(the_plan, False, ()).items() if s != "cached"]
            if missing:
                run = next(r for r in the_plan.runs if r.key == missing[0])
                click.secho(
                    f"error: --action-on-existing assert-exists: {len(missing)} of {len(the_plan.runs)} run(s) have no up-to-date result, e.g. {run.batch} {run.rel_input_path or '-'}.",
                    fg="red",
                    err=True,
                )
                return 1
        if no_wait:  # background executions
            from qaflow.cli.commands.status import started_message
            from qaflow.execution.background import start

            handle = start(project, the_plan, [*names, *batch_opts], options)
            click.echo(started_message(handle, the_plan, project.root))
            return 0
        from qaflow.execution.driver import execute

        spinner = click.get_current_context().meta.get("qaflow.spinner")
        shown = console(project, quiet, before=spinner.stop if spinner else None)
        return execute(project, the_plan, options, reporter=shown).exit_code
    return 0


def _preflight(project: Project, the_plan: Plan, options: Options) -> None:
    """The execution's checks, before planning keeps anything (`qaflow.execution.preflight`)."""
    from qaflow.execution.preflight import preflight

    preflight(project, the_plan, options)


def lsf_settings(given: dict[str, str | int | None]) -> dict[str, str | int]:
    """The --lsf-* given, by their runners.lsf key (--lsf-max-memory -> max_memory)."""
    return {k.removeprefix("lsf_"): v for k, v in given.items() if v is not None}


def _echo_job_script(project: Project, options: Options) -> None:
    """With a batch-system cluster, the job script its worker jobs would be submitted with."""
    from qaflow.execution.options import runner_of

    if runner_of(project, options) != "dask":
        return
    from qaflow.execution.executors.cluster import cluster_options, job_script

    script = job_script(project, options)
    if script is not None:
        most = cluster_options(project, options).get("maximum_jobs")
        cap = f", at most {most} at once," if most else ""
        click.echo(
            f"\nThe Dask workers would be batch jobs{cap} submitted with this script:\n{script}"
        )


# -- terminal experience (issue 16): begin
def console(
    project: Project, quiet: bool, before: Callable[[], None] | None = None
) -> ConsoleReporter:
    """The console of `qa batch`: its summary shows the `summary_metrics` of metrics.yaml
    (a metrics file with errors shows none, with a warning: `qa compare` names them)."""
    import warnings

    from qaflow.errors import ConfigError
    from qaflow.execution.report import ConsoleReporter, SummaryMetric

    if not project.metrics_path.is_file():  # no metrics.yaml: no pydantic model to build
        return ConsoleReporter(quiet=quiet, summary_metrics=[], before_output=before)
    from qaflow.results.metrics import Metrics

    try:
        metrics = Metrics.load(project.metrics_path)
    except ConfigError as exc:
        warnings.warn(f"the summary shows no metrics: {exc}", stacklevel=1)
        metrics = Metrics()
    from qaflow.config import validated

    validated.flush()  # the execution starts: metrics.yaml's validation is kept too
    shown = [metrics.spec(key) for key in metrics.summary_metrics]
    columns = [SummaryMetric(spec.key, spec.short_label, spec.format) for spec in shown]
    return ConsoleReporter(quiet=quiet, summary_metrics=columns, before_output=before)


# -- terminal experience: end


def statuses(
    the_plan: Plan, force: bool, force_batches: tuple[str, ...], project: Project | None = None
) -> dict[str, str]:
    """'cached' for each run with an up-to-date result, 'waits' for the runs that wait on
    upstream runs and are reused if those produce the same outputs, 'run' for the others."""
    from qaflow.plan.reuse import reusable, waiting

    cached = reusable(the_plan, force=force, force_batches=force_batches)
    last = {} if project is None else last_parts(project, the_plan, cached)
    waits = waiting(the_plan, cached, force=force, force_batches=force_batches, last_parts=last)
    return {
        run.key: "cached" if run.key in cached else "waits" if run.key in waits else "run"
        for run in the_plan.runs
    }


def last_parts(
    project: Project, the_plan: Plan, cached: Mapping[str, object]
) -> dict[str, dict[str, Any]]:
    """The fingerprint parts of the last success of each run whose fingerprint waits on an
    upstream run, from the store if there is one (a plan writes nothing)."""
    keys = [r.key for r in the_plan.runs if r.key not in cached and the_plan.waits(r)]
    if not keys or (project.database_url is None and not (project.storage / "qaflow.db").exists()):
        return {}
    from qaflow.store import Store

    with Store.open(project.database_url, storage=project.storage, readonly=True) as store:
        last = store.lookups.last_successes(keys)
        recorded = store.lookups.fingerprint_parts(
            [
                r.fingerprint
                for r in last.values()
                if r.fingerprint and "fingerprint_parts" not in r.spec
            ]
        )
        found = {
            key: r.spec.get("fingerprint_parts") or recorded.get(r.fingerprint or "")
            for key, r in last.items()
        }
        return {key: parts for key, parts in found.items() if parts}


def _echo_lines(lines: Iterable[str]) -> None:
    click.echo("\n".join(lines))


def describe(the_plan: Plan, root: Path, status: dict[str, str]) -> str:
    """The readable plan of `qa --dryrun batch`: one line per run, then counts per batch."""
    base = str(root).rstrip("/") + "/"  # what the runs' folders are shown relative to
    configs = ByObject(_configs_text)  # a batch's runs share their configurations
    lines = [_describe_run(run, base, status[run.key], configs) for run in the_plan.runs]
    counts: dict[str, Counter[str]] = {}
    for run in the_plan.runs:
        counts.setdefault(run.batch, Counter())[status[run.key]] += 1
    summary = ", ".join(
        f"{name}: {_counts(counts.get(name, Counter()))}" for name in the_plan.batches
    )
    total = Counter(status.values())
    waits = f", {total['waits']} wait on upstream runs" if total["waits"] else ""
    lines.append(
        f"{len(the_plan.runs)} run(s) planned, {total['run']} to run{waits}, {total['cached']} cached ({summary}); nothing was executed (--dryrun)."
    )
    return "\n".join(lines)


def _counts(counts: Counter[str]) -> str:
    waits = f" + {counts['waits']} wait on upstream" if counts["waits"] else ""
    return f"{counts['run']} to run{waits}" + (
        f" + {counts['cached']} cached" if counts["cached"] else ""
    )


def _describe_run(run: RunSpec, base: str, status: str, configs: ByObject[str]) -> str:
    """One line of the dry run. `base`: the project's folder and a "/" (a run's folder under
    it is shown relative to it; paths are normalised, so a prefix is a parent)."""
    out = str(run.output_dir)
    if out.startswith(base):
        out = out[len(base) :] or "."
    elif out == base[:-1]:
        out = "."
    return f"{status:<6}  {run.batch}  {run.rel_input_path or '-'}  [{configs.of(run.configurations)}]  {run.platform}  -> {out}"


def _configs_text(configurations: tuple[Any, ...]) -> str:
    return ", ".join(
        c if isinstance(c, str) else json.dumps(c, default=str) for c in configurations
    )
