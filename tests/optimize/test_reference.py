"""`objective.target` naming a reference execution: each trial run's shift loss is taken against
the value of its match among that execution's runs (by id, branch or tag); a reference that
does not exist, or has no matching run, exits 2 before any trial."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result

from .conftest import optimize, quadratic_project
from .test_optimize import complete, search, study_of

REFERENCE_LOSS = 0.13  # the reference ran with x = y = 0: (0 - 0.3)² + (0 + 0.2)²


def git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path, qa: Callable[..., Result]) -> tuple[Path, str]:
    """A project in a git repository tagged v1 on branch main, with a reference execution
    (label `default`) of the quadratic batch at x = y = 0; (root, its execution id)."""
    root = quadratic_project(tmp_path / "p")
    (root / ".gitignore").write_text("output/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "project")
    git(root, "tag", "v1")
    ran = qa("-C", str(root), "batch", "quadratic")
    assert ran.exit_code == 0, ran.stderr
    listed = json.loads(qa("-C", str(root), "status", "--json").stdout)
    assert [e["label"] for e in listed] == ["default"]
    return root, listed[0]["id"]


def shift_search(root: Path, target: str) -> str:
    return search(
        root,
        "space: {x: {low: 0.0, high: 1.0}, y: {low: -1.0, high: 0.0}}\n"
        f"objective: {{loss: {{loss: shift}}, target: {target}}}\nevaluations: 3\nseed: 2\n",
    )


@pytest.mark.parametrize("form", ["id", "branch", "tag"])
def test_trials_are_scored_against_the_reference_runs(
    project: tuple[Path, str], qa: Callable[..., Result], form: str
) -> None:
    root, reference = project
    target = {"id": f"{{id: {reference}}}", "branch": "{branch: main}", "tag": "{tag: v1}"}[form]
    result = optimize(qa, root, "ref", shift_search(root, target))
    assert result.exit_code == 0, result.stderr
    study = study_of(root, "ref")
    trials = complete(study)
    assert len(trials) == 3
    for trial in trials:
        x, y = trial.params["x"], trial.params["y"]
        # the reference run's loss, not metrics.yaml's target (0.01), is the shift's target
        assert trial.value == pytest.approx((x - 0.3) ** 2 + (y + 0.2) ** 2 - REFERENCE_LOSS)
    shown = json.loads(qa("-C", str(root), "optimize", "--show", "ref", "--json").stdout)
    assert shown["attrs"]["reference"] == reference


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("{branch: mian}", "has no execution of it labelled 'default'. Did you mean main?"),
        ("{branch: main, batch: nightly}", "has no execution of it labelled 'nightly'"),
        ("{tag: v2}", "has no tag 'v2'"),
        ("{id: 0123456789abcdef}", "has no execution of it labelled 'default'"),
        ("no-such-label", "Give an execution id, a label, a git branch or a commit"),
    ],
)
def test_a_reference_that_does_not_exist_exits_2_before_any_trial(
    project: tuple[Path, str], qa: Callable[..., Result], target: str, expected: str
) -> None:
    root, _ = project
    result = optimize(qa, root, "missing", shift_search(root, target))
    assert result.exit_code == 2, result.stdout
    assert expected in result.stderr and "objective.target" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (root / "output" / "studies.db").exists()  # no study was made


def test_a_reference_without_matching_runs_exits_2(
    project: tuple[Path, str], qa: Callable[..., Result]
) -> None:
    root, _ = project
    other = qa("-C", str(root), "--label", "tens", "batch", "ten")
    assert other.exit_code == 0, other.stderr
    result = optimize(qa, root, "nomatch", shift_search(root, "{branch: main, label: tens}"))
    assert result.exit_code == 2, result.stdout
    assert "none of the runs the objective scores (quadratic a.txt) have a match" in result.stderr
    assert "(its batches: ten)" in result.stderr
    assert not (root / "output" / "studies.db").exists()


def test_a_resumed_study_keeps_the_reference_it_started_with(
    project: tuple[Path, str], qa: Callable[..., Result]
) -> None:
    root, reference = project
    config = shift_search(root, "{branch: main}")
    first = optimize(qa, root, "pin", config, "--evaluations", "2")
    assert first.exit_code == 0, first.stderr
    # a newer execution of main (x = 0.3: loss 0.04) would be the branch's reference now
    newer = qa("-C", str(root), "--tuning", '{"x": 0.3}', "batch", "quadratic")
    assert newer.exit_code == 0, newer.stderr
    resumed = optimize(qa, root, "pin", config, "--evaluations", "3")
    assert resumed.exit_code == 0, resumed.stderr
    trials = complete(study_of(root, "pin"))
    assert len(trials) == 3
    for trial in trials:  # every trial against the reference the study started with
        x, y = trial.params["x"], trial.params["y"]
        assert trial.value == pytest.approx((x - 0.3) ** 2 + (y + 0.2) ** 2 - REFERENCE_LOSS)
    shown = json.loads(qa("-C", str(root), "optimize", "--show", "pin", "--json").stdout)
    assert shown["attrs"]["reference"] == reference
    # a new study on main takes the newer execution
    other = optimize(qa, root, "fresh", config, "--evaluations", "1")
    assert other.exit_code == 0, other.stderr
    (trial,) = complete(study_of(root, "fresh"))
    x, y = trial.params["x"], trial.params["y"]
    assert trial.value == pytest.approx((x - 0.3) ** 2 + (y + 0.2) ** 2 - 0.04)
