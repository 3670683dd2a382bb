"""Reuse of up-to-date results: content fingerprints, deps, forcing, `qa why`, concurrency, crashes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qaflow
from qaflow.execution.report import RecordingReporter
from qaflow.store import Store
from qaflow.worker.model import RunStatus

ROOT = Path(__file__).resolve().parents[2]

MAIN = """
import os, time
from pathlib import Path

def run(context):
    with open(Path(context.database) / "calls.log", "a") as f:
        f.write(f"{context.batch} {context.rel_input_path}\\n")
    time.sleep(float(os.environ.get("QA_TEST_SLEEP", "0")))
    return {"size": len(context.input_path.read_bytes())}
"""

BATCHES = """
images: {inputs: [a.raw, b.raw, c.raw]}
evaluate:
  needs: {img: {batch: images, per: input}}
  inputs: [a.raw, b.raw, c.raw]
  configs: ["${img.output_dir}"]
summary:
  needs: evaluate
  type: script
  configs: ["echo ${len(needs['evaluate'])} > $QA_OUTPUT_DIR/n.txt"]
"""


def make(project, batches: str = BATCHES, **extra: str) -> Path:
    return project(
        batches=batches, files=["a.raw", "b.raw", "c.raw"], extra={"qa/main.py": MAIN, **extra}
    )


def calls(root: Path) -> list[str]:
    path = root / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def statuses(execution: qaflow.Execution) -> dict[tuple[str, str | None], RunStatus]:
    return {(r.spec.batch, r.spec.rel_input_path): r.status for r in execution.runs()}


def run_batch(root: Path, name: str = "summary", **options: object) -> qaflow.Execution:
    return qaflow.batch(name, project=root, reporter=RecordingReporter(), **options)


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    info = path.stat()
    assert len(data) == info.st_size
    path.write_bytes(data)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_second_run_executes_nothing_and_reports_cached(project, qa):
    root = make(project)
    first = run_batch(root)
    assert first.exit_code == 0 and len(calls(root)) == 6
    second = run_batch(root, label="another-label")
    assert set(statuses(second).values()) == {RunStatus.CACHED}
    assert len(calls(root)) == 6
    assert [r.metrics["size"] for r in second.runs() if r.spec.batch == "images"] == [5, 5, 5]
    listed = qa("-C", str(root), "batch", "summary", "--list").json()
    assert {r["status"] for r in listed} == {"cached"}
    dry = qa("-C", str(root), "--dryrun", "batch", "summary").stdout.splitlines()
    assert all(line.startswith("cached") for line in dry[:-1])
    assert "7 run(s) planned, 0 to run, 7 cached" in dry[-1]
    result = qa("-C", str(root), "batch", "summary")
    assert result.exit_code == 0 and "7 run(s)" in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith("= cached")] == [
        "= cached    images: 3 run(s) up to date",
        "= cached    evaluate: 3 run(s) up to date",
        "= cached    summary: 1 run(s) up to date",
    ]


def test_changing_one_inputs_content_reruns_that_input_and_what_depends_on_it(project, qa):
    root = make(project)
    run_batch(root)
    cached = run_batch(root)  # why then compares with reused runs, which record no parts
    with Store.open(None, storage=root / "output") as store:
        rows = store.lookups.runs(cached.id)
        assert {r.status for r in rows} == {RunStatus.CACHED}
        assert not any("fingerprint_parts" in r.spec for r in rows)
        plan = {r.spec.key: r.spec for r in cached.runs()}
        recorded = store.lookups.fingerprint_parts([r.fingerprint for r in rows])
        assert all(recorded[r.fingerprint] == plan[r.key].parts for r in rows)
    rewrite_keeping_size_and_mtime(root / "b.raw", b"CHANG")
    why = qa("-C", str(root), "why", "summary").stdout.splitlines()
    assert why[0] == "images b.raw: the input's content changed"
    assert why[1].startswith("evaluate b.raw: ") and "the input's content changed" in why[1]
    assert why[2] == (
        "summary -: it waits on evaluate b.raw, which will run; "
        "it is reused if what they produce does not change"
    )
    assert why[-1] == "4 run(s) up to date, 2 would run, 1 wait(s) on upstream runs."
    before = len(calls(root))
    execution = run_batch(root)
    assert calls(root)[before:] == ["images b.raw", "evaluate b.raw"]
    changed = {k for k, v in statuses(execution).items() if v is RunStatus.SUCCEEDED}
    assert changed == {("images", "b.raw"), ("evaluate", "b.raw")}
    # early cutoff: evaluate b.raw produced what it did before, so summary is reused
    assert statuses(execution)[("summary", None)] is RunStatus.CACHED


def test_touching_only_the_mtime_reruns_nothing(project):
    root = make(project)
    run_batch(root)
    later = time.time() + 100
    os.utime(root / "a.raw", (later, later))
    execution = run_batch(root)
    assert set(statuses(execution).values()) == {RunStatus.CACHED}
    assert len(calls(root)) == 6


def test_a_deps_file_reruns_the_batches_that_declare_it(project, qa):
    batches = BATCHES.replace(
        "images: {inputs: [a.raw, b.raw, c.raw]}",
        "images: {inputs: [a.raw, b.raw, c.raw], deps: [algo/*.py]}",
    )
    root = make(project, batches, **{"algo/core.py": "X = 1\n", "algo/other.txt": "not a dep\n"})
    run_batch(root)
    (root / "algo" / "other.txt").write_text("changed, but not a dep\n")
    assert set(statuses(run_batch(root)).values()) == {RunStatus.CACHED}
    (root / "algo" / "core.py").write_text("X = 2\n")
    why = qa("-C", str(root), "why", "summary").stdout
    assert "images a.raw: the code changed (a `deps` file changed)" in why
    execution = run_batch(root)
    ran = {k for k, v in statuses(execution).items() if v is RunStatus.SUCCEEDED}
    assert {b for b, _ in ran} == {"images"}  # what needs it is reused: the same outputs
    assert sorted(calls(root)[-3:]) == ["images a.raw", "images b.raw", "images c.raw"]


def test_a_changed_configuration_is_named_by_why(project, qa):
    root = make(project)
    run_batch(root)
    (root / "qa" / "batches.yaml").write_text(
        BATCHES.replace(
            "images: {inputs: [a.raw, b.raw, c.raw]}",
            "images: {inputs: [a.raw, b.raw, c.raw], configs: [new]}",
        )
    )
    why = qa("-C", str(root), "why", "images").stdout.splitlines()
    assert why[:3] == [f"images {n}.raw: its configurations changed" for n in "abc"]


def test_why_for_runs_that_never_ran_or_failed(project, qa):
    root = make(project, "b: {inputs: [a.raw]}\n")
    assert qa("-C", str(root), "why", "b").stdout.splitlines()[0] == "b a.raw: it has never run"
    (root / "qa" / "main.py").write_text("def run(context):\n    raise ValueError('nope')\n")
    run_batch(root, "b")
    assert (
        qa("-C", str(root), "why", "b").stdout.splitlines()[0]
        == "b a.raw: it has never succeeded (last: failed: ValueError: nope)"
    )


def test_force_and_force_batch(project):
    root = make(project)
    run_batch(root)
    forced = run_batch(root, force_batches=("evaluate",))
    assert {b for (b, _), s in statuses(forced).items() if s is RunStatus.SUCCEEDED} == {
        "evaluate"
    }  # summary is reused: evaluate produced the same outputs (early cutoff)
    assert {b for (b, _), s in statuses(forced).items() if s is RunStatus.CACHED} == {
        "images",
        "summary",
    }
    everything = run_batch(root, force=True)
    assert set(statuses(everything).values()) == {RunStatus.SUCCEEDED}


def test_a_failed_result_is_not_reused_and_reruns_downstream(project):
    main = MAIN.replace(
        '    return {"size"',
        '    if Path(context.database, "fail-b").exists() and str(context.rel_input_path) == "b.raw":\n        raise RuntimeError("b fails")\n    return {"size"',
    )
    root = make(project, **{"qa/main.py": main, "fail-b": ""})
    first = run_batch(root)
    assert statuses(first)[("images", "b.raw")] is RunStatus.FAILED
    (root / "fail-b").unlink()
    second = run_batch(root)
    assert statuses(second)[("images", "b.raw")] is RunStatus.SUCCEEDED
    assert statuses(second)[("images", "a.raw")] is RunStatus.CACHED
    assert statuses(second)[("evaluate", "b.raw")] is RunStatus.SUCCEEDED


def test_output_directories_are_addressed_by_fingerprint(project):
    root = make(project)
    old = {(r.spec.batch, r.spec.rel_input_path): r.output_dir for r in run_batch(root).runs()}
    rewrite_keeping_size_and_mtime(root / "a.raw", b"AAAAA")
    new = {(r.spec.batch, r.spec.rel_input_path): r.output_dir for r in run_batch(root).runs()}
    assert new[("images", "a.raw")] != old[("images", "a.raw")]
    assert (old[("images", "a.raw")] / "metrics.json").exists()  # the old result is still there
    assert new[("images", "b.raw")] == old[("images", "b.raw")]


def _qa(root: Path, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kwargs,
    )  # type: ignore[call-overload]


def test_two_concurrent_processes_execute_each_shared_run_once(project):
    batches = "shared: {inputs: [a.raw, b.raw, c.raw]}\nleft: {needs: shared, inputs: [a.raw]}\nright: {needs: shared, inputs: [b.raw]}\n"
    root = make(project, batches)
    env = {**os.environ, "QA_TEST_SLEEP": "0.5"}
    first = _qa(root, "batch", "left", "--local-concurrency", "3", env=env)
    second = _qa(root, "batch", "right", "--local-concurrency", "3", env=env)
    errors = [first.communicate(timeout=60)[1], second.communicate(timeout=60)[1]]
    assert (first.returncode, second.returncode) == (0, 0), errors
    seen = calls(root)
    assert sorted(seen) == [
        "left a.raw",
        "right b.raw",
        "shared a.raw",
        "shared b.raw",
        "shared c.raw",
    ]


def test_killing_the_driver_at_random_points_loses_nothing_and_repeats_no_completed_run(tmp_path):
    rng = random.Random(1234)
    root = tmp_path / "p"
    names = [f"i{i:03d}.raw" for i in range(300)]
    (root / "data").mkdir(parents=True)
    for name in names:
        (root / "data" / name).write_text("x")
    (root / "qa").mkdir()
    (root / "qaboard.yaml").write_text("inputs:\n  database: data\n")
    (root / "qa" / "batches.yaml").write_text("big:\n  inputs: [" + ", ".join(names) + "]\n")
    (root / "qa" / "main.py").write_text(MAIN)
    env = {**os.environ, "QA_TEST_SLEEP": "0.01"}
    frozen: dict[str, int] = {}  # completed runs -> how many times they had started then
    done: set[str] = set()
    for _trial in range(4):
        driver = _qa(root, "batch", "big", "--local-concurrency", "2", env=env)
        # killed at a random point of its progress, not of the clock (a loaded machine is slow)
        goal = len(done) + rng.randint(1, 40)
        deadline = time.monotonic() + 120
        while sum(_completed(root, name) for name in names) < goal:
            assert driver.poll() is None, "the driver ended before it was killed"
            assert time.monotonic() < deadline, f"fewer than {goal} runs done after 120 s"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=10)
        time.sleep(0.3)  # the workers notice their driver died and exit
        starts = _starts(root)
        done = {name for name in names if _completed(root, name)}
        for name in done:
            frozen.setdefault(name, starts.get(name, 0))
    final = _qa(root, "batch", "big", "--local-concurrency", "2", env=env)
    error = final.communicate(timeout=120)[1]
    assert final.returncode == 0, error
    starts = _starts(root)
    assert all(_completed(root, name) for name in names)
    repeated = {name: (n, starts[name]) for name, n in frozen.items() if starts[name] != n}
    assert repeated == {}, "completed runs were executed again"
    with sqlite3.connect(root / "output" / "qaflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        succeeded = db.execute(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND metrics IS NULL"
        ).fetchone()
    assert succeeded == (0,)


def _starts(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in calls(root / "data"):
        name = line.split()[-1]
        counts[name] = counts.get(name, 0) + 1
    return counts


def _completed(root: Path, name: str) -> bool:
    """Whether the run has a committed result: its fingerprint's directory (a symlink to
    the committed attempt), not an attempt directory (`FP12.<attempt>`) that a kill may have
    stopped between its metrics.json and the commit."""
    for metrics in (root / "output" / "runs" / "big" / name).glob("*/metrics.json"):
        if "." in metrics.parent.name:
            continue
        try:
            if json.loads(metrics.read_text()).get("is_failed") is False:
                return True
        except ValueError:
            continue
    return False


@pytest.mark.parametrize("example", ["calibration"])
def test_the_second_run_of_the_calibration_example_executes_nothing(example, tmp_path):
    root = tmp_path / example
    shutil.copytree(
        ROOT / "examples" / example, root, ignore=shutil.ignore_patterns("output", "data")
    )
    subprocess.run([sys.executable, str(root / "make_images.py")], check=True, capture_output=True)
    first = run_batch(root, "my-evaluation-batch")
    assert first.exit_code == 0
    second = run_batch(root, "my-evaluation-batch")
    assert set(statuses(second).values()) == {RunStatus.CACHED}
    assert [
        r.metrics["color_error_after"]
        for r in second.runs()
        if r.spec.batch == "my-evaluation-batch"
    ] == [
        r.metrics["color_error_after"]
        for r in first.runs()
        if r.spec.batch == "my-evaluation-batch"
    ]
