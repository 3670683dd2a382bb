"""The example projects run end to end: examples/calibration (a DAG of batches chained with
`needs:` and a `type: script` step) and examples/pipeline (a `type: pipeline` batch).

Each test copies the example into tmp_path, so generated files never land in the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import qaflow
from qaflow.execution.report import ConsoleReporter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHARTS = ("DL50.raw", "DL55.raw", "DL65.raw", "DL75.raw")
TEST_IMAGES = ("test_image_1.raw", "test_image_2.raw", "test_image_3.raw")
MAX_ERROR_AFTER = 1.0  # degrees; the residual is ~0.1-0.3° (cast jitter ±1%, noise σ=2)
MIN_ERROR_BEFORE = 10.0  # degrees; the cast R×1.35 B×0.75 alone is ~13.4°


def copy_example(name: str, tmp_path: Path, *generated: str) -> Path:
    root = tmp_path / name
    shutil.copytree(
        EXAMPLES / name,
        root,
        ignore=shutil.ignore_patterns("output", "__pycache__", ".ruff_cache", *generated),
    )
    return root


def qa(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The whole `qa` process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def listed(root: Path, name: str) -> list[dict]:
    result = qa(root, "batch", name, "--list")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- examples/calibration -------------------------------------------------------------


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    """A copy of examples/calibration with its images generated."""
    root = copy_example("calibration", tmp_path, "data")
    made = subprocess.run(
        [sys.executable, str(root / "make_images.py")], capture_output=True, text=True, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    return root


def truth(root: Path) -> dict:
    return json.loads((root / "data" / "truth.json").read_text())


def inverse_mean_cast(root: Path) -> list[float]:
    """The gains that undo the calibration charts' average cast."""
    casts = [truth(root)["images"][chart]["cast"] for chart in CHARTS]
    return [len(casts) / sum(cast[c] for cast in casts) for c in range(3)]


def test_make_images_is_deterministic_and_writes_raw_images(calibration: Path):
    data = calibration / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted([*CHARTS, *TEST_IMAGES, "truth.json"])
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    subprocess.run(
        [sys.executable, "make_images.py"], cwd=calibration, check=True, capture_output=True
    )
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    header, pixels = before["DL50.raw"].split(b"\n", 1)
    width, height = (int(v) for v in header.split()[1:])
    assert header.startswith(b"RAW ") and len(pixels) == width * height * 3
    assert set(truth(calibration)["images"]) == {*CHARTS, *TEST_IMAGES}


def test_the_calibration_steps_work_without_qaflow(calibration: Path, tmp_path: Path):
    """qa/main.py and calibration.py called directly, as qaflow will call them."""
    main = load(calibration / "qa" / "main.py")
    chart_dirs = []
    for chart in CHARTS:
        out = tmp_path / "charts" / chart
        out.mkdir(parents=True)
        context = SimpleNamespace(
            input_path=calibration / "data" / chart, output_dir=out, configs=["base"]
        )
        metrics = main.run(context)
        assert set(metrics) == {"mean_r", "mean_g", "mean_b"}
        assert json.loads((out / "stats.json").read_text()) == metrics
        chart_dirs.append(str(out))
    step = tmp_path / "step"
    step.mkdir()
    script = [sys.executable, "calibration.py"]
    env = {**os.environ, "QA_OUTPUT_DIR": str(step)}
    done = subprocess.run(
        [*script, *chart_dirs], cwd=calibration, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "white balance" in done.stdout
    gains = json.loads((step / "calibration.cde").read_text())["white_balance_gains"]
    assert gains == pytest.approx(inverse_mean_cast(calibration), rel=0.01)

    missing = subprocess.run(
        [*script, str(tmp_path / "nowhere")],
        cwd=calibration,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "stats.json is missing" in missing.stderr

    out = tmp_path / "test"
    out.mkdir()
    image = calibration / "data" / TEST_IMAGES[0]
    cde = str(step / "calibration.cde")
    metrics = main.run(SimpleNamespace(input_path=image, output_dir=out, configs=["base", cde]))
    assert (
        metrics["color_error_after"]
        < MAX_ERROR_AFTER
        < MIN_ERROR_BEFORE
        < metrics["color_error_before"]
    )
    png = (out / "corrected.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[16:24] == bytes([0, 0, 0, 32, 0, 0, 0, 24])
    with pytest.raises(ValueError, match=r"\.cde"):
        main.run(SimpleNamespace(input_path=image, output_dir=out, configs=["base"]))


def test_qa_batch_runs_the_calibration_dag(calibration: Path):
    result = qa(calibration, "batch", "my-evaluation-batch")
    assert result.returncode == 0, result.stdout + result.stderr

    runs = listed(calibration, "my-evaluation-batch")  # and the runs it needs
    [step] = [r for r in runs if r["batch"] == "my-calibration"]
    cde = Path(step["output_dir"]) / "calibration.cde"
    gains = json.loads(cde.read_text())["white_balance_gains"]
    assert gains == pytest.approx(inverse_mean_cast(calibration), rel=0.01)
    camera = truth(calibration)["camera_cast"]
    assert gains == pytest.approx([1 / c for c in camera], rel=0.03)

    evaluation = [r for r in runs if r["batch"] == "my-evaluation-batch"]
    assert sorted(Path(r["input_path"]).name for r in evaluation) == list(TEST_IMAGES)
    for run in evaluation:
        assert run["configurations"] == ["base", str(cde)]
        metrics = json.loads((Path(run["output_dir"]) / "metrics.json").read_text())
        assert not metrics["is_failed"]
        assert metrics["color_error_before"] > MIN_ERROR_BEFORE
        assert metrics["color_error_after"] < MAX_ERROR_AFTER
        assert metrics["color_error_after"] < metrics["color_error_before"]
        assert [metrics[f"gain_{c}"] for c in "rgb"] == pytest.approx(gains)
        assert (Path(run["output_dir"]) / "corrected.png").is_file()
        assert (Path(run["output_dir"]) / "original.png").is_file()


def test_the_readme_compare_flow_reports_nothing_changed(calibration: Path):
    """Cached on one side, executed on the other, with the same results: nothing changed."""
    assert qa(calibration, "batch", "my-evaluation-batch").returncode == 0
    reference = qa(calibration, "--label", "reference", "batch", "my-evaluation-batch")
    assert "up to date" in reference.stdout  # reused: cached on the reference side
    forced = qa(calibration, "--label", "experiment", "batch", "my-evaluation-batch", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    table = qa(calibration, "compare", "reference", "experiment", "--fail-on-regression")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "changed" in table.stdout and not re.search(r"[1-9]\d* changed", table.stdout)
    assert "cached" not in table.stdout
    rows = [
        row
        for batch in json.loads(qa(calibration, "compare", "reference", "experiment",
                                   "--format", "json").stdout)["batches"]
        for row in batch["rows"]
    ]  # fmt: skip
    assert len(rows) == 8 and not any(row["changed"] for row in rows)
    markdown = qa(calibration, "compare", "reference", "experiment", "--format", "markdown")
    assert not re.search(r"[1-9]\d* changed", markdown.stdout) and "cached" not in markdown.stdout


def test_the_calibration_dag_runs_in_order(calibration: Path):
    execution = qaflow.batch(
        "my-evaluation-batch", project=calibration, reporter=ConsoleReporter(quiet=True)
    )
    runs = execution.runs()
    assert all(run.status.ok for run in runs), [(r.spec.batch, r.error) for r in runs]
    by_batch: dict[str, list] = {}
    for run in runs:
        by_batch.setdefault(run.spec.batch, []).append(run)
    assert {name: len(rs) for name, rs in by_batch.items()} == {
        "my-calibration-images": 4,
        "my-calibration": 1,
        "my-evaluation-batch": 3,
    }
    [step] = by_batch["my-calibration"]
    charts_done = max(run.result.ended_at for run in by_batch["my-calibration-images"])
    assert step.result.started_at >= charts_done
    for run in by_batch["my-evaluation-batch"]:
        assert run.result.started_at >= step.result.ended_at
    log = (step.output_dir / "log.txt").read_text()
    assert "white balance over 4 charts" in log


# --- examples/pipeline ----------------------------------------------------------------


def test_qa_batch_runs_the_pipeline(tmp_path: Path):
    root = copy_example("pipeline", tmp_path)
    result = qa(root, "batch", "my-pipeline")
    assert result.returncode == 0, result.stdout + result.stderr

    [summary_file] = (root / "output").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["previous_step_runs"] == 4
    assert summary["batches"] == {"second-batch": 2, "third-batch": 2}
    assert all(Path(d, "output.txt").is_file() for d in summary["output_dirs"])

    [steps_log] = (root / "output").rglob("steps.log")
    assert steps_log.parent == summary_file.parent  # one PIPELINE_OUTPUT_DIR for all steps
    batches = [line.split()[0] for line in steps_log.read_text().splitlines()]
    assert sorted(batches) == ["first-batch"] * 2 + ["second-batch"] * 2 + ["third-batch"] * 2
    assert batches[:2] == ["first-batch"] * 2  # step 2 ends before step 3 starts

    logs = [path.read_text() for path in (root / "output").rglob("log.txt")]
    assert any("Step 1" in log for log in logs)
    assert any("the previous step had 4 runs" in log for log in logs)
