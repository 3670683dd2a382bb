"""Comparing executions: matching, deltas, verdicts, summaries; the store's queries behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError, UsageError
from qaflow.results.compare import CompareRun, ExecutionSide, as_compare_runs, compare, match
from qaflow.results.filecompare import compare_files
from qaflow.results.metrics import Metrics, MetricSpec, Tolerance
from qaflow.store import Store
from qaflow.store.records import CompareRow
from qaflow.worker.model import RunStatus
from results_helpers import Run, compare_run, record

LOSS = MetricSpec("loss", "Loss", "Loss", smaller_is_better=True)
PSNR = MetricSpec("psnr", "PSNR", "PSNR", smaller_is_better=False, suffix="dB")
DESCRIBED = Metrics(available={"loss": LOSS, "psnr": PSNR})


def test_deltas_directions_and_regressions_follow_smaller_is_better() -> None:
    ref = [compare_run("a", {"loss": 0.5, "psnr": 30}), compare_run("b", {"loss": 0.5, "psnr": 30})]
    new = [compare_run("a", {"loss": 0.4, "psnr": 29}), compare_run("b", {"loss": 0.5, "psnr": 33})]
    result = compare(ref, new, metrics=DESCRIBED)
    [batch] = result.batches
    a, b = batch.rows
    loss, psnr = a.metrics
    assert (loss.ref, loss.new, loss.direction, loss.regression) == (0.5, 0.4, "better", False)
    assert loss.delta == pytest.approx(-0.1) and loss.delta_pct == pytest.approx(-20)
    assert (psnr.delta, psnr.direction, psnr.regression) == (-1, "worse", True)
    assert psnr.delta_pct == pytest.approx(-100 / 30)
    assert [m.direction for m in b.metrics] == ["same", "better"]
    assert (a.regression, b.regression, b.changed) == (True, False, True)
    assert result.regressions == [a] and result.failed
    loss_summary, psnr_summary = result.summaries
    assert (loss_summary.compared, loss_summary.better, loss_summary.same) == (2, 1, 1)
    assert loss_summary.mean_delta == pytest.approx(-0.05)
    assert loss_summary.median_delta == pytest.approx(-0.05)
    assert (psnr_summary.better, psnr_summary.worse, psnr_summary.regressions) == (1, 1, 1)
    assert psnr_summary.mean_delta == pytest.approx(1) and psnr_summary.new_mean == 31


def test_tolerances_absolute_and_relative_decide_regressions() -> None:
    ref = [compare_run(name, {"loss": 0.30}) for name in "abc"]
    new = [compare_run(n, {"loss": v}) for n, v in zip("abc", (0.31, 0.32, 0.29), strict=True)]
    absolute = compare(ref, new, metrics=DESCRIBED, tolerances={"loss": Tolerance(0.01)})
    # 0.31 - 0.30 is 0.010000000000000009 in floats: not "more than" 0.01
    assert [row.regression for row in absolute.rows] == [False, True, False]
    assert [row.metrics[0].allowed for row in absolute.rows] == [0.01] * 3
    relative = compare(ref, new, metrics=DESCRIBED, tolerances={"loss": Tolerance(5, True)})
    assert [row.regression for row in relative.rows] == [False, True, False]  # allowed 0.015
    from_yaml = Metrics(
        available={"loss": MetricSpec("loss", "l", "l", True, tolerance=Tolerance(10, True))}
    )
    assert not compare(ref, new, metrics=from_yaml).failed
    overridden = compare(ref, new, metrics=from_yaml, tolerances={"loss": Tolerance(0)})
    assert overridden.failed and overridden.tolerances == {"loss": "0"}


def test_undescribed_metrics_show_but_are_never_judged_unless_given_a_tolerance() -> None:
    ref = [compare_run("a", {"score": 1.0, "compute_time": 1, "is_failed": False})]
    new = [compare_run("a", {"score": 9.0, "compute_time": 5, "is_failed": False})]
    result = compare(ref, new)
    assert [spec.key for spec in result.metrics] == ["score"]  # bookkeeping left out
    [cell] = next(iter(result.rows)).metrics
    assert (cell.delta, cell.direction, cell.regression) == (8.0, None, False)
    assert not result.failed
    gated = compare(ref, new, tolerances={"score": Tolerance(1)})
    assert gated.failed and gated.spec("score").smaller_is_better is True  # QA-Board's default
    timed = compare(ref, new, select=["compute_time"])
    assert [spec.key for spec in timed.metrics] == ["compute_time"]


def test_main_metrics_order_and_select_and_unknown_metric_names() -> None:
    metrics = Metrics(available={"loss": LOSS, "psnr": PSNR}, main_metrics=("psnr",))
    runs = [compare_run("a", {"loss": 1, "psnr": 2, "extra": 3})]
    assert [s.key for s in compare(runs, runs, metrics=metrics).metrics] == ["psnr"]
    assert [s.key for s in compare(runs, runs).metrics] == ["extra", "loss", "psnr"]
    assert [s.key for s in compare(runs, runs, metrics=DESCRIBED).metrics] == [
        "loss",
        "psnr",
        "extra",
    ]
    with pytest.raises(UsageError, match=r"No metric 'los'.*Did you mean loss\?"):
        compare(runs, runs, select=["los"])
    with pytest.raises(UsageError, match="No metric 'nope'"):
        compare(runs, runs, tolerances={"nope": Tolerance(1)})


def test_target_passfail_misses_are_counted_on_the_new_side_only() -> None:
    spec = MetricSpec("psnr", "PSNR", "PSNR", False, target=30, target_passfail=True)
    metrics = Metrics(available={"psnr": spec}, main_metrics=())
    ref = [compare_run("a", {"psnr": 20}), compare_run("b", {"psnr": 35})]
    new = [
        compare_run("a", {"psnr": 31}),
        compare_run("b", {"psnr": 36}),
        compare_run("c", {"psnr": 29}),
    ]
    result = compare(ref, new, metrics=metrics)
    assert [(m.input, m.value, m.target) for m in result.target_misses] == [("c", 29, 30)]
    assert result.failed and not result.regressions
    hidden = Metrics(available={"psnr": spec, "loss": LOSS}, main_metrics=("loss",))
    runs = [compare_run("a", {"psnr": 1, "loss": 1})]
    judged = compare(runs, runs, metrics=hidden)  # gated metrics are compared even if not main
    assert [s.key for s in judged.metrics] == ["loss", "psnr"] and judged.target_misses


def test_a_run_failing_where_the_reference_succeeded_is_a_regression() -> None:
    ref = [compare_run("a", {"loss": 1}), compare_run("b", {"loss": 1}, status="failed")]
    new = [compare_run("a", {}, status="failed"), compare_run("b", {"loss": 1})]
    result = compare(ref, new, metrics=DESCRIBED)
    a, b = result.rows
    assert (a.failed, a.regression, b.failed, b.regression) == (True, True, False, False)
    assert a.metrics[0].delta is None and a.changed
    running = compare(ref[:1], [compare_run("a", {}, status="running")], metrics=DESCRIBED)
    assert not running.failed  # not finished: not (yet) a failure


def test_unmatched_runs_are_listed_per_side_and_batch_filters() -> None:
    ref = [
        compare_run("a", {"x": 1}),
        compare_run("gone", {"x": 1}),
        compare_run("z", {}, batch="c"),
    ]
    new = [compare_run("a", {"x": 2}), compare_run("added", {"x": 1})]
    result = compare(ref, new)
    batch_b, batch_c = result.batches
    assert [r.input for r in batch_b.rows] == ["a"]
    assert [r.input for r in batch_b.only_ref] == ["gone"]
    assert [r.input for r in batch_b.only_new] == ["added"]
    assert (batch_c.batch, batch_c.rows, [r.input for r in batch_c.only_ref]) == ("c", (), ["z"])
    only_c = compare(ref, new, batch="c")
    assert [b.batch for b in only_c.batches] == ["c"]


def test_a_changed_configuration_still_matches_its_input() -> None:
    ref = [compare_run("a", {"x": 1}, configurations=["base"])]
    new = [compare_run("a", {"x": 2}, configurations=["base", {"gain": 2}])]
    [row] = compare(ref, new).rows
    assert row.configuration == 'base:{"gain": 2}' and row.metrics[0].delta == 1


def test_a_matrix_matches_by_configuration_then_by_matrix_point() -> None:
    def point(k: int, metrics: dict, extra: str = "") -> object:
        return compare_run(
            "a",
            metrics,
            configurations=["base", {"k": k}, *([extra] if extra else [])],
            matrix={"k": k},
        )

    ref = [point(1, {"x": 1}), point(2, {"x": 2}), point(3, {"x": 3})]
    new = [point(3, {"x": 30}), point(1, {"x": 10}), point(4, {"x": 40})]
    pairs, only_ref, only_new = match(ref, new)
    assert [(r.matrix["k"], n.matrix["k"]) for r, n in pairs] == [(3, 3), (1, 1)]  # NEW's order
    assert [r.matrix["k"] for r in only_ref] == [2] and [n.matrix["k"] for n in only_new] == [4]
    changed = [point(1, {"x": 5}, "tuned"), point(2, {"x": 6}, "tuned")]
    pairs, only_ref, _ = match(ref, changed)  # configurations differ: the matrix point decides
    assert [(r.metrics["x"], n.metrics["x"]) for r, n in pairs] == [(1, 5), (2, 6)]
    assert [r.matrix["k"] for r in only_ref] == [3]
    result = compare(ref, new)
    assert result.batches[0].by_configuration


def test_several_runs_per_input_without_matrix_match_by_configuration_and_platform() -> None:
    ref = [
        compare_run("a", {"x": 1}, configurations=["day"]),
        compare_run("a", {"x": 2}, configurations=["night"]),
        compare_run("a", {"x": 3}, configurations=["day"], platform="windows"),
    ]
    new = [
        compare_run("a", {"x": 20}, configurations=["night"]),
        compare_run("a", {"x": 30}, configurations=["day"], platform="windows"),
        compare_run("a", {"x": 10}, configurations=["day"]),
    ]
    pairs, only_ref, only_new = match(ref, new)
    assert [(r.metrics["x"], n.metrics["x"]) for r, n in pairs] == [(2, 20), (3, 30), (1, 10)]
    assert only_ref == only_new == []


def test_strings_and_rich_metrics_are_kept_and_compared_as_text() -> None:
    ref = [compare_run("a", {"verdict": "ok", "faces": {"text": "2 faces"}})]
    new = [compare_run("a", {"verdict": "ok", "faces": {"text": "3 faces"}})]
    [row] = compare(ref, new).rows
    faces, verdict = row.metrics
    assert (faces.new, faces.direction, faces.changed) == ({"text": "3 faces"}, None, True)
    assert (verdict.direction, verdict.changed) == ("same", False)


def test_the_comparison_is_json_as_the_web_board_reads_it() -> None:
    ref = [compare_run("a", {"loss": 1.0, "label": "x"}), compare_run("gone", {})]
    new = [compare_run("a", {"loss": 2.0, "label": "y"})]
    sides = {
        "ref": ExecutionSide("aaa", "main"),
        "new": ExecutionSide("bbb", "exp", "c0ffee", "dev"),
    }
    data = json.loads(json.dumps(compare(ref, new, metrics=DESCRIBED, **sides).to_dict()))
    assert data["ref"]["label"] == "main" and data["new"]["git_branch"] == "dev"
    assert data["metrics"]["loss"]["smaller_is_better"] is True
    [batch] = data["batches"]
    assert batch["rows"][0]["metrics"]["loss"] == {
        "metric": "loss",
        "ref": 1.0,
        "new": 2.0,
        "delta": 1.0,
        "delta_pct": 100.0,
        "direction": "worse",
        "regression": True,
        "allowed": 0.0,
    }
    assert [run["input"] for run in batch["only_ref"]] == ["gone"]
    assert data["summaries"]["loss"]["regressions"] == 1
    assert (data["regressions"], data["failed"]) == (1, True)


# ---------------------------------------------------------------- through the real store
def test_executions_resolve_by_id_label_branch_commit_and_prefix(
    store: Store, tmp_path: Path
) -> None:
    first = record(
        store,
        [Run("a", {})],
        label="nightly",
        output_root=tmp_path,
        git=GitInfo("1234abcd" * 5, "main", False),
    )
    second = record(
        store,
        [Run("a", {})],
        label="nightly",
        output_root=tmp_path,
        git=GitInfo("feedbeef" * 5, "dev", False),
    )
    assert store.lookups.resolve_execution(first).id == first
    assert store.lookups.resolve_execution("nightly").id == second  # the latest of a label
    assert store.lookups.resolve_execution("main").id == first
    assert store.lookups.resolve_execution("1234abcd").id == first  # a commit prefix
    assert store.lookups.resolve_execution("feedbeef" * 5).id == second
    assert store.lookups.resolve_execution(second[:6]).id == second
    with pytest.raises(StoreError, match="no execution 'nightlyy'"):
        store.lookups.resolve_execution("nightlyy")
    names = store.board.names()
    assert names["labels"] == ["nightly"] and names["branches"] == ["dev", "main"]
    assert names["ids"] == [second, first]


def test_compare_runs_reads_what_a_comparison_needs(store: Store, tmp_path: Path) -> None:
    runs = [
        Run(
            "a.raw",
            {"loss": 0.5, "tag": {"text": "t"}},
            matrix={"k": 1},
            configurations=("base", {"k": 1}),
        ),
        Run("b.raw", {}, status=RunStatus.FAILED, batch="other"),
    ]
    execution_id = record(store, runs, output_root=tmp_path)
    found = store.history.compare_runs(execution_id)
    assert [(r.batch, r.input, r.status) for r in found] == [
        ("b", "a.raw", "succeeded"),
        ("other", "b.raw", "failed"),
    ]
    first = found[0]
    assert (first.configurations, first.matrix, first.platform) == (
        ["base", {"k": 1}],
        {"k": 1},
        "linux",
    )
    assert first.metrics == {"loss": 0.5, "tag": {"text": "t"}}
    assert first.output_dir == str(tmp_path / execution_id / first.key)
    assert [r.input for r in store.history.compare_runs(execution_id, batch="other")] == ["b.raw"]
    full = store.lookups.runs(execution_id)[0]
    assert type(first) is CompareRow  # a plain store record: the store knows no CompareRun
    assert CompareRun.from_record(full) == CompareRun.from_row(first)
    assert (
        as_compare_runs([first, CompareRun.from_record(full)]) == [CompareRun.from_row(first)] * 2
    )


def test_metric_history_is_oldest_first_per_label_or_branch(store: Store, tmp_path: Path) -> None:
    ids = []
    for i, (label, branch) in enumerate(
        [("ci", "main"), ("ci", "dev"), ("exp", "main"), ("ci", "main")]
    ):
        runs = [
            Run("a", {"loss": i}),
            Run("b", {"loss": i + 1}),
            Run("c", {}, status=RunStatus.FAILED),
        ]
        ids.append(
            record(store, runs, label=label, output_root=tmp_path, git=GitInfo("ab" * 20, branch))
        )
    record(store, [Run("a", {"loss": 99}, batch="elsewhere")], output_root=tmp_path)
    history = store.history.metric_history("b", "loss")
    assert [(r.id, values) for r, values in history] == [
        (ids[0], [0, 1]),
        (ids[1], [1, 2]),
        (ids[2], [2, 3]),
        (ids[3], [3, 4]),
    ]
    assert [r.id for r, _ in store.history.metric_history("b", "loss", label="ci")] == [
        ids[0],
        ids[1],
        ids[3],
    ]
    assert [r.id for r, _ in store.history.metric_history("b", "loss", branch="main", limit=2)] == [
        ids[2],
        ids[3],
    ]
    assert store.history.metric_history("nope", "loss") == []


# ---------------------------------------------------------------- output files
def test_files_are_identical_different_missing_or_added(tmp_path: Path) -> None:
    with Store.open(storage=tmp_path) as store:
        files = {
            "same.txt": "x",
            "changed.txt": "old",
            "gone.txt": "g",
            "sub/deep.bin": "d",
            "debug.log": "1",
        }
        ref = record(
            store,
            [Run("a", {}, files=files), Run("b", {}, files={"o.txt": "1"})],
            output_root=tmp_path,
        )
        new_files = {
            "same.txt": "x",
            "changed.txt": "new",
            "sub/deep.bin": "d",
            "extra.txt": "e",
            "debug.log": "2",
        }
        new = record(
            store,
            [Run("a", {}, files=new_files), Run("b", {}, files={"o.txt": "1"})],
            output_root=tmp_path,
        )
        comparison = compare(store.history.compare_runs(ref), store.history.compare_runs(new))
    result = compare_files(comparison)
    a, b = result.runs
    statuses = {f.path: f.status for f in a.files}
    assert statuses == {
        "changed.txt": "different",  # same size, other bytes: hashed
        "debug.log": "different",
        "extra.txt": "added",
        "gone.txt": "missing",
        "same.txt": "identical",
        "sub/deep.bin": "identical",
    }  # log.txt, qaflow's own, is not compared
    assert a.failed and not b.failed and result.failed
    assert result.counts == {"identical": 3, "different": 2, "missing": 1, "added": 1}
    quiet = compare_files(comparison, ignore=["*.log", "changed.*", "gone.txt"])
    assert {f.path: f.status for f in quiet.runs[0].files} == {
        "extra.txt": "added",
        "same.txt": "identical",
        "sub/deep.bin": "identical",
    }
    assert not quiet.failed and quiet.to_dict()["counts"]["identical"] == 3


def test_runs_sharing_one_directory_are_identical(tmp_path: Path) -> None:
    """A reused result: both executions point at one directory."""
    folder = tmp_path / "shared"
    (folder / "deep").mkdir(parents=True)
    (folder / "out.bin").write_bytes(b"x")
    (folder / "deep" / "more.bin").write_bytes(b"y")
    run = compare_run("a", {}, output_dir=str(folder))
    [files] = compare_files(compare([run], [run])).runs
    assert [(f.path, f.status) for f in files.files] == [
        ("deep/more.bin", "identical"),
        ("out.bin", "identical"),
    ]


def test_relative_output_dirs_are_taken_from_the_project_root(tmp_path: Path) -> None:
    for side, content in (("r", "1"), ("n", "2")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "o.txt").write_text(content)
    comparison = compare(
        [compare_run("a", {}, output_dir="r")], [compare_run("a", {}, output_dir="n")]
    )
    [files] = compare_files(comparison, root=tmp_path).runs
    assert [f.status for f in files.files] == ["different"]
