"""`qa compare` from the command line: formats parsed back, the gates' exit codes, errors."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qaflow.config.git import GitInfo
from qaflow.store import Store
from qaflow.worker.model import RunStatus
from results_helpers import Run, record

METRICS_YAML = """\
available_metrics:
  loss: {label: Loss, short_label: L, tolerance: 0.05}
  psnr: {label: PSNR, smaller_is_better: false, suffix: dB, target: 30, target_passfail: true}
"""
REF = [
    Run(
        "a.raw", {"loss": 0.50, "psnr": 35, "note": "fine"}, files={"out.txt": "1", "same.txt": "s"}
    ),
    Run("b.raw", {"loss": 0.20, "psnr": 32}, files={"out.txt": "2", "gone.txt": "g"}),
    Run("old.raw", {"loss": 0.1, "psnr": 40}),
]
NEW = [
    Run(
        "a.raw", {"loss": 0.52, "psnr": 36, "note": "fine"}, files={"out.txt": "1", "same.txt": "s"}
    ),
    Run("b.raw", {"loss": 0.40, "psnr": 29}, files={"out.txt": "3"}),
    Run("fresh.raw", {"loss": 0.3, "psnr": 31}),
]


@pytest.fixture
def results(project: Callable[..., Path]) -> Path:
    """A project whose store holds executions `ref` (on main) and `new` (on dev)."""
    root = project(extra={"qa/metrics.yaml": METRICS_YAML})
    with Store.open(storage=root / "output") as store:
        for runs, label, branch in ((REF, "ref", "main"), (NEW, "new", "dev")):
            git = GitInfo(("a1" if label == "ref" else "b2") * 20, branch, False)
            record(store, runs, label=label, output_root=root / "output" / "runs", git=git)
    return root


def test_the_table_shows_both_values_deltas_verdicts_and_unmatched_runs(results: Path, qa) -> None:
    result = qa("-C", str(results), "compare", "ref", "new")
    assert result.exit_code == 0, result.stderr  # no gate asked for
    lines = result.stdout.splitlines()
    assert (
        lines[0].startswith("REF ")
        and "(ref main@a1a1a1a)" in lines[0]
        and "(new dev@b2b2b2b)" in lines[0]
    )
    assert "batch b: 2 matched run(s), 2 changed, 1 only in ref, 1 only in new" in lines
    rows = [line.split() for line in lines]
    assert ["b.raw", "L", "0.2", "0.4", "+0.2", "+100.0%", "✗", "regression"] in rows
    assert ["PSNR", "32dB", "29dB", "-3dB", "-9.4%", "✗", "regression"] in rows  # tolerance 0
    assert ["a.raw", "L", "0.5", "0.52", "+0.02", "+4.0%", "worse"] in rows  # within tolerance 0.05
    assert ["PSNR", "35dB", "36dB", "+1dB", "+2.9%", "better"] in rows
    assert any(
        line.strip().startswith(
            "L: 2 run(s), mean Δ +0.11 (+52.0%), median Δ +0.11; 0 better, 2 worse, 1 regression(s) (tolerance 0.05)"
        )
        for line in lines
    )
    assert "  only in ref: old.raw [base]" in lines and "  only in new: fresh.raw [base]" in lines
    assert lines[-1] == "✗ 1 regressed run(s), 1 target miss(es)"


def test_the_gate_exits_1_and_prints_the_failing_rows(results: Path, qa) -> None:
    result = qa("-C", str(results), "compare", "ref", "new", "--fail-on-regression")
    assert result.exit_code == 1
    failing = result.stdout.split("regressions (--fail-on-regression):\n")[1].splitlines()
    assert failing[0] == (
        "✗ b b.raw [base]: L 0.2 → 0.4 (+0.2, +100.0%; allowed +0.05); "
        "PSNR 32dB → 29dB (-3dB, -9.4%; allowed 0dB)"
    )
    assert failing[1] == "✗ b b.raw: PSNR 29dB is below its target 30dB"
    relaxed = qa(
        "-C",
        str(results),
        "compare",
        "ref",
        "new",
        "--fail-on-regression",
        "-m",
        "loss",
        "--tolerance",
        "loss=100%",
    )
    assert relaxed.exit_code == 0 and relaxed.stdout.splitlines()[-1] == "✓ no regression"
    strict = qa(
        "-C",
        str(results),
        "compare",
        "ref",
        "new",
        "--fail-on-regression",
        "-m",
        "loss",
        "-t",
        "loss=0.01",
    )
    assert strict.exit_code == 1 and strict.stdout.count("✗ b ") == 2  # a.raw's +0.02 now fails too


def test_json_holds_every_run_with_raw_values(results: Path, qa) -> None:
    result = qa(
        "-C", str(results), "compare", "ref", "new", "--format", "json", "--fail-on-regression"
    )
    assert result.exit_code == 1
    data = result.json()
    [batch] = data["batches"]
    assert [row["input"] for row in batch["rows"]] == ["a.raw", "b.raw"]
    assert batch["rows"][1]["metrics"]["psnr"]["delta"] == -3
    assert batch["rows"][0]["metrics"]["note"]["direction"] == "same"
    assert [r["input"] for r in batch["only_ref"]] == ["old.raw"]
    assert data["target_misses"] == [
        {
            "batch": "b",
            "input": "b.raw",
            "configuration": "base",
            "metric": "psnr",
            "value": 29,
            "target": 30.0,
        }
    ]
    assert (data["regressions"], data["failed"]) == (1, True)
    assert "✗ b b.raw [base]: L 0.2 → 0.4" in result.stderr  # the failing rows, for the CI log


def test_csv_has_a_line_per_run_and_metric(results: Path, qa) -> None:
    result = qa("-C", str(results), "compare", "ref", "new", "--format", "csv", "--metric", "loss")
    assert result.exit_code == 0
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["input"], r["match"], r["metric"]) for r in lines] == [
        ("a.raw", "matched", "loss"),
        ("b.raw", "matched", "loss"),
        ("old.raw", "only_ref", ""),
        ("fresh.raw", "only_new", ""),
    ]
    b = lines[1]
    assert (float(b["ref"]), float(b["new"]), float(b["delta"]), float(b["delta_pct"])) == (
        0.2,
        0.4,
        0.2,
        100.0,
    )
    assert (b["direction"], b["regression"], b["new_status"]) == ("worse", "true", "succeeded")
    assert (lines[2]["ref_status"], lines[2]["new_status"]) == ("succeeded", "")


def test_markdown_fits_a_merge_request_comment(results: Path, qa) -> None:
    result = qa("-C", str(results), "compare", "ref", "new", "--format", "markdown")
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith("### qa compare: `")
    assert "**✗ 1 regression(s), 1 target miss(es)**" in text
    tables = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in tables]
    assert ["Loss", "2", "0.35", "0.46", "+0.11 +52.0%", "+0.11", "0", "2", "1"] in cells
    assert ["b.raw [base]", "L", "0.2", "0.4", "+0.2", "+100.0%", "❌"] in cells
    assert ["b.raw [base]", "PSNR", "32dB", "29dB", "-3dB", "-9.4%", "❌"] in cells
    assert "only in ref: `old.raw [base]`" in text
    assert text.count("<details>") == text.count("</details>") == 2  # failing rows, batch b


def test_files_compares_outputs_and_exits_1_on_a_difference(results: Path, qa) -> None:
    result = qa("-C", str(results), "compare", "ref", "new", "--files", "-m", "loss")
    assert result.exit_code == 1
    assert (
        "output files of 2 matched run(s): 2 identical, 1 different, 1 missing, 0 added"
        in result.stdout
    )
    assert "  ✗ different b b.raw [base]: out.txt" in result.stdout
    assert "  ✗ missing   b b.raw [base]: gone.txt" in result.stdout
    ignored = qa(
        "-C",
        str(results),
        "compare",
        "ref",
        "new",
        "--files",
        "--ignore",
        "out.txt",
        "--ignore",
        "gone.*",
        "--format",
        "json",
    )
    assert ignored.exit_code == 0
    files = ignored.json()["files"]
    assert files["counts"] == {"identical": 1, "different": 0, "missing": 0, "added": 0}
    markdown = qa("-C", str(results), "compare", "ref", "new", "--files", "--format", "markdown")
    assert markdown.exit_code == 1 and "| b b.raw [base] | gone.txt | missing |" in markdown.stdout


def test_sides_resolve_by_branch_commit_and_id(results: Path, qa) -> None:
    with Store.open(storage=results / "output") as store:
        new_id = store.lookups.resolve_execution("new").id
    for ref, new in (("main", "dev"), ("a1a1a1a1", new_id[:6])):
        result = qa("-C", str(results), "compare", ref, new, "--format", "json")
        assert result.exit_code == 0 and result.json()["new"]["id"] == new_id


def test_usage_errors_exit_2_with_a_hint(results: Path, qa) -> None:
    unknown = qa("-C", str(results), "compare", "reff", "new")
    assert unknown.exit_code == 2
    assert "no execution 'reff'" in unknown.stderr and "Did you mean ref?" in unknown.stderr
    assert "Recent labels: new, ref" in unknown.stderr and "Traceback" not in unknown.stderr
    cases = [
        (
            ["--batch", "bb"],
            "--batch 'bb': neither execution has runs of that batch. Did you mean b?",
        ),
        (
            ["--metric", "los"],
            "No metric 'los' in these runs nor in metrics.yaml. Did you mean loss",
        ),
        (["--tolerance", "loss"], "expected METRIC=AMOUNT"),
        (["--tolerance", "loss=-1"], "is not a tolerance"),
        (["--ignore", "*.log"], "--ignore only applies to the file comparison: add --files."),
        (["--format", "xml"], "Invalid value for '--format'"),
    ]
    for extra, message in cases:
        result = qa("-C", str(results), "compare", "ref", "new", *extra)
        assert (result.exit_code, message in result.stderr) == (2, True), (extra, result.stderr)


def test_a_bad_metrics_file_is_a_usage_error_naming_its_line(results: Path, qa) -> None:
    (results / "qa" / "metrics.yaml").write_text(
        "available_metrics:\n  loss:\n    precision: many\n"
    )
    result = qa("-C", str(results), "compare", "ref", "new")
    assert result.exit_code == 2
    assert (
        f"{results / 'qa' / 'metrics.yaml'}:3: invalid value for `available_metrics.loss.precision`"
        in result.stderr
    )


def test_a_run_that_fails_in_new_fails_the_gate(project: Callable[..., Path], qa) -> None:
    root = project()
    with Store.open(storage=root / "output") as store:
        record(store, [Run("a", {"x": 1})], label="ref", output_root=root / "runs")
        record(
            store, [Run("a", {}, status=RunStatus.FAILED)], label="new", output_root=root / "runs"
        )
    result = qa("-C", str(root), "compare", "ref", "new", "--fail-on-regression")
    assert result.exit_code == 1
    assert "✗ b a [base]: failed (failed)" in result.stdout
    assert ["a", "status", "succeeded", "failed", "✗", "failed"] in [
        line.split() for line in result.stdout.splitlines()
    ]


MAIN = """
def run(context):
    gain = context.params.get("gain", 1)
    (context.output_dir / "out.txt").write_text(str(gain))
    return {"loss": 0.1 * gain}
"""


def test_two_real_executions_compare_end_to_end(project: Callable[..., Path], qa) -> None:
    root = project(
        batches="b:\n  inputs: [a.txt]\n  matrix: {k: [1, 2]}\n  configurations: [{k: '${matrix.k}'}]\n",
        files=["a.txt"],
        extra={"qa/main.py": MAIN, "qa/metrics.yaml": "available_metrics: {loss: {}}\n"},
    )
    assert qa("-C", str(root), "--label", "ref", "batch", "b").exit_code == 0
    assert (
        qa("-C", str(root), "--label", "new", "--tuning", '{"gain": 2}', "batch", "b").exit_code
        == 0
    )
    result = qa("-C", str(root), "compare", "ref", "new", "--format", "json", "--files")
    assert result.exit_code == 1  # out.txt differs
    [batch] = result.json()["batches"]
    assert [(r["ref"]["matrix"], r["metrics"]["loss"]["delta"]) for r in batch["rows"]] == [
        ({"k": 1}, pytest.approx(0.1)),
        ({"k": 2}, pytest.approx(0.1)),
    ]
    same = qa("-C", str(root), "compare", "ref", "ref", "--files", "--fail-on-regression")
    assert same.exit_code == 0 and "2 identical, 0 different" in same.stdout


def test_the_comparison_modules_load_only_when_a_comparison_runs() -> None:
    """`qa --help` lists compare and history without importing what they compute with."""
    code = (
        "import contextlib, io, sys\n"
        "from qaflow.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = ('qaflow.results.compare', 'qaflow.results.metrics', 'qaflow.results.filecompare', 'qaflow.results.compare_format')\n"
        "print([m for m in heavy if m in sys.modules], 'compare' in out.getvalue(), 'history' in out.getvalue())\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[] True True"


def test_on_a_terminal_worse_is_red_and_better_green(
    results: Path, qa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then draws as on a terminal
    monkeypatch.setenv("COLUMNS", "160")
    result = qa("-C", str(results), "compare", "ref", "new", "-m", "psnr")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    [a_row] = [line for line in lines if "36dB" in line]
    [b_row] = [line for line in lines if "29dB" in line]
    assert "\x1b[32m36dB" in a_row and "\x1b[32m+1dB" in a_row  # better: green
    assert "\x1b[1;31m29dB" in b_row and "regression" in b_row  # a regression: bold red
