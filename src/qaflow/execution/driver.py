"""The driver: `qaflow.batch(...)`, `qaflow.run(...)`, and `execute`, which runs a plan.

`execute` goes through named phases, each a function below:
- preflight: refuse what cannot run (unknown runner, missing entrypoint, bad environment)
  before anything is recorded or started (`qaflow.execution.preflight`);
- settle: decide which runs need not execute, reused results and --action-on-existing
  (`qaflow.execution.settle`);
- open the backend, where runs execute (`qaflow.execution.backends`: local pool or Dask);
- record: create the execution in the store, or adopt the one `qa batch --no-wait`
  recorded for this driver; a plan whose every run is settled (a no-op re-run) is recorded
  whole, finished, in one transaction, and nothing is scheduled;
- run: the backend's graph runner executes the jobs, the settled runs beside them;
  Ctrl-C and SIGTERM (`qa cancel`) cancel it, a closed terminal only stops the display
  (`qaflow.execution.interrupts`);
- finish: the reporters (console, store) get the execution with every result. Should
  anything fail after the execution was recorded, it is recorded interrupted rather than
  left "running".
The CLI is a thin layer over this module; `--no-wait` starts it detached
(`qaflow.execution.background`, `qaflow.execution.detached`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.config.project import Project
from qaflow.execution.interrupts import handled
from qaflow.execution.model import Cancellation, Execution, Job, Options, Run, RunResult
from qaflow.execution.preflight import Preflight, preflight
from qaflow.execution.recorder import ended_on_error
from qaflow.execution.reserve import SpaceReserve
from qaflow.execution.settle import Decisions, settle
from qaflow.interpreter import freeze_planned
from qaflow.plan.model import SINGLE_RUN_BATCH, BatchSettings, Plan, PlanOptions, RunSpec
from qaflow.plan.planner import plan, plan_single
from qaflow.plan.reuse import without_postprocess
from qaflow.worker.model import hostname
from qaflow.worker.rundir import lock_dir_of

if TYPE_CHECKING:
    from qaflow.execution.backends import Backend, GraphRunner
    from qaflow.execution.background import Handle
    from qaflow.execution.executors.local import LocalPool
    from qaflow.execution.report import Reporters
    from qaflow.store import Store
    from qaflow.store.direct import DirectStore
    from qaflow.worker.task import RunTask


def batch(
    names: str | Sequence[str],
    *,
    project: str | Path = ".",
    wait: bool = True,
    reporter: Any = None,
    progress: bool = False,
    **options: Any,
) -> Execution | Handle:
    """Plan and execute batches (and what they need); return the execution with its runs, or
    with `wait=False`, a `Handle` on the execution that goes on in the background.

    Nothing is printed unless asked: `progress=True` shows the console's progress and
    summary, `reporter=` receives the events.

    `options` are the fields of `Options` (label, runner, concurrency, action_on_existing…)
    and of `PlanOptions` (configs, platform, database, type, extra_parameters).
    """
    the_project = Project.discover(Path(project), share=bool(options.get("share")))
    opts = _options(options)
    targets = [names] if isinstance(names, str) else list(names)
    # errors raise here, in both cases, before anything is written
    the_plan = plan(
        the_project, targets, opts.plan, persist=True, check=_preflight(the_project, opts)
    )
    if not wait:
        from qaflow.execution.background import start

        return start(the_project, the_plan, targets, opts)
    return execute(the_project, the_plan, opts, reporter=_shown(reporter, progress))


def run(
    input_path: str | Path,
    *,
    project: str | Path = ".",
    command: str | None = None,
    reporter: Any = None,
    progress: bool = False,
    **options: Any,
) -> Execution:
    """One run of the entrypoint (or of `command`) on one input, like `qa run -i INPUT [CMD]`.
    Nothing is printed unless asked (`progress=True`, or a `reporter`)."""
    the_project = Project.discover(Path(project))
    # an explicit run always runs, here (its output shown as it goes), whatever runners.default
    opts = _options({"force": True, "runner": "local", **options, "command": command})
    the_plan = plan_single(
        the_project,
        str(input_path),
        opts.plan,
        command=command,
        check=_preflight(the_project, opts),
    )
    return execute(the_project, the_plan, opts, reporter=_shown(reporter, progress))


def _shown(reporter: Any, progress: bool) -> Any:
    """The reporter of an execution started from Python: silent unless asked."""
    if reporter is not None:
        return reporter
    from qaflow.execution.report import ConsoleReporter, NullReporter

    return ConsoleReporter() if progress else NullReporter()


def _preflight(project: Project, options: Options) -> Callable[[Plan], object]:
    """The planner's `check`: the preflight of an execution of the plan, before it writes."""
    return lambda the_plan: preflight(project, the_plan, options)


def _options(options: dict[str, Any]) -> Options:
    plan_fields = set(PlanOptions.__dataclass_fields__)
    plan_options = {k: options.pop(k) for k in list(options) if k in plan_fields and k != "label"}
    unknown = set(options) - set(Options.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    if "label" in options:
        plan_options["label"] = options["label"]
    if "configs" in plan_options and plan_options["configs"] is not None:
        plan_options["configs"] = tuple(plan_options["configs"])
    return Options(**options, plan=PlanOptions(**plan_options))


def execute(
    project: Project,
    the_plan: Plan,
    options: Options,
    *,
    reporter: Any = None,
    execution_id: str | None = None,
    pool: LocalPool | None = None,
    cancellation: Cancellation | None = None,
) -> Execution:
    """Run a plan: record it, run it on its backend, report it. Blocks until done.

    `execution_id`: drive an execution already recorded (by `qa batch --no-wait`) instead
    of recording a new one. SIGTERM (`qa cancel`) cancels the execution. `pool`: a local
    pool shared with other executions (the caller owns it), instead of one of its own.
    `cancellation`: cancels this execution when the caller cancels it (from any thread).
    """
    checks = preflight(project, the_plan, options)
    reporter = _publishing(reporter, options)
    drive = functools.partial(
        _drive,
        project=project,
        the_plan=the_plan,
        options=options,
        checks=checks,
        reporter=reporter,
        pool=pool,
        cancellation=cancellation,
    )
    from qaflow.store.direct import DirectStore  # SQLite's default file, without SQLAlchemy

    direct = DirectStore.open(project.database_url, project.storage, create=True)
    if direct is not None:
        with direct:
            return drive(direct, settle(the_plan, options, direct), execution_id)
    from qaflow.store import Store

    with Store.open(project.database_url, storage=project.storage) as store:
        decisions = settle(the_plan, options, store)
        return drive(store, decisions, execution_id)


def _drive(
    store: Store | DirectStore,
    decisions: Decisions,
    execution_id: str | None,
    *,
    project: Project,
    the_plan: Plan,
    options: Options,
    checks: Preflight,
    reporter: Any,
    pool: LocalPool | None,
    cancellation: Cancellation | None,
) -> Execution:
    """Record the execution (whole when every run is settled: a no-op re-run), run it on
    its backend, report it."""
    if execution_id is None and len(decisions.settled) == len(the_plan.runs):
        return _settled_execution(store, project, the_plan, options, decisions, reporter)
    from qaflow.execution.backends import (
        backend_for,  # the local pool's modules: not for `qa --help`
    )

    _warm_display(reporter)
    with backend_for(project, the_plan, options, checks, decisions, pool) as backend:
        execution_id = _record(store, project, options, execution_id)
        reserve = SpaceReserve(project.storage) if store.sqlite else None
        if reserve is not None:
            reserve.keep()
        events = _events(store, execution_id, decisions, reporter, options, reserve)
        with ended_on_error(store, execution_id, events):
            jobs = _jobs(project, the_plan, options, checks, decisions.settled, execution_id)
            settled = _settled_runs(the_plan, decisions.settled)
            started = time.time()
            events.execution_started(execution_id, the_plan)
            runner = backend.runner(events=events, execution_id=execution_id)
            with _signals(runner, events, cancellation):
                results = _run(backend, runner, jobs, settled)
                execution = Execution(
                    id=execution_id,
                    label=options.label,
                    plan=the_plan,
                    results=results,
                    storage=project.storage,
                    started_at=started,
                )
                return _finish(events, execution)


def _warm_display(reporter: Any) -> None:
    """Let the reporters that show something import what they need now (`warm_up`): the
    backend starts next, and the local pool waits for its fork server to start."""
    for each in getattr(reporter, "reporters", (reporter,)):
        warm = getattr(each, "warm_up", None)
        if callable(warm):
            warm()


def _signals(
    runner: GraphRunner, events: Reporters, cancellation: Cancellation | None
) -> contextlib.AbstractContextManager[object]:
    """SIGINT/SIGTERM cancel the execution, SIGHUP only stops its display
    (`qaflow.execution.interrupts`); unless a caller driving several executions at once
    cancels them, and handles the signals, itself."""
    if cancellation is not None:
        return cancellation.covering(runner)
    return handled(runner.cancel, lambda: _close_display(events))


def _close_display(events: Reporters) -> None:
    """The terminal went away: the reporters that show something stop showing it."""
    for reporter in events.reporters:
        close = getattr(reporter, "close_display", None)
        if callable(close):
            close()


def _record(
    store: Store | DirectStore, project: Project, options: Options, execution_id: str | None
) -> str:
    """The execution's id: a new record, or the one recorded by `qa batch --no-wait`."""
    if execution_id is not None:
        store.writes.adopt_execution(execution_id, pid=os.getpid(), host=hostname())
        return execution_id
    from qaflow.config.git import git_info

    return store.writes.create_execution(
        label=options.label,
        project=project.name,
        argv=list(options.argv or sys.argv),
        git=git_info(project.root),
        pid=os.getpid(),
        host=hostname(),
    )


def _settled_execution(
    store: Store | DirectStore,
    project: Project,
    the_plan: Plan,
    options: Options,
    decisions: Decisions,
    reporter: Any,
) -> Execution:
    """A plan whose every run was settled up front (a no-op re-run): nothing is scheduled,
    and the execution is recorded whole, finished, in one store transaction."""
    from qaflow.config.git import git_info
    from qaflow.execution.recorder import planned_specs
    from qaflow.execution.report import ConsoleReporter

    results = {spec.key: decisions.settled[spec.key] for spec in the_plan.runs}
    started = time.time()
    execution = Execution(
        id="",
        label=options.label,
        plan=the_plan,
        results=results,
        storage=project.storage,
        started_at=started,
    )
    execution_id = store.writes.create_settled_execution(
        label=options.label,
        project=project.name,
        argv=list(options.argv or sys.argv),
        git=git_info(project.root),
        pid=os.getpid(),
        host=hostname(),
        specs=planned_specs(the_plan, decisions.settled, decisions.known),
        fingerprints=[run.fingerprint for run in the_plan.runs],
        results=results,
        status=execution.status,
        started_at=started,
        ended_at=execution.ended_at,
    )
    execution = dataclasses.replace(execution, id=execution_id)
    shown = reporter if reporter is not None else ConsoleReporter(single=options.tee)
    show_settled = getattr(shown, "show_settled", None)  # the console's: plain lines
    if show_settled is None or not show_settled(execution):
        shown.execution_started(execution_id, the_plan)
        for spec in the_plan.runs:
            shown.run_finished(spec, results[spec.key])
        shown.execution_finished(execution)
    return execution


def _publishing(reporter: Any, options: Options) -> Any:
    """The reporter, followed by the links and manifest copies the options ask for
    (`qaflow.execution.publish`), made once the execution is done."""
    publishes = options.outputs_prefix is not None or options.output_path is not None
    if not (publishes or options.save_manifests_in_database):
        return reporter
    from qaflow.execution.publish import Publisher
    from qaflow.execution.report import ConsoleReporter, Reporters

    shown = reporter if reporter is not None else ConsoleReporter(single=options.tee)
    return Reporters(shown, Publisher(options))


def _events(
    store: Store | DirectStore,
    execution_id: str,
    decisions: Decisions,
    reporter: Any,
    options: Options,
    reserve: SpaceReserve | None = None,
) -> Reporters:
    """The execution's event sinks: the reporter (by default the console) and the store."""
    from qaflow.execution.recorder import StoreRecorder
    from qaflow.execution.report import ConsoleReporter, Reporter, Reporters

    recorder = StoreRecorder(
        store=store,
        execution_id=execution_id,
        settled=decisions.settled,
        known=decisions.known,
        on_full=reserve.release if reserve is not None else None,
    )
    shown: Reporter = reporter if reporter is not None else ConsoleReporter(single=options.tee)
    return Reporters(shown, recorder)


def _run(
    backend: Backend, runner: GraphRunner, jobs: Sequence[Job], settled: Sequence[Run]
) -> dict[str, RunResult]:
    """Execute the graph on the backend; the result of every run, by key."""
    freeze_planned()  # an execution may last hours: see `qaflow.interpreter`
    results = runner.run(jobs, settled)
    backend.wind_down()
    return results


def _finish(events: Reporters, execution: Execution) -> Execution:
    """The execution, reported finished: the console sums it up, the store records its end."""
    events.execution_finished(execution)
    return execution


def _jobs(
    project: Project,
    the_plan: Plan,
    options: Options,
    checks: Preflight,
    settled: dict[str, RunResult],
    execution_id: str,
) -> list[Job]:
    """The graph's jobs: one per run to execute (not settled up front), in plan order."""
    batch_env = project.batch_environment()
    return [
        _job(project, the_plan, spec, options, checks, execution_id, batch_env)
        for spec in the_plan.runs
        if spec.key not in settled
    ]


def _settled_runs(the_plan: Plan, settled: dict[str, RunResult]) -> list[Run]:
    """The runs settled up front, with their results, in plan order."""
    if not settled:
        return []
    return [Run(spec, settled[spec.key]) for spec in the_plan.runs if spec.key in settled]


def _job(
    project: Project,
    the_plan: Plan,
    spec: RunSpec,
    options: Options,
    checks: Preflight,
    execution_id: str,
    batch_env: dict[str, str],
) -> Job:
    """The graph's job for a run to execute; `batch_env` for the runs of batches (not the
    one run of `qa run`)."""
    settings = the_plan.settings.get(spec.batch)
    env = None if spec.batch == SINGLE_RUN_BATCH else batch_env
    task = _task(project, the_plan, spec, options, checks.timeout, execution_id, env)
    return Job(
        run=spec,
        task=task,
        needs=the_plan.needs(spec.key),
        retries=settings.retries if settings else 0,
        batch_limit=checks.limits.get(spec.batch),
    )


def _task(
    project: Project,
    the_plan: Plan,
    spec: RunSpec,
    options: Options,
    default_timeout: float | None,
    attempt_id: str = "",
    batch_env: dict[str, str] | None = None,
) -> RunTask:
    """`default_timeout`: QA_BATCH_TIMEOUT, else runners.local.timeout (`Preflight.timeout`);
    `batch_env`: the variables of a batch's runs, under the run's own (`Job`'s)."""
    from qaflow.execution.prepare import payload_of  # what executes: not on a no-op's path
    from qaflow.worker.task import RunTask

    settings = the_plan.settings.get(spec.batch)
    timeout = settings.timeout if settings and settings.timeout else None
    if timeout is None:  # --local-timeout, else the default; 0 at either level: no limit
        given = options.local_timeout if options.local_timeout is not None else default_timeout
        timeout = given or None
    command = spec.command if spec.command is not None else options.command
    runner = options.runner or project.runner
    env = the_plan.env.get(spec.key, {})
    return RunTask(
        key=spec.key,
        payload=payload_of(spec),
        project_root=str(project.root),
        entrypoint=None if command is not None else str(project.entrypoint),
        command=command,
        env=env if batch_env is None else {**batch_env, **env},
        lock_dir=str(lock_dir_of(spec.output_dir, project.storage / "runs")),
        attempt_id=attempt_id,
        action="postprocess" if options.action_on_existing == "postprocess" else "run",
        forwarded_args=options.forwarded_args,
        extra_parameters=spec.extra_parameters
        if spec.extra_parameters is not None
        else options.plan.tuning_of(spec.batch),  # a --tuning-search point: the run's own
        dryrun=options.dryrun,
        timeout=timeout,
        cpus=settings.cpus if settings else 1,
        tee=options.tee,
        label=options.label,
        project_name=project.name,
        subproject=project.subproject.as_posix(),
        share=options.share,
        runner=runner,
        job_options=job_options(project, spec, settings, runner, options),
        on_pending=options.action_on_pending,
        postprocess=options.plan.postprocess,
        postprocess_from=without_postprocess(spec)
        if options.action_on_existing == "postprocess"
        else None,
    )


def job_options(
    project: Project,
    spec: RunSpec,
    settings: BatchSettings | None,
    runner: str,
    options: Options,
) -> dict[str, Any]:
    """QA-Board's job options of a run for `runner` (after `type`, `timeout`, `cpus`): its
    input type's `runners.RUNNER`, then its batch's `RUNNER:` section, then the options of
    the command line for that runner (`--lsf-*`), which win."""
    by_type = project.types.get(spec.type)
    given = options.lsf if runner == "lsf" else {}
    return {
        **(by_type.runners.get(runner, {}) if by_type else {}),
        **(settings.job_options.get(runner, {}) if settings else {}),
        **given,
    }
