"""`qa history NAME --metric M`: a metric's summary over executions, oldest first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qaflow.config.git import GitInfo
from qaflow.results.compare_format import sparkline
from qaflow.store import Store
from qaflow.worker.model import RunStatus
from results_helpers import Run, record


@pytest.fixture
def history_project(project: Callable[..., Path]) -> Path:
    """Four executions of batch b: losses 1,3 / 2,4 (dev) / 5,7 (label exp) / 3,5 / a failed run each."""
    root = project(
        extra={
            "qa/metrics.yaml": "available_metrics: {loss: {label: Loss, suffix: ' px'}}\ndefault_metric: loss\n"
        }
    )
    plan = [(1, "ci", "main"), (2, "ci", "dev"), (5, "exp", "main"), (3, "ci", "main")]
    with Store.open(storage=root / "output") as store:
        for loss, label, branch in plan:
            runs = [
                Run("a", {"loss": loss}),
                Run("b", {"loss": loss + 2}),
                Run("c", {"loss": 1000}, status=RunStatus.FAILED),  # failed runs do not count
            ]
            git = GitInfo(f"{loss}" * 40, branch, False)
            record(store, runs, label=label, output_root=root / "runs", git=git)
        record(store, [Run("a", {"loss": 50}, batch="other")], output_root=root / "runs")
    return root


def test_history_prints_the_mean_per_execution_oldest_first_and_a_sparkline(
    history_project: Path, qa
) -> None:
    result = qa("-C", str(history_project), "history", "b", "--metric", "loss")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["execution", "label", "git", "started", "runs", "mean", "Loss"]
    table = [line.split() for line in lines[1:5]]
    assert [(row[1], row[2], row[-2]) for row in table] == [
        ("ci", "main@1111111", "2"),
        ("ci", "dev@2222222", "3"),
        ("exp", "main@5555555", "6"),
        ("ci", "main@3333333", "4"),
    ]
    assert [row[-1] for row in table] == ["px"] * 4  # the suffix, after the value
    assert lines[-1] == "Loss ▁▃█▅  oldest → newest; min 2 px, max 6 px, last 4 px"


def test_history_filters_by_branch_or_label_limits_and_summarises(
    history_project: Path, qa
) -> None:
    root = str(history_project)
    main = qa("-C", root, "history", "b", "--branch", "main", "--json").json()  # default_metric
    assert [e["value"] for e in main["executions"]] == [2, 6, 4]
    assert main["metric"] == "loss" and main["executions"][0]["runs"] == 2
    ci = qa(
        "-C",
        root,
        "history",
        "b",
        "-m",
        "loss",
        "--label",
        "ci",
        "--limit",
        "2",
        "--stat",
        "max",
        "--json",
    )
    assert [(e["git_branch"], e["value"]) for e in ci.json()["executions"]] == [
        ("dev", 4),
        ("main", 5),
    ]


def test_history_usage_errors_exit_2(history_project: Path, qa) -> None:
    root = str(history_project)
    cases = [
        (["history", "nope", "-m", "loss"], "No execution ran batch 'nope'"),
        (["history", "b", "-m", "los"], "has a number for metric 'los'"),
        (["history", "b", "--branch", "x", "--label", "y"], "Give --branch or --label, not both."),
        (["history", "b", "--branch", "feature"], "No execution of branch 'feature' ran batch 'b'"),
        (["history", "b", "--limit", "0"], "--limit 0"),
    ]
    for args, message in cases:
        result = qa("-C", root, *args)
        assert (result.exit_code, message in result.stderr) == (2, True), (args, result.stderr)
    (history_project / "qa" / "metrics.yaml").write_text("available_metrics: {}\n")
    missing = qa("-C", root, "history", "b")
    assert missing.exit_code == 2 and "Give --metric M, or set `default_metric`" in missing.stderr


def test_sparkline_scales_between_min_and_max() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0, None, 10]) == "▁ █"
    assert sparkline([3, 3]) == "▄▄"  # flat: the middle
    assert sparkline([None]) == " "
