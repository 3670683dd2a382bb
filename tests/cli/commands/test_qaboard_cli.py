"""QA-Board's command line on qaflow: its sample project's shape, options, aliases, QA_* variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_project

SRC = Path(__file__).resolve().parents[3] / "src"

# A run() in the shape of QA-Board's sample project: it imports the qaboard package, reads
# QA-Board's context attributes and runs the forwarded arguments as a command.
MAIN = """
import json
import subprocess
from qaboard.config import is_ci, project

def run(context):
    values = {k: getattr(context, k) for k in ("output_dir", "input_path", "configs", "params", "platform", "forwarded_args")}
    command = " ".join(a.format(**values) for a in context.forwarded_args)
    (context.obj["output_directory"] / "seen.json").write_text(json.dumps({
        "is_ci": is_ci, "project": str(project), "label": __import__("os").environ.get("QA_LABEL"),
        "params": context.params, "configurations": context.configurations,
        "extra_parameters": context.extra_parameters, "forwarded_args": context.forwarded_args,
    }, default=str))
    if not command or context.dryrun:
        return {"is_failed": False}
    status = subprocess.run(command, shell=True, cwd=context.output_dir).returncode
    return {"is_failed": status != 0, "returncode": status}

def postprocess(metrics, context):
    return {**metrics, "had_compute_time": "compute_time" in metrics}
"""

QABOARD = """
project:
  name: user/sample_project
  url: git@github.com/user/sample_project
  type: git
  entrypoint: qa/main.py
  reference_branch: master
inputs:
  database: {linux: /, windows: 'C://'}
  batches: [qa/batches.yaml]
outputs:
  metrics: qa/metrics.yaml
  visualizations:
bit_accuracy: {}
runners:
  local: {concurrency: -1}
storage:
  linux: STORAGE
"""


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CI", "GIT_COMMIT", "QA_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    return write_project(
        tmp_path / "sample_project",
        qaboard=QABOARD.replace("STORAGE", str(tmp_path / "shared")),
        batches="my-batch:\n  inputs:\n    - A.jpg\n    - B.jpg\n",
        files=["cli_tests/a.jpg", "cli_tests/b.jpg", "cli_tests/dir/c.jpg"],
        extra={
            "qa/main.py": MAIN,
            "qa/metrics.yaml": "available_metrics:\n  is_failed: {label: Failed}\n",
            "image.batches.yaml": "images:\n  globs: ['*.jpg']\n  inputs: [cli_tests]\n  database: {linux: ., windows: .}\n",
        },
    )


def qa_process(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT", "QA_STORAGE")}
    return subprocess.run(
        [sys.executable, "-m", "qaflow", *args],
        cwd=root,
        env={**environ, "PYTHONPATH": str(SRC), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def seen(root: Path, where: str = "output") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / where).rglob("seen.json"))]


def test_the_sample_project_runs_unchanged(sample):
    result = qa_process(
        sample, "batch", "--batches-file", "image.batches.yaml", "images", "--runner=local",
        "--", 'echo "{input_path} => {output_dir}"',
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # off a terminal no line per successful run: the summary table, images: 3 runs, 3 succeeded,
    # 0 cached, 0 failed
    assert re.search(r"images\s*│\s*3\s*│\s*3\s*│\s*0\s*│\s*0\s*│", result.stdout), result.stdout
    logs = sorted((sample / "output").rglob("log.txt"))
    assert len(logs) == 3 and all(" => " in log.read_text() for log in logs)
    runs = seen(sample)
    assert {r["project"] for r in runs} == {"user/sample_project"}
    assert all(r["is_ci"] is False and r["label"] == "default" for r in runs)
    assert all(
        r["params"]["forwarded_args"] == ['echo "{input_path} => {output_dir}"'] for r in runs
    )
    metrics = [json.loads(p.read_text()) for p in (sample / "output").rglob("metrics.json")]
    assert all(m["had_compute_time"] is True for m in metrics)
    assert not (sample.parent / "shared").exists()  # local runs stay in the project's output/


def test_share_writes_to_the_storage_and_lists_write_nothing(sample):
    shared = sample.parent / "shared"
    listed = qa_process(
        sample, "--share", "batch", "--batches-file", "image.batches.yaml", "images", "--list"
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    assert not shared.exists() and not (sample / "output").exists()
    result = qa_process(
        sample, "--share", "batch", "--batches-file", "image.batches.yaml", "images"
    )
    assert result.returncode == 0, result.stderr
    assert len(seen(shared / "user/sample_project", ".")) == 3
    assert not (sample / "output").exists()


def test_forwarded_options_after_the_batch_names(sample, qa):
    runs = qa(
        "-C",
        str(sample),
        "batch",
        "--batches-file",
        "image.batches.yaml",
        "images",
        "--flag",
        "x",
        "--list",
    ).json()
    assert len(runs) == 3 and all(r["params"]["forwarded_args"] == ["--flag", "x"] for r in runs)
    assert all(r["configurations"] == [] for r in runs)


def test_deprecated_spellings_and_qa_variables(sample, qa, monkeypatch):
    monkeypatch.setenv("QA_LABEL", "from-env")
    monkeypatch.setenv("QA_PLATFORM", "arm")
    monkeypatch.setenv("QA_CONFIGURATIONS", "base")
    result = qa(
        "-C",
        str(sample),
        "--dry-run",
        "batch",
        "--groups-file",
        "image.batches.yaml",
        "--group",
        "images",
        "--list",
    )
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert {r["platform"] for r in runs} == {"arm"} and {
        tuple(r["configurations"]) for r in runs
    } == {("base",)}
    assert "'--groups-file' is deprecated, use '--batches-file'" in result.stderr
    monkeypatch.setenv("QA_DATABASE", str(sample / "cli_tests"))
    inputs = qa("-C", str(sample), "batch", "dir", "--list-inputs")
    assert inputs.stdout.split() == [str(sample / "cli_tests" / "dir")]
    removed = qa("-C", str(sample), "batch", "images", "--inputs-globs", "*.jpg")
    assert removed.exit_code == 2 and "inputs.types" in removed.stderr


def test_tuning_goes_to_extra_parameters(sample, qa, tmp_path):
    tuning = tmp_path / "t.json"
    tuning.write_text('{"a": {"x": 1}}')
    runs = qa(
        "-C", str(sample), "--configuration", '{"a": {"y": 2}}', "--tuning-filepath", str(tuning),
        "--tuning", '{"a": {"z": 3}}', "--tuning", '"delta"',
        "batch", "--batches-file", "image.batches.yaml", "images", "--list",
    ).json()  # fmt: skip
    assert runs[0]["configurations"] == [{"a": {"y": 2}}]
    assert runs[0]["params"]["a"] == {"x": 1, "y": 2, "z": 3}
    assert runs[0]["params"]["_configs"] == ["delta"]


def test_qa_run_forwards_arguments_to_the_entrypoint(sample):
    result = qa_process(
        sample, "--label", "L", "run", "-i", str(sample / "cli_tests/a.jpg"),
        'echo "{input_path} => {output_dir}"',
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = seen(sample)
    assert run["forwarded_args"] == ['echo "{input_path} => {output_dir}"'] and run["label"] == "L"
    assert run["extra_parameters"] == {"forwarded_args": run["forwarded_args"]}


def test_qa_get(sample, qa):
    assert qa("-C", str(sample), "get", "project").stdout.strip() == "user/sample_project"
    assert qa("-C", str(sample), "get", "subproject").stdout.strip() == "."
    assert qa("-C", str(sample), "get", "commit_id").exit_code == 0
    image = str(sample / "cli_tests/a.jpg")
    out = qa("-C", str(sample), "get", "-i", image, "output_dir").stdout.strip()
    assert out.startswith(str(sample / "output"))
    wrong = qa("-C", str(sample), "get", "comit_id")
    assert wrong.exit_code == 2 and "did you mean 'commit_id'" in wrong.stderr


def test_a_subproject_inherits_the_root_settings(sample, qa):
    sub = sample / "subproject"
    sub.mkdir()
    (sub / "qaboard.yaml").write_text("include: included.yaml\n")
    (sample / "included.yaml").write_text("inputs: {batches: [image.batches.yaml]}\n")
    assert qa("get", "project", cwd=sub).stdout.strip() == "user/sample_project/subproject"
    assert qa("get", "subproject", cwd=sub).stdout.strip() == "subproject"
    runs = qa("batch", "images", "--list", cwd=sub).json()
    assert len(runs) == 3


def test_assert_exists_and_local_timeout(sample, qa):
    args = ("-C", str(sample), "batch", "--batches-file", "image.batches.yaml", "images")
    missing = qa(*args, "--action-on-existing", "assert-exists")
    assert missing.exit_code == 1 and "no up-to-date result" in missing.stderr
    assert not (sample / "output" / "runs").exists()
    assert qa(*args, "--local-timeout", "600").exit_code == 0
    again = qa(*args, "--action-on-existing", "assert-exists")
    assert again.exit_code == 0, again.stderr


def test_a_local_run_reuses_the_teams_shared_result(sample, qa):
    args = ("-C", str(sample), "batch", "--batches-file", "image.batches.yaml", "images")
    shared = sample.parent / "shared" / "user/sample_project"
    assert qa("--share", *args[:2], *args[2:]).exit_code == 0  # e.g. the nightly CI
    shared_files = sorted(p for p in shared.rglob("*") if p.is_file() and "runs" in p.parts)
    before = {p: p.stat().st_mtime_ns for p in shared_files}
    local = qa(*args)
    assert local.exit_code == 0, local.stdout + local.stderr
    assert seen(sample) == []  # nothing ran locally
    listed = qa(*args, "--list").json()
    assert all(r["output_dir"].startswith(str(shared)) for r in listed)
    assert [r["status"] for r in listed] == ["cached"] * 3
    assert {p: p.stat().st_mtime_ns for p in shared_files} == before  # the shared results untouched
    forced = qa(*args, "--force")
    assert forced.exit_code == 0 and len(seen(sample)) == 3  # forced: executed locally
    assert {p: p.stat().st_mtime_ns for p in shared_files} == before
