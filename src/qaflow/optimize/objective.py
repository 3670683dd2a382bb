"""A trial's objective: its runs' metrics, turned into one number as QA-Board's `batch_objective`.

Per metric of the objective (a `Term`): each run's loss (identity: the value; shift: value -
target; relative: (value - target) / target; signed so that smaller is better, following
`smaller_is_better` of metrics.yaml or the term's `direction`; then `relu-` adds the margin and
keeps what is positive, `square-` squares), reduced over the runs (sum, relu, l1, l2, each
divided by the number of runs), times the weight; the objective is the sum, minimised.
The target is the metric's `target:` in metrics.yaml or, when `objective.target` names a
reference execution, the value of the run's match among that execution's runs
(`qaflow.optimize.reference`).

qaflow's form with one metric (`objective: {psnr: maximize}`) is simpler: the objective is
the mean of the metric over the runs, in the direction given.

A run that failed, or lacks a metric, fails the trial: `TrialFailed`, never a number.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any, Literal

from qaflow.errors import ConfigError
from qaflow.optimize.search import Search, Term
from qaflow.results.metrics import Metrics, as_number


class TrialFailed(Exception):
    """The trial's runs give no objective (a run failed, a metric is missing)."""


def check_metrics(search: Search, metrics: Metrics) -> None:
    """ConfigError for a metric of the objective that metrics.yaml does not describe (so its
    direction is unknown, and it is likely a typo), or that has no target where one is needed."""
    known = sorted(metrics.available)
    for term in search.terms:
        if term.metric not in metrics.available:
            close = difflib.get_close_matches(term.metric, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            described = ", ".join(known) or "none"
            raise ConfigError(
                f"{search.path}: the objective names the metric {term.metric!r}, which "
                f"{metrics.path or 'qa/metrics.yaml'} does not describe (it describes: "
                f"{described}).{hint} Fix the name, or describe the metric under "
                "`available_metrics` with its `smaller_is_better`."
            )
        if search.reference is None and term.compares and metrics.spec(term.metric).target is None:
            raise ConfigError(
                f"{search.path}: the loss {term.loss!r} of {term.metric!r} compares with a "
                f"target, and metrics.yaml gives {term.metric!r} no `target:`. Add one, or use "
                "loss: identity."
            )


def direction(search: Search, metrics: Metrics) -> Literal["minimize", "maximize"]:
    """The study's direction: the one metric's (qaflow's simple form), else minimize."""
    if search.raw_objective:
        return "minimize" if _smaller_is_better(search.terms[0], metrics) else "maximize"
    return "minimize"


def objective(
    search: Search,
    metrics: Metrics,
    runs: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]] | None = None,
) -> float:
    """The objective of a trial from the metrics of its scored runs; TrialFailed if none.
    `targets`: per run, the metrics of its reference run (`objective.target` naming an
    execution), whose values the shift and relative losses compare with."""
    if not runs:
        raise TrialFailed("the trial has no run to score")
    if search.raw_objective:
        return _mean(search.terms[0].metric, runs)
    total = 0.0
    for term in search.terms:
        losses = []
        for index, run in enumerate(runs):
            target = metrics.spec(term.metric).target
            if targets is not None and term.compares:
                target = _value(term.metric, targets[index], "its reference run")
            losses.append(_loss(term, metrics, _value(term.metric, run), target))
        total += term.weight * _reduce(term.reduce, losses)
    return total


def _smaller_is_better(term: Term, metrics: Metrics) -> bool:
    if term.direction is not None:
        return term.direction == "minimize"
    return metrics.spec(term.metric).smaller_is_better is not False


def _mean(metric: str, runs: Sequence[dict[str, Any]]) -> float:
    values = [_value(metric, run) for run in runs]
    return sum(values) / len(values)


def _value(metric: str, run: dict[str, Any], whose: str = "a run") -> float:
    number = as_number(run.get(metric))
    if number is None or math.isnan(number):
        raise TrialFailed(f"{whose} has no number for the metric {metric!r}")
    return number


def _loss(term: Term, metrics: Metrics, value: float, target: float | None) -> float:
    sign = 1.0 if _smaller_is_better(term, metrics) else -1.0
    if "shift" in term.loss:
        assert target is not None  # check_metrics, or the reference run's value
        inner = (value - target) * sign
    elif "relative" in term.loss:
        assert target is not None
        if target == 0:
            raise TrialFailed(f"the relative loss of {term.metric!r} divides by a target of 0")
        inner = (value - target) / target * sign
    else:
        inner = value * sign
    if "relu" in term.loss:
        return max(inner + term.margin, 0.0)
    if "square" in term.loss:
        return inner**2
    return inner


def _reduce(kind: str, losses: list[float]) -> float:
    n = len(losses)
    if kind == "relu":
        return max(sum(losses), 0.0) / n
    if kind == "l1":
        return sum(abs(x) for x in losses) / n
    if kind == "l2":
        return math.sqrt(sum(x * x for x in losses)) / n
    return sum(losses) / n
