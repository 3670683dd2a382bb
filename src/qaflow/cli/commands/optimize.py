"""`qa optimize`: tune parameters over batches or whole DAGs (Optuna), or show a study."""

from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qaflow.cli.commands.batch_qaboard import BATCHES_FILE, with_batches_files
from qaflow.cli.main import Globals
from qaflow.errors import QaflowWarning, UsageError

if TYPE_CHECKING:
    from qaflow.optimize.study import Prepared
    from qaflow.optimize.summary import StudySummary


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("forwarded", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--batch",
    "-b",
    "batches",
    multiple=True,
    metavar="NAME",
    help="A batch (or DAG) each trial runs (repeatable).",
)
@click.option(
    "--config-file",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The search: space, objective, evaluations (QA-Board's format or qaflow's).",
)
@click.option(
    "--study",
    metavar="NAME",
    help="The study's name (default: the label). The same name resumes it.",
)
@click.option(
    "--parallel",
    "--parallel-param-sampling",
    "parallel",
    type=click.IntRange(min=1),
    metavar="N",
    help="Trials at once (default: parallel_sampling of the file, else 1).",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "grid"]),
    help="Optuna's sampler (default: the file's, else tpe).",
)
@click.option("--seed", type=int, help="The sampler's seed, for a reproducible study.")
@click.option(
    "--evaluations",
    type=click.IntRange(min=1),
    metavar="N",
    help="The budget of trials (default: the file's).",
)
@click.option(
    "--tune-batch",
    "tune_batches",
    multiple=True,
    metavar="NAME",
    help="The batches that get the tuned parameters (default: the -b batches; the batches they need keep their cache).",
)
@click.option(
    "--runner",
    type=click.Choice(["local", "dask"]),
    help="Where trials' runs execute (default: runners.default).",
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    help="With --runner dask: the scheduler every trial uses.",
)
@click.option(
    "--local-concurrency",
    type=int,
    metavar="N",
    help="Workers of the local pool all trials share (-1: one per CPU).",
)
@click.option(
    "--no-wait", is_flag=True, help="Start in the background, print the execution id, return."
)
@click.option(
    "--show",
    "show",
    metavar="STUDY",
    help="Print the study's best parameters and its trials, run nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="With --show: as JSON.")
@BATCHES_FILE
@click.option("--checkpoint", hidden=True)  # QA-Board's; the study storage replaces it
@click.pass_obj
def optimize(
    g: Globals,
    forwarded: tuple[str, ...],
    batches: tuple[str, ...],
    config_file: Path | None,
    study: str | None,
    parallel: int | None,
    sampler: str | None,
    seed: int | None,
    evaluations: int | None,
    tune_batches: tuple[str, ...],
    runner: str | None,
    dask_scheduler: str | None,
    local_concurrency: int | None,
    no_wait: bool,
    show: str | None,
    as_json: bool,
    batches_files: tuple[Path, ...],
    checkpoint: str | None,
) -> int:
    """Tune parameters: an Optuna study whose trials run the batches -b NAME… with the
    suggested parameters (as --tuning), each trial an execution labelled LABEL|iterN.

    As in QA-Board, the arguments it does not know (and those after `--`) are forwarded to
    every trial's runs, as `qa batch` forwards them."""
    project = g.project()
    if show is not None:
        return _show(project, show, as_json)
    if not batches or config_file is None:
        raise UsageError(
            "qa optimize needs the batches to run (-b NAME) and the search (--config-file "
            "FILE); or --show STUDY to print a study."
        )
    if checkpoint:
        warnings.warn(
            "--checkpoint is QA-Board's: qaflow keeps studies in the run store (the same "
            "--study or label resumes one); it is ignored.",
            QaflowWarning,
            stacklevel=1,
        )
    if forwarded:
        g.forwarded_args = (*forwarded, *g.forwarded_args)
    project = with_batches_files(project, batches_files)
    from qaflow.optimize.request import Request

    request = Request(
        root=project.root,
        batch_patterns=project.batch_patterns if batches_files else (),
        batches=batches,
        config_file=config_file.resolve(),
        options=g.options(
            runner=runner, dask_scheduler=dask_scheduler, concurrency=local_concurrency
        ),
        study=study,
        tune_batches=tune_batches,
        overrides={
            "parallel": parallel,
            "sampler": sampler,
            "seed": seed,
            "evaluations": evaluations,
        },
    )
    prepared = request.prepare()  # every mistake exits 2 here, before anything is written
    if g.dryrun:
        click.echo(_describe(prepared))
        return 0
    if no_wait:
        from qaflow.optimize.background import start

        started = start(request, prepared)
        click.echo(
            f"study {started.study!r} started in the background as execution "
            f"{started.execution_id} (pid {started.pid})\n"
            f"  qa status {started.execution_id}    whether it runs\n"
            f"  qa wait {started.execution_id}      block until it ends\n"
            f"  qa cancel {started.execution_id}    stop it (the study can be resumed)\n"
            f"  qa optimize --show {started.study}   its trials so far\n"
            f"  log: {started.log}"
        )
        return 0
    from qaflow.optimize.study import optimize as run_study

    outcome = run_study(prepared, progress=click.echo)
    if outcome.best_value is None:
        click.echo(f"study {outcome.study!r}: no trial completed ({outcome.failed} failed).")
    else:
        params = json.dumps(outcome.best_params, sort_keys=True)
        click.echo(
            f"study {outcome.study!r}: best objective {outcome.best_value:.6g} with {params}"
        )
    if outcome.cancelled:
        click.echo("cancelled: the same command resumes the study.", err=True)
    return outcome.exit_code


def _describe(prepared: Prepared) -> str:
    """What `qa --dryrun optimize` prints: the study it would run; nothing is run nor written."""
    search = prepared.search
    space = ", ".join(
        f"{d.name} in {list(d.choices)}"
        if d.kind == "categorical"
        else f"{d.name} in [{d.low}, {d.high}]{' (log)' if d.log else ''}"
        for d in search.dimensions
    )
    terms = ", ".join(t.metric for t in search.terms)
    forwarded = prepared.options.forwarded_args
    return (
        f"study {prepared.study!r}: up to {search.evaluations} trial(s) of "
        f"{', '.join(prepared.targets)} (tuned: {', '.join(prepared.tuned)}), "
        f"{search.parallel} at once, sampler {search.sampler} (seed {search.seed}); "
        f"objective over {terms}; space: {space}; each trial labelled "
        f"'{prepared.options.label}|iterN'"
        + (f"; forwarded to the runs: {shlex.join(forwarded)}" if forwarded else "")
        + ". Nothing was run (--dryrun)."
    )


def _show(project: Any, name: str, as_json: bool) -> int:
    from qaflow.optimize.liveness import fail_dead_trials
    from qaflow.optimize.storage import load_study, opened_storage
    from qaflow.optimize.summary import study_names, summarize

    if name not in study_names(project):
        known = ", ".join(study_names(project)) or "none yet"
        raise UsageError(f"There is no study {name!r} in this project (studies: {known}).")
    with opened_storage(project) as storage:
        study = load_study(storage, name)
        # as `qa status` records a dead driver's execution: its dead trials are failed
        fail_dead_trials(storage, study, project, progress=lambda text: None)
        summary = summarize(study)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps(asdict(summary), indent=1, default=str))
    else:
        click.echo(_text(summary))
    return 0


def _text(summary: StudySummary) -> str:
    from rich.console import Console
    from rich.table import Table

    how = [summary.direction]
    sampler, seed = summary.attrs.get("sampler"), summary.attrs.get("seed")
    if sampler:
        how.append(f"sampler {sampler}" if seed is None else f"sampler {sampler} seed {seed}")
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts().items())
    lines = [f"study {summary.name!r} ({', '.join(how)}): {counts}"]
    if summary.best is not None:
        best = summary.best
        lines.append(
            f"best objective {best.value:.6g} at {best.label} (execution {best.execution})"
        )
        lines.append(f"best parameters {json.dumps(best.params, sort_keys=True)}")
    table = Table(box=None, pad_edge=False)
    for column in ("iter", "state", "objective", *summary.param_names, "execution", "error"):
        table.add_column(column)
    for t in summary.trials:
        value = "" if t.value is None else f"{t.value:.6g}"
        params = [_cell(t.params.get(p)) for p in summary.param_names]
        table.add_row(
            str(t.iteration), t.state, value, *params, t.execution or "", (t.error or "")[:80]
        )
    console = Console(width=200, force_terminal=False)
    with console.capture() as captured:
        console.print(table)
    return "\n".join(lines) + "\n" + captured.get().rstrip()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
