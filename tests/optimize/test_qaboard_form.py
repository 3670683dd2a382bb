"""`qa optimize` run end to end as QA-Board users run it: a search file in QA-Board's format
(scikit-optimize dimensions, `objective`, `evaluations`, `preset_params`, `solver`,
`parallel_sampling`), `--batches-file`, arguments forwarded to the runs, and a `target` that
names no execution (QA-Board's `batch_objective` then takes the targets of metrics.yaml)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from conftest import Result

from .conftest import optimize, quadratic_project
from .test_optimize import complete, search, study_of

QABOARD_SEARCH = """
objective:
  loss: {weight: 2}
evaluations: 40
preset_params: {y: -0.2, record: true}
parallel_sampling: 2
solver: {random_state: 5, n_initial_points: 10, acq_func: EI}
search_space:
- Real: {name: x, low: -1.0, high: 1.0}
- Real: {name: sigma, low: 0.0001, high: 1.0, prior: log-uniform}
- Integer: {name: size, low: 1, high: 9}
- Categorical: {name: kernel, categories: [box, gauss]}
"""


def loss(params: dict[str, Any]) -> float:
    """The run's loss (tests/optimize/conftest.py's MAIN) at these parameters (y preset)."""
    x, sigma, size, kernel = (params[k] for k in ("x", "sigma", "size", "kernel"))
    quadratic = (x - 0.3) ** 2  # y is preset at its optimum, -0.2
    return quadratic + math.log10(sigma / 0.01) ** 2 + (size - 4) ** 2 / 4 + (kernel != "gauss")


def received(root: Path) -> list[dict[str, Any]]:
    """What each run got (MAIN's `record`), in the order the runs ran."""
    lines = (root / "received.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_qaboard_search_file_runs_a_study_end_to_end(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    result = optimize(qa, root, "skopt", search(root, QABOARD_SEARCH))
    assert result.exit_code == 0, result.stderr
    assert "solver settings acq_func are scikit-optimize's" in result.stderr
    assert "40 trial(s) of quadratic, 2 at once" in result.stdout  # parallel_sampling
    trials = study_of(root, "skopt")
    assert len(complete(trials)) == len(trials) == 40  # evaluations
    for trial in trials:
        p = trial.params
        assert -1.0 <= p["x"] <= 1.0 and 0.0001 <= p["sigma"] <= 1.0
        assert isinstance(p["size"], int) and 1 <= p["size"] <= 9
        assert p["kernel"] in ("box", "gauss")
        # the dimensions Optuna sampled from: log-uniform for sigma, integers for size
        assert trial.distributions["sigma"] == optuna.distributions.FloatDistribution(
            0.0001, 1.0, log=True
        )
        assert trial.distributions["size"] == optuna.distributions.IntDistribution(1, 9)
        # QA-Board's objective: weight 2 × the mean of the identity loss over the runs
        assert trial.value == pytest.approx(2 * loss(p))
    # each run got the trial's parameters, with their types, over the preset ones
    got = received(root)
    assert len(got) == 40
    assert {json.dumps(g["params"], sort_keys=True) for g in got} == {
        json.dumps({**t.params, "y": -0.2, "record": True, "sleep": 0}, sort_keys=True)
        for t in trials
    }
    assert all(type(g["params"]["size"]) is int for g in got)
    assert all(type(g["params"]["sigma"]) is float for g in got)
    # (how good the best is depends on the order parallel trials end, so it is not asserted
    # here: test_optimize's seeded, sequential study asserts that the search converges)


OTHER_BATCHES = """
elsewhere:
  inputs: [a.txt, b.txt]
  configs: [{record: true}]
"""

SMALL = "space: {x: {low: 0.0, high: 1.0}}\nobjective: {loss: minimize}\nevaluations: 2\nseed: 1\n"


def test_batches_file_and_forwarded_args_reach_every_trial(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    (root / "qa" / "other.yaml").write_text(OTHER_BATCHES)
    config = search(root, SMALL)
    # the batch is in that file only; a file that does not exist is an error; nothing written
    unknown = optimize(qa, root, "bf", config, batch="elsewhere")
    assert unknown.exit_code == 2 and "elsewhere" in unknown.stderr
    missing = optimize(qa, root, "bf", config, "--batches-file", "qa/nope.yaml", batch="elsewhere")
    assert missing.exit_code == 2
    assert "--batches-file 'qa/nope.yaml': no such file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert not (root / "output").exists()

    # QA-Board: the arguments qa optimize does not know go to every trial's runs
    args = ("--batches-file", "qa/other.yaml", "--threshold", "7")
    result = optimize(qa, root, "bf", config, *args, batch="elsewhere")
    assert result.exit_code == 0, result.stderr
    assert "forwarding --threshold 7 to the runs" in result.stdout
    trials = complete(study_of(root, "bf"))
    assert len(trials) == 2
    for trial in trials:  # the mean over a.txt and b.txt, each at the trial's x
        assert trial.value == pytest.approx((trial.params["x"] - 0.3) ** 2 + 0.2**2)
    got = received(root)
    assert sorted(g["params"]["x"] for g in got) == sorted(2 * [t.params["x"] for t in trials])
    assert all(g["forwarded"] == ["--threshold", "7"] for g in got)

    # the same in the background (another seed: other points, not the cached runs): the
    # detached driver reads the same batches file and forwarded args
    started = optimize(qa, root, "bg", config, *args, "--seed", "2", "--no-wait", batch="elsewhere")
    assert started.exit_code == 0, started.stderr
    execution = started.stdout.split("as execution ")[1].split()[0]
    waited = qa("-C", str(root), "wait", execution, "--timeout", "300")
    log = root / "output" / "executions" / f"{execution}.log"
    assert waited.exit_code == 0, (waited.stdout, log.read_text())
    assert len(complete(study_of(root, "bg"))) == 2
    later = received(root)[len(got) :]
    assert len(later) == 4 and all(g["forwarded"] == ["--threshold", "7"] for g in later)


def test_share_puts_the_study_and_its_trials_in_the_shared_storage(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    shared = tmp_path / "shared"
    root = quadratic_project(
        tmp_path / "p", qaboard=f"project: {{name: tune}}\nstorage: {shared}\n"
    )
    config = search(root, SMALL)
    result = qa("-C", str(root), "--share", "--label", "s", "optimize", "-b", "quadratic",
                "--config-file", config)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (shared / "tune" / "studies.db").is_file()
    assert len(list((shared / "tune" / "runs" / "quadratic").iterdir())) >= 2
    assert not (root / "output").exists()  # as `qa --share batch`: nothing in the project


@pytest.mark.parametrize("target", ["true", "{batch: nightly}", "{label: nightly}"])
def test_a_target_naming_no_execution_compares_with_the_targets_of_metrics_yaml(
    tmp_path: Path, qa: Callable[..., Result], target: str
) -> None:
    # QA-Board's batch_objective: no `id` nor `branch` in the target, the shift loss takes
    # each metric's `target:` of metrics.yaml (loss: 0.01); no execution need exist
    root = quadratic_project(tmp_path / "p")
    config = search(
        root,
        "search_space:\n- Real: {name: x, low: 0.0, high: 1.0}\n"
        f"objective:\n  loss: {{loss: shift}}\n  target: {target}\n"
        "evaluations: 2\nsolver: {random_state: 4}\n",
    )
    result = optimize(qa, root, "t", config)
    assert result.exit_code == 0, result.stderr
    trials = complete(study_of(root, "t"))
    assert len(trials) == 2
    for trial in trials:
        assert trial.value == pytest.approx((trial.params["x"] - 0.3) ** 2 + 0.2**2 - 0.01)
    warned = "names no execution (no `id`, `branch` or `tag`)" in result.stderr
    assert warned == (target != "true")
