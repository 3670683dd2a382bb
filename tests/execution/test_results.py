"""Committed results are immutable and verified: the defects of issue 14, from their reproductions.

A forced, cancelled or failing re-execution works in its own attempt directory and never hides
or damages the previous good result; a result whose files were deleted is executed again; every
run of a folder batch has its own fingerprint and directory; an upstream run that re-executes
with the same outputs leaves what needs it reused (early cutoff).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import write_project

MAIN = """
import os, time
from pathlib import Path

def run(context):
    with open(Path(context.database) / "calls.log", "a") as f:
        f.write(f"{context.batch} {context.rel_input_path}\\n")
    if (Path(context.database) / "slow").exists():
        time.sleep(60)
    if (Path(context.database) / "fail").exists():
        raise RuntimeError("asked to fail")
    (context.output_dir / "out.txt").write_text(context.input_path.read_text().upper())
    return {"size": len(context.input_path.read_text())}

def postprocess(metrics, context):
    if (Path(context.database) / "fail").exists():
        raise RuntimeError("postprocess asked to fail")
    return {**metrics, "post": metrics.get("post", 0) + 1}
"""

BATCHES = """
images: {inputs: [a.raw, b.raw]}
evaluate:
  needs: {img: {batch: images, per: input}}
  inputs: [a.raw, b.raw]
  type: script
  configs: ["cat ${img.output_dir}/out.txt > $QA_OUTPUT_DIR/seen.txt"]
"""


def make(tmp_path: Path, batches: str = BATCHES) -> Path:
    return write_project(
        tmp_path / "p", batches=batches, files=["a.raw", "b.raw"], extra={"qa/main.py": MAIN}
    )


def qa(root: Path, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check is not None:
        assert done.returncode == check, done.stdout + done.stderr
    return done


def listed(root: Path, *names: str) -> dict[str, dict]:
    """`qa batch --list`: the planned runs by "batch input"."""
    runs = json.loads(qa(root, "batch", *names, "--list", check=0).stdout)
    return {f"{r['batch']} {r['rel_input_path']}": r for r in runs}


def calls(root: Path) -> list[str]:
    path = root / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def assert_good(output_dir: str | Path, text: str) -> None:
    """A usable committed result: its files, and metrics that say it succeeded."""
    folder = Path(output_dir)
    assert (folder / "out.txt").read_text() == text
    assert json.loads((folder / "metrics.json").read_text())["is_failed"] is False


def test_a_failed_forced_re_execution_leaves_the_good_result_reused(tmp_path):
    root = make(tmp_path)
    qa(root, "batch", "images", check=0)
    runs = listed(root, "images")
    (root / "fail").write_text("")
    forced = qa(root, "batch", "images", "--force", check=1)
    assert "asked to fail" in forced.stdout
    for name, text in (("images a.raw", "A.RAW"), ("images b.raw", "B.RAW")):
        assert_good(runs[name]["output_dir"], text)  # the previous good result is intact
    # the failed attempt kept its own log, which `qa logs` and the store point to
    failed_log = qa(root, "logs", runs["images a.raw"]["id"][:8], check=0).stdout
    assert "asked to fail" in failed_log
    (root / "fail").unlink()
    again = qa(root, "batch", "images", check=0)
    assert "images: 2 run(s) up to date" in again.stdout
    assert calls(root).count("images a.raw") == 2  # the first run, the failed forced one


def test_a_cancelled_forced_re_execution_leaves_the_good_result(tmp_path):
    root = make(tmp_path)
    qa(root, "batch", "images", check=0)
    runs = listed(root, "images")
    (root / "slow").write_text("")
    driver = subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "images", "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(calls(root)) < 4:  # both forced runs are running
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)  # what `qa cancel` does
    driver.communicate(timeout=60)
    assert driver.returncode != 0
    (root / "slow").unlink()
    for name, text in (("images a.raw", "A.RAW"), ("images b.raw", "B.RAW")):
        assert_good(runs[name]["output_dir"], text)
    again = qa(root, "batch", "images", check=0)
    assert "images: 2 run(s) up to date" in again.stdout


def test_a_failing_postprocess_leaves_the_committed_result(tmp_path):
    root = make(tmp_path)
    qa(root, "batch", "images", check=0)
    runs = listed(root, "images")
    (root / "fail").write_text("")
    qa(root, "batch", "images", "--action-on-existing", "postprocess", check=1)
    for name, text in (("images a.raw", "A.RAW"), ("images b.raw", "B.RAW")):
        assert_good(runs[name]["output_dir"], text)
        metrics = json.loads(Path(runs[name]["output_dir"], "metrics.json").read_text())
        assert metrics["post"] == 1  # as the run left it
    (root / "fail").unlink()
    qa(root, "batch", "images", "--action-on-existing", "postprocess", check=0)
    metrics = json.loads(Path(runs["images a.raw"]["output_dir"], "metrics.json").read_text())
    assert metrics["post"] == 2  # a successful postprocess is committed
    assert_good(runs["images a.raw"]["output_dir"], "A.RAW")


def test_a_result_whose_files_were_deleted_is_executed_again(tmp_path):
    root = make(tmp_path)
    qa(root, "batch", "images", check=0)
    runs = listed(root, "images")
    Path(runs["images a.raw"]["output_dir"], "out.txt").unlink()
    why = qa(root, "why", "images", check=0).stdout
    assert "images a.raw: its result files are missing" in why
    dry = qa(root, "--dryrun", "batch", "images", check=0).stdout
    assert "1 to run, 1 cached" in dry
    again = qa(root, "batch", "images", check=0)
    assert "images: 1 run(s) up to date" in again.stdout
    assert_good(runs["images a.raw"]["output_dir"], "A.RAW")


def test_each_run_of_a_folder_batch_has_its_own_fingerprint_and_directory(tmp_path):
    root = write_project(
        tmp_path / "p",
        qaboard="inputs: {globs: '*.raw'}\n",  # how the folder expands into inputs
        files=["imgs/1.raw", "imgs/2.raw", "imgs/3.raw", "imgs/4.raw"],
        extra={"qa/main.py": MAIN},
    )
    runs = json.loads(qa(root, "batch", "imgs", "--list", check=0).stdout)
    assert len(runs) == 4
    assert len({r["output_dir"] for r in runs}) == 4 and all(r["fingerprint"] for r in runs)
    first = qa(root, "batch", "imgs", check=0)
    assert sorted(calls(root)) == [f"imgs imgs/{i}.raw" for i in range(1, 5)]
    for run in runs:
        assert_good(run["output_dir"], Path(run["input_path"]).read_text().upper())
    second = qa(root, "batch", "imgs", check=0)
    assert len(calls(root)) == 4, first.stdout + second.stdout
    assert "imgs: 4 run(s) up to date" in second.stdout


SUMMARY = """
images: {inputs: [a.raw, b.raw]}
summary:
  needs: images
  type: script
  configs: ["for d in ${o.output_dir for o in needs['images']}; do cat $d/out.txt; done > $QA_OUTPUT_DIR/seen.txt"]
"""


def test_an_upstream_run_with_the_same_outputs_leaves_what_needs_it_reused(tmp_path):
    root = make(tmp_path, SUMMARY)
    qa(root, "batch", "summary", check=0)
    before = listed(root, "summary")["summary None"]
    assert Path(before["output_dir"], "seen.txt").read_text() == "A.RAWB.RAW"
    (root / "a.raw").write_text("a.RAW")  # other content, the same upper-cased output
    dry = qa(root, "--dryrun", "batch", "summary", check=0).stdout
    assert "1 to run, 1 wait on upstream runs, 1 cached" in dry
    assert listed(root, "summary")["summary None"]["status"] == "waits"
    why = qa(root, "why", "summary", check=0).stdout
    assert "summary -: it waits on images a.raw, which will run" in why
    done = qa(root, "batch", "summary", check=0)
    assert calls(root)[-1] == "images a.raw" and len(calls(root)) == 3
    assert "1 run(s) reused after upstream re-ran" in done.stdout
    after = listed(root, "summary")["summary None"]
    assert after["output_dir"] == before["output_dir"] and after["status"] == "cached"
    (root / "a.raw").write_text("other")  # now images a.raw produces something else
    qa(root, "batch", "summary", check=0)
    seen = listed(root, "summary")["summary None"]["output_dir"]
    assert Path(seen, "seen.txt").read_text() == "OTHERB.RAW"
    assert seen != before["output_dir"]


def test_a_killed_forced_re_execution_leaves_the_old_result_usable(tmp_path):
    root = make(tmp_path)
    qa(root, "batch", "images", check=0)
    runs = listed(root, "images")
    for delay in (0.0, 0.3, 0.8, 1.5):
        driver = subprocess.Popen(
            [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "images", "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        for name, text in (("images a.raw", "A.RAW"), ("images b.raw", "B.RAW")):
            assert_good(runs[name]["output_dir"], text)
    again = qa(root, "batch", "images", check=0)
    assert "images: 2 run(s) up to date" in again.stdout
