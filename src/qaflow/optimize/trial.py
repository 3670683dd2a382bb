"""One trial of a study: the batches executed with the suggested parameters, then scored.

A trial is an ordinary execution: its label is `LABEL|iterN` (N = the Optuna trial number +
1, as QA-Board names its iterations), the suggested parameters (over `preset_params`) are
its `--tuning` (`extra_parameters`), given to the tuned batches only (the targets, unless
`--tune-batch` says otherwise): the batches they need plan as without tuning, so their runs
keep their fingerprints and are reused from the cache by every trial after the first.

The trial's value is the objective (`qaflow.optimize.objective`) of the runs of the target
batches (compared with their matches in the reference execution, if the objective names
one). A run that failed anywhere in the trial's DAG fails the trial (`TrialFailed`, an
Optuna FAIL with the reason in the trial's `error` attribute), as does a cancelled one.
Trial attributes: `label`, `execution` (its id, linked from the board), `error`, `pid` and
`host` (its process), `interrupted` (its process died).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qaflow.execution.driver import execute
from qaflow.execution.model import Cancellation, Execution, Options
from qaflow.optimize.liveness import mark
from qaflow.optimize.objective import TrialFailed, objective
from qaflow.optimize.search import Dimension, Search
from qaflow.plan.planner import plan
from qaflow.worker.model import RunStatus

if TYPE_CHECKING:
    import optuna

    from qaflow.config.project import Project
    from qaflow.execution.executors.local import LocalPool
    from qaflow.optimize.reference import Reference
    from qaflow.plan.model import Plan, RunSpec
    from qaflow.results.metrics import Metrics
    from qaflow.worker.model import RunResult


@dataclass
class Trials:
    """What every trial of one `qa optimize` process shares."""

    project: Project
    targets: tuple[str, ...]
    tuned: tuple[str, ...]
    search: Search
    metrics: Metrics
    options: Options  # the trials' execution options; the label is the study's
    pool: LocalPool | None = None
    reference: Reference | None = None  # whose runs give the targets (`objective.target`)
    cancellation: Cancellation = dataclasses.field(default_factory=Cancellation)
    planning: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __call__(self, trial: optuna.Trial) -> float:
        """Optuna's objective function: execute the trial, return its objective."""
        params = {d.name: suggest(trial, d) for d in self.search.dimensions}
        label = f"{self.options.label}|iter{trial.number + 1}"
        trial.set_user_attr("label", label)
        mark(trial)  # its process, for `qaflow.optimize.liveness`
        if self.cancellation.cancelled:
            trial.set_user_attr("cancelled", True)
            raise TrialFailed("the study was cancelled")
        execution = self.execute(label, {**self.search.preset_params, **params}, trial)
        try:
            return self.score(execution)
        except TrialFailed as exc:
            key = "cancelled" if self.cancellation.cancelled else "error"
            trial.set_user_attr(key, str(exc))
            raise

    def execute(self, label: str, tuning: dict[str, Any], trial: optuna.Trial) -> Execution:
        plan_options = dataclasses.replace(
            self.options.plan,
            label=label,
            extra_parameters={**self.options.plan.extra_parameters, **tuning},
            tuned_batches=self.tuned,
        )
        options = dataclasses.replace(self.options, label=label, plan=plan_options)
        with self.planning:  # the input-hash cache is written by one planner at a time
            the_plan = plan(self.project, list(self.targets), plan_options, persist=True)
        return execute(
            self.project,
            the_plan,
            options,
            reporter=TrialReporter(trial),
            pool=self.pool,
            cancellation=self.cancellation,
        )

    def score(self, execution: Execution) -> float:
        runs = execution.runs()
        bad = [run for run in runs if not run.status.ok]
        if bad:
            first = bad[0]
            where = first.spec.rel_input_path or "(no input)"
            reason = (first.error or first.status.value).strip().splitlines()
            detail = reason[0] if reason else first.status.value
            statuses = {run.status for run in bad}
            word = "cancelled" if statuses == {RunStatus.CANCELLED} else "failed"
            raise TrialFailed(f"{len(bad)} run(s) {word}: {first.spec.batch} {where}: {detail}")
        batches = scored_batches(execution.plan)
        scored = [run for run in runs if run.spec.batch in batches]
        targets = None
        if self.reference is not None:
            targets = self.reference.targets([(run.spec, run.metrics) for run in scored])
        return objective(self.search, self.metrics, [run.metrics for run in scored], targets)


def scored_batches(the_plan: Plan) -> set[str]:
    """The batches whose runs make the objective: the targets."""
    return set(the_plan.targets) or {run.batch for run in the_plan.runs}


def suggest(trial: optuna.Trial, dimension: Dimension) -> Any:
    """The trial's value of one parameter."""
    if dimension.kind == "categorical":
        return trial.suggest_categorical(dimension.name, list(dimension.choices))
    assert dimension.low is not None and dimension.high is not None
    if dimension.kind == "integer":
        step = int(dimension.step or 1)
        return trial.suggest_int(
            dimension.name, int(dimension.low), int(dimension.high), step=step, log=dimension.log
        )
    return trial.suggest_float(
        dimension.name,
        float(dimension.low),
        float(dimension.high),
        step=dimension.step,
        log=dimension.log,
    )


class TrialReporter:
    """The trials' reporter: silent on the console (the study prints one line per trial),
    it gives the trial its execution's id as soon as it is recorded, so the board links a
    running trial to its execution."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        self.trial.set_user_attr("execution", execution_id)

    def run_started(self, run: RunSpec, attempt: int) -> None:
        pass

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        pass

    def execution_finished(self, execution: Execution) -> None:
        pass
