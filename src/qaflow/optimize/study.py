"""`qa optimize`: an Optuna study whose trials are executions of batches (or whole DAGs).

Policy
- `prepare` checks everything before anything is written: the search file, the objective's
  metrics against metrics.yaml, the batches (planned once, without tuning, writing nothing),
  the runner. A mistake is a UsageError (exit 2); no study, store or folder is created.
- `optimize` opens (or resumes) the study in the run store's database
  (`qaflow.optimize.storage`) and runs trials until the budget, `evaluations`, is reached:
  trials that completed, or failed because of their runs, count; trials interrupted (their
  process killed, or cancelled) do not. A trial whose process on this host died is failed
  at once by any process working on the study (`qaflow.optimize.liveness`), one on another
  host by Optuna's heartbeat check.
- `parallel` trials run at once, from threads of this process, on one local pool shared by
  all (or on one Dask cluster: the given scheduler, or a cluster started for the study).
  Several processes may work on one study: each stops when the budget is reached.
- Cancel (SIGTERM from `qa cancel`, Ctrl-C): the trials' executions are cancelled, no new
  trial starts, the study is left resumable.
- Progress: one line per finished trial (`progress(text)`), with the best value so far.

Study attributes: `batches`, `tuned_batches`, `label`, `config_file`, `project`, `sampler`
and `seed` (those of the last process that worked on it), `execution` (the background
execution driving it, if any), `reference` (the execution `objective.target` names).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qaflow.errors import UsageError
from qaflow.execution.model import Options
from qaflow.execution.preflight import preflight
from qaflow.optimize.liveness import fail_dead_trials, watched
from qaflow.optimize.objective import TrialFailed, check_metrics, direction
from qaflow.optimize.reference import Reference, resolve
from qaflow.optimize.search import Search, Target
from qaflow.optimize.trial import Trials, scored_batches
from qaflow.plan.planner import plan
from qaflow.results.metrics import Metrics

if TYPE_CHECKING:
    import optuna

    from qaflow.config.project import Project
    from qaflow.execution.executors.local import LocalPool
    from qaflow.plan.model import RunSpec

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A checked request: what `optimize` needs, nothing written yet."""

    project: Project
    targets: tuple[str, ...]  # the batches asked for (aliases resolved)
    tuned: tuple[str, ...]  # the batches that get the tuned parameters
    search: Search
    metrics: Metrics
    options: Options
    study: str
    runner: str
    capacity: int
    reference: Reference | None = None  # the execution `objective.target` names
    scored: tuple[RunSpec, ...] = ()  # the planned runs the objective scores


@dataclass(frozen=True)
class Outcome:
    """How a `qa optimize` process ended."""

    study: str
    completed: int  # trials of the study that completed (all processes)
    failed: int
    best_value: float | None
    best_params: dict[str, Any]
    cancelled: bool

    @property
    def exit_code(self) -> int:
        return 1 if self.cancelled or (self.best_value is None and self.failed) else 0


def prepare(
    project: Project,
    batches: tuple[str, ...],
    search: Search,
    options: Options,
    *,
    study: str | None = None,
    tune_batches: tuple[str, ...] = (),
) -> Prepared:
    """Check the request (see the module policy); UsageError on any mistake."""
    metrics = Metrics.load(project.metrics_path)
    check_metrics(search, metrics)
    from qaflow.config.batches import Catalog

    catalog = Catalog.load(project)
    the_plan = plan(project, list(batches), options.plan, catalog=catalog)  # unknown batch: exit 2
    tuned = tuple(tune_batches) or tuple(the_plan.targets)
    if tune_batches:
        plan(project, list(tune_batches), options.plan, catalog=catalog)  # they exist
    checks = preflight(project, the_plan, options)
    scoring = scored_batches(the_plan)
    scored = tuple(run for run in the_plan.runs if run.batch in scoring)
    reference = resolve(project, search, scored)
    return Prepared(
        project=project,
        targets=tuple(the_plan.targets) or tuple(batches),
        tuned=tuned,
        search=search,
        metrics=metrics,
        options=options,
        study=study or options.label,
        runner=checks.runner,
        capacity=checks.capacity,
        reference=reference,
        scored=scored,
    )


def optimize(
    prepared: Prepared,
    *,
    progress: Progress = print,
    execution_id: str | None = None,
) -> Outcome:
    """Run the study's trials until its budget is reached (or it is cancelled)."""

    from qaflow.optimize.storage import opened_storage

    with opened_storage(prepared.project) as storage:
        study = _open_study(storage, prepared)
        prepared = _pinned(study, prepared)
        _describe(study, prepared, execution_id)
        fail_dead_trials(storage, study, prepared.project, progress)  # before counting
        remaining = prepared.search.evaluations - counted(study)
        cancelled = False
        if remaining > 0:
            progress(_start_line(prepared, study, remaining))
            with (
                _shared_workers(prepared) as trials,
                _cancelled_by_signals(trials),
                watched(storage, study, prepared.project, progress),
            ):
                study.optimize(
                    trials,
                    n_trials=remaining,
                    n_jobs=min(prepared.search.parallel, remaining),
                    catch=(TrialFailed,),
                    callbacks=[_Budget(prepared, progress, trials)],
                )
                cancelled = trials.cancellation.cancelled
        return outcome(study, cancelled=cancelled)


def _open_study(storage: optuna.storages.BaseStorage, prepared: Prepared) -> optuna.Study:
    """The study, created or resumed; UsageError if it exists with the other direction."""
    import optuna

    wanted = direction(prepared.search, prepared.metrics)
    try:
        return optuna.create_study(
            study_name=prepared.study,
            storage=storage,
            sampler=sampler(prepared.search),
            direction=wanted,
            load_if_exists=True,
        )
    except ValueError as exc:  # an existing study with another direction
        raise UsageError(
            f"The study {prepared.study!r} exists, and does not {wanted} its objective as "
            f"{prepared.search.path} asks ({exc}). Give another name (--study NAME or --label)."
        ) from exc


def _pinned(study: optuna.Study, prepared: Prepared) -> Prepared:
    """The request with the reference execution the study recorded when it started: a
    resumed study scores its trials against the same runs, whatever ran on the branch since."""
    recorded = study.user_attrs.get("reference")
    if prepared.reference is None or recorded in (None, prepared.reference.execution_id):
        return prepared
    search = dataclasses.replace(prepared.search, reference=Target("id", str(recorded)))
    reference = resolve(prepared.project, search, prepared.scored)
    return dataclasses.replace(prepared, reference=reference)


def sampler(search: Search) -> optuna.samplers.BaseSampler:
    """TPE (default), random or grid, seeded with the search's seed."""
    import optuna

    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    if search.sampler == "grid":
        grid = {d.name: d.grid() for d in search.dimensions}
        return optuna.samplers.GridSampler(grid, seed=search.seed)
    startup = 10 if search.n_startup_trials is None else search.n_startup_trials  # Optuna's default
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=startup)


def counted(study: optuna.Study) -> int:
    """Trials that count against the budget: completed, or failed by their runs."""
    import optuna

    done = study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    )
    return sum(
        1 for t in done if t.state == optuna.trial.TrialState.COMPLETE or "error" in t.user_attrs
    )


def outcome(study: optuna.Study, *, cancelled: bool = False) -> Outcome:
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return Outcome(
        study=study.study_name,
        completed=len(complete),
        failed=sum(1 for t in trials if "error" in t.user_attrs),
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        cancelled=cancelled,
    )


def _describe(study: optuna.Study, prepared: Prepared, execution_id: str | None) -> None:
    attrs = {
        "batches": list(prepared.targets),
        "tuned_batches": list(prepared.tuned),
        "label": prepared.options.label,
        "config_file": str(prepared.search.path),
        "project": prepared.project.name,
        "sampler": prepared.search.sampler,  # Optuna's storage keeps no sampler: as last run
        "seed": prepared.search.seed,
    }
    if execution_id is not None:
        attrs["execution"] = execution_id
    if prepared.reference is not None and "reference" not in study.user_attrs:
        attrs["reference"] = prepared.reference.execution_id
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def _start_line(prepared: Prepared, study: optuna.Study, remaining: int) -> str:
    done = prepared.search.evaluations - remaining
    resumed = f", resuming after {done} trial(s)" if done else ""
    where = "on Dask" if prepared.runner == "dask" else f"on {prepared.capacity} local worker(s)"
    forwarded = prepared.options.forwarded_args  # QA-Board's: what qa optimize did not know
    given = f", forwarding {shlex.join(forwarded)} to the runs" if forwarded else ""
    return (
        f"study {study.study_name!r}: {remaining} trial(s) of {', '.join(prepared.targets)}, "
        f"{prepared.search.parallel} at once {where}{resumed}{given}"
    )


class _Budget:
    """After each trial: print its line, and stop the study once the budget is reached
    (counting the trials of every process) or it is cancelled."""

    def __init__(self, prepared: Prepared, progress: Progress, trials: Trials) -> None:
        self.prepared, self.progress, self.trials = prepared, progress, trials
        self.lock = threading.Lock()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with self.lock:
            done = counted(study)
            self.progress(trial_line(study, trial, done, self.prepared.search.evaluations))
            if done >= self.prepared.search.evaluations or self.trials.cancellation.cancelled:
                study.stop()


def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, done: int, budget: int) -> str:
    """One line of progress: the trial, its value or error, the best so far."""
    label = trial.user_attrs.get("label", f"trial {trial.number}")
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.value is not None:
        result = f"objective {_short(trial.value)}"
    else:
        result = f"failed: {trial.user_attrs.get('error') or trial.user_attrs.get('cancelled')}"
    try:
        best = f"best {_short(study.best_value)} ({study.best_trial.user_attrs.get('label')})"
    except ValueError:  # no completed trial yet
        best = "no best yet"
    return f"[{done}/{budget}] {label}: {result} — {best} — {params}"


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@contextlib.contextmanager
def _shared_workers(prepared: Prepared) -> Iterator[Trials]:
    """The trials, with the workers they share: one local pool, or one Dask cluster."""
    trials = Trials(
        project=prepared.project,
        targets=prepared.targets,
        tuned=prepared.tuned,
        search=prepared.search,
        metrics=prepared.metrics,
        options=prepared.options,
        reference=prepared.reference,
    )
    if prepared.runner == "dask":
        with _dask_address(prepared) as address:
            trials.options = dataclasses.replace(prepared.options, dask_scheduler=address)
            yield trials
        return
    from qaflow.execution.executors.local import LocalPool

    pool: LocalPool = LocalPool(prepared.capacity)
    trials.pool = pool
    try:
        yield trials
    finally:
        pool.shutdown(cancel=trials.cancellation.cancelled)


@contextlib.contextmanager
def _dask_address(prepared: Prepared) -> Iterator[str]:
    """The scheduler the trials share: the one given, else a cluster started for the study."""
    given = prepared.options.dask_scheduler or prepared.project.dask.get("scheduler_address")
    if given:
        yield given
        return
    from qaflow.execution.executors.cluster import configured

    cluster = configured(prepared.project.dask.get("cluster") or {}, retries=0)
    try:
        work = max(prepared.search.parallel, os.cpu_count() or 1)
        yield cluster.client(work).scheduler.address  # type: ignore[union-attr]
    finally:
        cluster.close()


@contextlib.contextmanager
def _cancelled_by_signals(trials: Trials) -> Iterator[None]:
    """SIGTERM (`qa cancel`) and Ctrl-C cancel the trials' executions; no trial starts after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = lambda signum, frame: trials.cancellation.cancel()  # noqa: E731
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
