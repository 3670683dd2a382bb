"""`qa optimize` with the random and grid samplers, end to end: the points the study tried are
those of that sampler (replayed in memory with the same seed, or the whole grid once), the
same again with the same seed, and the study says which sampler it used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from conftest import Result

from .conftest import optimize, quadratic_project
from .test_optimize import complete, search, study_of

RANDOM = """
space:
  x: {low: -1.0, high: 1.0}
  sigma: {low: 0.0001, high: 1.0, log: true}
  size: {low: 1, high: 9}
  kernel: [box, gauss]
preset_params: {y: -0.2}
objective: {loss: minimize}
evaluations: 12
sampler: random
seed: 3
"""

GRID = """
space:
  x: {low: 0.0, high: 1.0, step: 0.5}
  kernel: [box, gauss]
preset_params: {y: -0.2, sigma: 0.01, size: 4}
objective: {loss: minimize}
evaluations: 6
"""


def replayed(sampler: optuna.samplers.BaseSampler, values: list[float]) -> list[dict[str, Any]]:
    """The points `sampler` suggests for RANDOM's space, told the given values in turn."""
    study = optuna.create_study(sampler=sampler)
    for value in values:
        trial = study.ask()
        trial.suggest_float("x", -1.0, 1.0)
        trial.suggest_float("sigma", 0.0001, 1.0, log=True)
        trial.suggest_int("size", 1, 9)
        trial.suggest_categorical("kernel", ["box", "gauss"])
        study.tell(trial, value)
    return [t.params for t in study.trials]


def test_the_random_sampler_runs_a_study_reproducibly(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    config = search(root, RANDOM)
    result = optimize(qa, root, "rnd", config)
    assert result.exit_code == 0, result.stderr
    trials = sorted(study_of(root, "rnd"), key=lambda t: t.number)
    assert len(complete(trials)) == 12
    points = [t.params for t in trials]
    values = [t.value for t in trials]
    # the points are Optuna's RandomSampler's with seed 3; TPE, whose first 10 points are
    # random too, would have chosen others for the last 2
    assert points == replayed(optuna.samplers.RandomSampler(seed=3), values)
    tpe = replayed(optuna.samplers.TPESampler(seed=3, n_startup_trials=10), values)
    assert tpe[:10] == points[:10] and tpe[10:] != points[10:]
    shown = qa("-C", str(root), "optimize", "--show", "rnd", "--json").json()
    assert (shown["attrs"]["sampler"], shown["attrs"]["seed"]) == ("random", 3)
    text = qa("-C", str(root), "optimize", "--show", "rnd").stdout
    assert text.startswith("study 'rnd' (minimize, sampler random seed 3): 12 complete")
    # the same seed, the same points; another seed, others
    again = optimize(qa, root, "again", config, "--evaluations", "4")
    assert again.exit_code == 0, again.stderr
    assert [t.params for t in study_of(root, "again")] == points[:4]
    other = optimize(qa, root, "other", config, "--evaluations", "4", "--seed", "4")
    assert other.exit_code == 0, other.stderr
    assert [t.params for t in study_of(root, "other")] != points[:4]


def test_the_grid_sampler_tries_each_point_once_in_a_seeded_order(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    config = search(root, GRID)
    orders = []
    for label, seed in (("g1", "1"), ("g1-again", "1"), ("g2", "2")):
        result = optimize(qa, root, label, config, "--sampler", "grid", "--seed", seed)
        assert result.exit_code == 0, result.stderr
        trials = sorted(study_of(root, label), key=lambda t: t.number)
        assert len(complete(trials)) == 6
        # Optuna's GridSampler recorded each trial's grid point: every one, once
        assert sorted(t.system_attrs["grid_id"] for t in trials) == list(range(6))
        points = [(t.params["x"], t.params["kernel"]) for t in trials]
        assert sorted(points) == [(x, k) for x in (0.0, 0.5, 1.0) for k in ("box", "gauss")]
        best = min(trials, key=lambda t: t.value)
        assert (best.params, best.value) == ({"x": 0.5, "kernel": "gauss"}, pytest.approx(0.04))
        orders.append(points)
    assert orders[0] == orders[1] != orders[2]
