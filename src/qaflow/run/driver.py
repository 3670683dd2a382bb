"""The Python API: `qaflow.batch(...)` and `qaflow.run(...)`; the CLI is a thin layer over it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qaflow.config.project import Project
from qaflow.errors import UsageError
from qaflow.plan.planner import Plan, PlanOptions, RunSpec, plan, plan_single
from qaflow.run.scheduler import Job, Scheduler
from qaflow.worker.execute import lock_dir_of
from qaflow.worker.model import RunResult, RunStatus, RunTask

if TYPE_CHECKING:
    from qaflow.run.background import Handle
    from qaflow.run.executors.dask import DaskScheduler

ActionOnExisting = Literal["run", "postprocess", "sync", "skip"]


@dataclass(frozen=True)
class Run:
    """A planned run and what came of it."""

    spec: RunSpec
    result: RunResult

    @property
    def status(self) -> RunStatus:
        return self.result.status

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics

    @property
    def output_dir(self) -> Path:
        return self.spec.output_dir

    @property
    def error(self) -> str | None:
        return self.result.error


@dataclass(frozen=True)
class Execution:
    """One `qa batch`: its plan and the result of every run."""

    id: str
    label: str
    plan: Plan
    results: dict[str, RunResult]
    storage: Path
    started_at: float
    ended_at: float = field(default_factory=time.time)

    def runs(self) -> list[Run]:
        """Every run, in plan order."""
        return [
            Run(spec, self.results[spec.key]) for spec in self.plan.runs if spec.key in self.results
        ]

    @property
    def status(self) -> str:
        statuses = {result.status for result in self.results.values()}
        if RunStatus.CANCELLED in statuses:
            return "cancelled"
        return "succeeded" if all(s.ok for s in statuses) else "failed"

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1


@dataclass(frozen=True)
class Options:
    """How to execute: everything `qa batch` accepts besides the batch names."""

    label: str = "default"
    plan: PlanOptions = field(default_factory=PlanOptions)
    runner: str | None = None
    dask_scheduler: str | None = None  # the address of a Dask scheduler (runner dask)
    concurrency: int | None = None
    action_on_existing: ActionOnExisting = "run"
    forwarded_args: tuple[str, ...] = ()
    dryrun: bool = False
    command: str | None = None
    tee: bool = False
    argv: tuple[str, ...] = ()
    force: bool = False  # execute every planned run, even those with an up-to-date result
    force_batches: tuple[str, ...] = ()  # execute the runs of these batches (and what needs them)


def batch(
    names: str | Sequence[str],
    *,
    project: str | Path = ".",
    wait: bool = True,
    reporter: Any = None,
    **options: Any,
) -> Execution | Handle:
    """Plan and execute batches (and what they need); return the execution with its runs, or
    with `wait=False`, a `Handle` on the execution that goes on in the background.

    `options` are the fields of `Options` (label, runner, concurrency, action_on_existing…)
    and of `PlanOptions` (configs, platform, database, type, extra_parameters).
    """
    the_project = Project.discover(Path(project))
    opts = _options(options)
    targets = [names] if isinstance(names, str) else list(names)
    the_plan = plan(
        the_project, targets, opts.plan, persist=True
    )  # errors raise here, in both cases
    if not wait:
        from qaflow.run.background import start

        return start(the_project, the_plan, targets, opts)
    return execute(the_project, the_plan, opts, reporter=reporter)


def run(
    input_path: str | Path,
    *,
    project: str | Path = ".",
    command: str | None = None,
    reporter: Any = None,
    **options: Any,
) -> Execution:
    """One run of the entrypoint (or of `command`) on one input, like `qa run -i INPUT [CMD]`."""
    the_project = Project.discover(Path(project))
    # an explicit run always runs, here (its output shown as it goes), whatever runners.default
    opts = _options({"force": True, "runner": "local", **options, "command": command})
    the_plan = plan_single(the_project, str(input_path), opts.plan, command=command)
    return execute(the_project, the_plan, opts, reporter=reporter)


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
) -> Execution:
    """Run a plan: record it, schedule it on the executor, report it. Blocks until done.

    `execution_id`: drive an execution already recorded (by `qa batch --no-wait`) instead
    of recording a new one. SIGTERM (`qa cancel`) cancels the execution.
    """
    from qaflow.config.git import git_info
    from qaflow.run.executors.local import LocalPool
    from qaflow.run.prepare import Preparer
    from qaflow.run.recorder import StoreRecorder
    from qaflow.run.report import ConsoleReporter, Reporters
    from qaflow.store import Store

    runner = runner_of(project, options)
    needs_entrypoint = options.command is None and any(run.command is None for run in the_plan.runs)
    if needs_entrypoint and not project.entrypoint.is_file():
        raise UsageError(
            f"The entrypoint {str(project.entrypoint)!r} does not exist. Create it with a `run(context)` function "
            "(`qa init` writes a sample), set `project.entrypoint` in qaboard.yaml, or give a command: "
            "qa run -i INPUT 'echo \"{input_path} => {output_dir}\"'."
        )
    capacity, limits = concurrency(project, the_plan, options.concurrency)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store.open(project.database_url, storage=project.storage))
        decide, settled, known = _decide(the_plan, options, store)
        if runner == "dask":  # reached and checked before anything is recorded
            from qaflow.run.executors.cluster import open_cluster

            to_run = {spec.batch for spec in the_plan.runs if spec.key not in settled}
            cluster = stack.enter_context(
                open_cluster(project, the_plan, options.dask_scheduler, batches=to_run)
            )
        if execution_id is None:
            execution_id = store.writes.create_execution(
                label=options.label,
                project=project.name,
                argv=list(options.argv or sys.argv),
                git=git_info(project.root),
                pid=os.getpid(),
                host=socket.gethostname(),
            )
        else:
            store.writes.adopt_execution(execution_id, pid=os.getpid(), host=socket.gethostname())
        pool = None  # the local pool: none when every run is settled (fully cached)
        if runner == "local" and len(settled) < len(the_plan.runs):
            pool = stack.enter_context(LocalPool(capacity))  # its workers boot meanwhile
        events = Reporters(
            reporter if reporter is not None else ConsoleReporter(single=options.tee),
            StoreRecorder(store=store, execution_id=execution_id, settled=settled, known=known),
        )
        timeout = _env_timeout()
        jobs = [
            _job(project, the_plan, spec, options, limits, timeout, settled=spec.key in settled)
            for spec in the_plan.runs
        ]
        started = time.time()
        events.execution_started(execution_id, the_plan)
        scheduler: Scheduler | DaskScheduler
        if runner == "local":
            scheduler = Scheduler(
                executor=pool or _NoExecutor(),
                events=events,
                capacity=capacity,
                decide=decide,
                prepare=Preparer(the_plan, forced=_forced(the_plan, options)),
            )
        else:
            from qaflow.run.executors.dask import DaskScheduler

            scheduler = DaskScheduler(
                cluster=cluster,
                events=events,
                plan=the_plan,
                execution_id=execution_id,
                root=project.root,
                storage=project.storage,
                decide=decide,
                forced=_forced(the_plan, options),
            )
        if not gc.isenabled():  # paused by `cli.main` while planning; an execution may last hours
            # What planning built lives as long as the execution: frozen, the collector never
            # traverses it (its first pass after the pause walked every object, ~0.05 s)
            gc.freeze()
            gc.enable()
        with _cancelled_by_sigterm(scheduler):
            results = scheduler.run(jobs)
        if pool is not None:
            pool.shutdown()
        execution = Execution(
            id=execution_id,
            label=options.label,
            plan=the_plan,
            results=results,
            storage=project.storage,
            started_at=started,
        )
        events.execution_finished(execution)
        return execution


class _NoExecutor:
    """The executor of a plan whose every run is settled before it starts: nothing to run."""

    def submit(self, task: RunTask) -> concurrent.futures.Future[RunResult]:
        raise RuntimeError(f"qaflow bug: run {task.key} was submitted, but every run was settled")

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


def runner_of(project: Project, options: Options) -> str:
    """--runner, else dask when a Dask scheduler is given, else runners.default."""
    runner = options.runner or ("dask" if options.dask_scheduler else project.runner)
    if runner not in ("local", "dask"):
        raise UsageError(
            f"Unknown runner {runner!r} (from --runner or runners.default in qaboard.yaml): "
            "use local or dask."
        )
    return runner


@contextlib.contextmanager
def _cancelled_by_sigterm(scheduler: Scheduler | DaskScheduler) -> Iterator[None]:
    """While the scheduler runs, SIGTERM (`qa cancel`) cancels it: runs in flight are killed,
    the rest is marked cancelled, and the execution is recorded as cancelled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: scheduler.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def concurrency(project: Project, the_plan: Plan, cli: int | None) -> tuple[int, dict[str, int]]:
    """(capacity of the pool, per-batch limits): CLI, else batch `local.concurrency`, else
    `runners.local.concurrency`, else QA_BATCH_CONCURRENCY, else one per CPU (-1)."""
    cpus = os.cpu_count() or 1

    def resolve(value: int) -> int:
        return cpus if value <= 0 else value

    if cli is not None:
        return resolve(cli), {}
    default = project.local_concurrency
    if default is None:
        env = os.environ.get("QA_BATCH_CONCURRENCY")
        try:
            default = int(env) if env else -1
        except ValueError:
            raise UsageError(
                f"QA_BATCH_CONCURRENCY={env!r} is not a number; set it to a number of runs, or -1 for one per CPU."
            ) from None
    limits = {
        name: resolve(s.concurrency)
        for name, s in the_plan.settings.items()
        if s.concurrency is not None
    }
    capacity = max([resolve(default), *limits.values()])
    return capacity, limits


def _job(
    project: Project,
    the_plan: Plan,
    spec: RunSpec,
    options: Options,
    limits: dict[str, int],
    env_timeout: float | None,
    *,
    settled: bool = False,
) -> Job:
    """The scheduler's job for a run; a run settled up front (reused) gets no task to execute."""
    settings = the_plan.settings.get(spec.batch)
    return Job(
        run=spec,
        task=None if settled else _task(project, the_plan, spec, options, env_timeout),
        needs=the_plan.needs(spec.key),
        retries=settings.retries if settings else 0,
        batch_limit=limits.get(spec.batch),
    )


def _task(
    project: Project, the_plan: Plan, spec: RunSpec, options: Options, env_timeout: float | None
) -> RunTask:
    settings = the_plan.settings.get(spec.batch)
    timeout = settings.timeout if settings and settings.timeout else env_timeout
    command = spec.command if spec.command is not None else options.command
    return RunTask(
        key=spec.key,
        spec=spec.to_dict(),
        project_root=str(project.root),
        entrypoint=None if command is not None else str(project.entrypoint),
        command=command,
        env=the_plan.env.get(spec.key, {}),
        lock_dir=str(lock_dir_of(spec.output_dir, project.storage / "runs")),
        action="postprocess" if options.action_on_existing == "postprocess" else "run",
        forwarded_args=options.forwarded_args,
        extra_parameters=options.plan.extra_parameters,
        dryrun=options.dryrun,
        timeout=timeout,
        cpus=settings.cpus if settings else 1,
        tee=options.tee,
    )


def _env_timeout() -> float | None:
    value = os.environ.get("QA_BATCH_TIMEOUT")
    try:
        return float(value) if value else None
    except ValueError:
        raise UsageError(f"QA_BATCH_TIMEOUT={value!r} is not a number of seconds.") from None


def _decide(
    the_plan: Plan, options: Options, store: Any
) -> tuple[Any, dict[str, RunResult], frozenset[str]]:
    """Which runs are settled without executing: up-to-date results (the cache), or for
    --action-on-existing sync/skip, whatever the output directories hold. Returns the
    scheduler's `decide`, the results known already (the cache's, decided up front), and
    the fingerprints with a successful run in the store (which recorded their parts)."""
    if options.action_on_existing in ("sync", "skip"):
        return _existing(options.action_on_existing), {}, frozenset()
    if options.action_on_existing == "postprocess":
        return None, {}, frozenset()
    from qaflow.plan.reuse import reusable

    known: dict[str, Any] = {}

    def recorded(fingerprints: Sequence[str]) -> dict[str, Any]:
        known.update(store.lookups.successes(fingerprints))
        return known

    cached = reusable(
        the_plan, force=options.force, force_batches=options.force_batches, recorded=recorded
    )
    return (lambda job: cached.get(job.key)), cached, frozenset(known)


def _forced(the_plan: Plan, options: Options) -> frozenset[str]:
    if options.force:
        return frozenset(run.key for run in the_plan.runs)
    return frozenset(run.key for run in the_plan.runs if run.batch in options.force_batches)


def _existing(action: ActionOnExisting) -> Any:
    """The scheduler's `decide` for --action-on-existing sync and skip (QA-Board's modes).

    skip: a run whose output directory holds successful results is not executed (reported
    cached, with those metrics); sync: no run executes, existing results are recorded as
    they are, and a run without results fails.
    """
    if action not in ("sync", "skip"):
        return None
    from qaflow.worker.context import MetricsError, read_metrics

    def decide(job: Job) -> RunResult | None:
        now = time.time()
        try:
            metrics = (
                read_metrics(job.run.output_dir)
                if (job.run.output_dir / "metrics.json").is_file()
                else None
            )
        except MetricsError as exc:
            metrics, problem = None, str(exc)
        else:
            problem = f"no existing results to sync in {job.run.output_dir}"
        if action == "skip":
            ok = metrics is not None and not metrics.get("is_failed")
            return (
                RunResult(
                    job.key, RunStatus.CACHED, metrics=metrics or {}, started_at=now, ended_at=now
                )
                if ok
                else None
            )
        if metrics is None:
            return RunResult(job.key, RunStatus.FAILED, error=problem, started_at=now, ended_at=now)
        failed = bool(metrics.get("is_failed"))
        error = "synced: the existing result had failed" if failed else None
        return RunResult(
            job.key,
            RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
            metrics=metrics,
            error=error,
            started_at=now,
            ended_at=now,
        )

    return decide
