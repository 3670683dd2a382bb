"""Studies as plain records, for `qa optimize --show` and the board; Optuna's figures as JSON."""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from qaflow.config.project import Project


@dataclass(frozen=True)
class TrialRow:
    """One trial: its number (iteration = number + 1), state, value, parameters, execution."""

    number: int
    state: str  # complete, fail, running, pruned, waiting
    value: float | None
    params: dict[str, Any]
    label: str | None
    execution: str | None
    error: str | None
    seconds: float | None

    @property
    def iteration(self) -> int:
        return self.number + 1


@dataclass(frozen=True)
class StudySummary:
    """A study: its direction, best trial and every trial, oldest first."""

    name: str
    direction: str
    attrs: dict[str, Any]
    trials: list[TrialRow] = field(default_factory=list)
    best: TrialRow | None = None

    @property
    def param_names(self) -> list[str]:
        names: dict[str, None] = {}
        for trial in self.trials:
            names.update(dict.fromkeys(trial.params))
        return list(names)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial.state] = out.get(trial.state, 0) + 1
        return out


def study_names(project: Project) -> list[str]:
    """The studies of the project, by name (none if there is no study storage yet)."""

    from qaflow.optimize.storage import opened_storage

    if not may_have_studies(project):
        return []
    with opened_storage(project) as storage:
        return names_in(storage)


def names_in(storage: optuna.storages.BaseStorage) -> list[str]:
    import optuna

    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage))


def may_have_studies(project: Project) -> bool:
    """False when the SQLite study file was never made: reading must not create it."""
    from qaflow.optimize.storage import storage_url

    if project.database_url:
        return True
    url, _ = storage_url(project)
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).is_file()


def summarize(study: optuna.Study) -> StudySummary:
    import optuna

    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    best = _row(study.best_trial) if complete else None
    return StudySummary(
        name=study.study_name,
        direction=study.direction.name.lower(),
        attrs=dict(study.user_attrs),
        trials=rows,
        best=best,
    )


def _row(trial: optuna.trial.FrozenTrial) -> TrialRow:
    seconds = None
    if trial.datetime_start is not None:
        end = trial.datetime_complete or datetime.datetime.now()
        seconds = (end - trial.datetime_start).total_seconds()
    attrs = trial.user_attrs
    return TrialRow(
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value if trial.values else None,
        params=dict(trial.params),
        label=attrs.get("label"),
        execution=attrs.get("execution"),
        error=attrs.get("error") or attrs.get("cancelled") or attrs.get("interrupted"),
        seconds=seconds,
    )


def figure(study: optuna.Study, kind: str) -> dict[str, Any] | None:
    """One of Optuna's plotly figures of the study, as plotly JSON (what plotly.js draws):
    `history` (the objective over trials), `importance` (the parameters'), `parallel` (the
    parallel coordinates). None for another name, or while the study has too few trials."""
    import json

    from optuna import visualization as vis

    makers: dict[str, Callable[[optuna.Study], Any]] = {
        "history": vis.plot_optimization_history,
        "importance": vis.plot_param_importances,
        "parallel": vis.plot_parallel_coordinate,
    }
    if kind not in makers:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made: dict[str, Any] = json.loads(makers[kind](study).to_json())
    except (ValueError, RuntimeError, ZeroDivisionError):  # too few complete trials
        return None
    return made
