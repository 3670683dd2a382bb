"""QA-Board's run-level behaviour on qaflow, through real `qa` processes: `context.input_metadata`
from the entrypoint's metadata(), QA_BATCH and QA_BATCHES_FILES, --local-timeout and
`runners.local.timeout`, --no-postprocess, --keep-previous, --offline / QA_OFFLINE, and an input
type's `runners:` as the runs' job options."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from test_qaboard_batch_options import qa  # a real `qa` process, runs' calls in root/calls

from conftest import write_project

# metadata() and run() record each call (pid, QA_BATCH): the calls tell where they happened
MAIN = """
import json, os, time, uuid
from pathlib import Path

def metadata(input_path, database, rel_input_path):
    calls = Path(os.environ["CALLS_DIR"])
    calls.mkdir(exist_ok=True)
    (calls / f"metadata-{uuid.uuid4().hex}").write_text(json.dumps({
        "pid": os.getpid(), "qa_batch": os.environ.get("QA_BATCH"), "rel": str(rel_input_path),
    }))
    if "bad" in input_path.name:
        raise ValueError("no metadata for this one")
    return {"Sensor": input_path.stem.upper(), "_private": 1, "input_path": "hidden"}

def run(context):
    calls = Path(os.environ["CALLS_DIR"])
    calls.mkdir(exist_ok=True)
    (calls / f"run-{uuid.uuid4().hex}").write_text(str(os.getpid()))
    (context.output_dir / "seen.json").write_text(json.dumps({
        "input": str(context.rel_input_path), "pid": os.getpid(),
        "input_metadata": context.input_metadata,
        "obj_input_metadata": context.obj["input_metadata"],
        "forwarded_args": context.forwarded_args, "extra_parameters": context.extra_parameters,
        "qa_batch": os.environ.get("QA_BATCH"),
        "qa_batches_files": os.environ.get("QA_BATCHES_FILES"),
        "job_options": context.job_options,
        "found": sorted(p.name for p in context.output_dir.iterdir()),
    }, default=str))
    (context.output_dir / "out.txt").write_text("out")
    time.sleep(context.params.get("sleep", 0))
    return {"value": 1}

def postprocess(metrics, context):
    return {**metrics, "postprocessed": True}
"""

QABOARD = """
project: {name: proj, entrypoint: qa/main.py}
inputs:
  database: data
  batches: qa/batches.yaml
  types:
    image: {globs: '*.jpg', runners: {local: {param: from-type}, lsf: {queue: long}}}
"""

BATCHES = """
pics:
  type: image
  inputs: [a.jpg, bad.jpg]
only-a:
  type: image
  inputs: [a.jpg, b.jpg]
  only: {Sensor: A}
slow:
  type: image
  inputs: [a.jpg]
  configs: [{sleep: 120}]
short:
  type: image
  inputs: [a.jpg]
  configs: [{sleep: 2}]
"""


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "proj",
        qaboard=QABOARD,
        batches=BATCHES,
        files=["data/a.jpg", "data/b.jpg", "data/bad.jpg"],
        extra={"qa/main.py": MAIN, "other.yaml": "others:\n  type: image\n  inputs: [a.jpg]\n"},
    )


def seen(root: Path) -> dict[str, dict[str, Any]]:
    """The runs' records by input, the last one of each (runs/…/seen.json of committed
    results, and of failed attempts)."""
    found = sorted((root / "output").rglob("seen.json"), key=lambda p: p.stat().st_mtime_ns)
    return {record["input"]: record for record in (json.loads(p.read_text()) for p in found)}


def calls(root: Path, kind: str) -> list[Any]:
    folder = root / "calls"
    return [json.loads(p.read_text()) for p in folder.glob(f"{kind}-*")] if folder.is_dir() else []


def clear_calls(root: Path) -> None:
    for path in (root / "calls").glob("*"):
        path.unlink()


def metrics_of(root: Path, batch: str) -> list[dict[str, Any]]:
    listed = json.loads(qa(root, "batch", batch, "--list").stdout)
    return [json.loads(Path(r["output_dir"], "metrics.json").read_text()) for r in listed]


# ---------------------------------------------------------------- input_metadata, QA_BATCH*
def test_input_metadata_comes_from_the_entrypoints_metadata_in_the_worker(proj):
    result = qa(proj, "batch", "pics")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = seen(proj)
    # QA-Board drops the keys starting with `_`, and input_path/rel_input_path
    assert runs["a.jpg"]["input_metadata"] == {"Sensor": "A"}
    assert runs["a.jpg"]["obj_input_metadata"] == {"Sensor": "A"}
    # a metadata() that fails: told in the run's log, the run goes on with {} (as QA-Board)
    assert runs["bad.jpg"]["input_metadata"] == {}
    [bad_log] = [p for p in (proj / "output").rglob("log.txt") if "bad.jpg" in str(p)]
    assert "metadata() failed on" in bad_log.read_text()
    assert "ValueError: no metadata for this one" in bad_log.read_text()
    # called in the runs' processes only: without only:/exclude:, `qa` never imports the
    # entrypoint
    run_pids = {int(pid) for pid in (p.read_text() for p in (proj / "calls").glob("run-*"))}
    assert {c["pid"] for c in calls(proj, "metadata")} <= run_pids
    assert sorted(c["rel"] for c in calls(proj, "metadata")) == ["a.jpg", "bad.jpg"]


def test_only_calls_metadata_when_planning_with_qa_batch_set(proj):
    result = qa(proj, "batch", "only-a")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(seen(proj)) == ["a.jpg"]
    run_pids = {int(pid) for pid in (p.read_text() for p in (proj / "calls").glob("run-*"))}
    planning = [c for c in calls(proj, "metadata") if c["pid"] not in run_pids]
    assert sorted(c["rel"] for c in planning) == ["a.jpg", "b.jpg"]  # in the `qa` process
    assert {c["qa_batch"] for c in planning} == {"true"}  # as QA-Board's qa batch sets it


def test_qa_batch_sets_qa_batch_and_qa_batches_files_and_qa_run_does_not(proj):
    assert qa(proj, "batch", "pics").returncode == 0
    run = seen(proj)["a.jpg"]
    assert run["qa_batch"] == "true"
    assert json.loads(run["qa_batches_files"]) == [str(proj / "qa" / "batches.yaml")]
    other = qa(proj, "batch", "--batches-file", "other.yaml", "others", "--force")
    assert other.returncode == 0, other.stderr
    assert json.loads(seen(proj)["a.jpg"]["qa_batches_files"]) == [str(proj / "other.yaml")]
    single = qa(proj, "run", "-i", "a.jpg")
    assert single.returncode == 0, single.stderr
    run = seen(proj)["a.jpg"]
    assert run["qa_batch"] is None and run["qa_batches_files"] is None
    assert run["input_metadata"] == {"Sensor": "A"}  # `qa run` has it too
    assert {c["qa_batch"] for c in calls(proj, "metadata")} == {"true", None}


def test_an_input_types_runner_section_is_in_the_runs_job_options(proj):
    assert qa(proj, "batch", "pics").returncode == 0
    options = seen(proj)["a.jpg"]["job_options"]
    assert options["type"] == "local" and options["param"] == "from-type"
    assert "queue" not in options  # the type's lsf: section is for the lsf runner


# ---------------------------------------------------------------- --local-timeout
ID = re.compile(r"execution (\S+) started in the background")


def finished_status(root: Path, *args: str) -> dict[str, Any]:
    """Start `qa batch ARGS --no-wait`; poll `qa status ID --json` until it is no longer
    running; its final status."""
    started = qa(root, "batch", *args, "--no-wait")
    assert started.returncode == 0, started.stdout + started.stderr
    found = ID.search(started.stdout)
    assert found, started.stdout
    deadline = time.monotonic() + 240
    while True:
        shown = qa(root, "status", found.group(1), "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        if status["status"] != "running":
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def test_local_timeout_stops_a_longer_run_and_records_it_failed(proj):
    status = finished_status(proj, "slow", "--local-timeout", "1")
    assert status["status"] == "failed" and status["exit_code"] == 1
    [failure] = status["failures"]
    assert failure["status"] == "failed" and failure["error"] == "timed out after 1 s"
    assert seen(proj)["a.jpg"]["job_options"]["timeout"] == 1.0
    refused = qa(proj, "batch", "slow", "--local-timeout", "-1")
    assert refused.returncode == 2 and "--local-timeout" in refused.stderr


def test_runners_local_timeout_is_the_default_and_the_option_wins(proj):
    qaboard = proj / "qaboard.yaml"
    qaboard.write_text(qaboard.read_text() + "runners: {local: {timeout: 1}}\n")
    status = finished_status(proj, "slow")
    assert status["status"] == "failed"
    assert [f["error"] for f in status["failures"]] == ["timed out after 1 s"]
    # --local-timeout 0: no limit, over qaboard.yaml's (QA_BATCH_TIMEOUT would win over it too)
    unlimited = qa(proj, "batch", "short", "--local-timeout", "0")
    assert unlimited.returncode == 0, unlimited.stdout + unlimited.stderr
    assert seen(proj)["a.jpg"]["job_options"]["timeout"] is None
    qaboard.write_text(qaboard.read_text().replace("timeout: 1", "timeout: -1"))
    bad = qa(proj, "batch", "short")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "qaboard.yaml:8: invalid value for `runners.local.timeout`" in bad.stderr


# ---------------------------------------------------------------- --no-postprocess
def test_no_postprocess_skips_postprocess_and_keeps_those_results_apart(proj):
    skipped = qa(proj, "batch", "pics", "--no-postprocess")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert all(
        r["forwarded_args"] == [] and r["extra_parameters"] == {} for r in seen(proj).values()
    )
    listed = json.loads(qa(proj, "batch", "pics", "--no-postprocess", "--list").stdout)
    assert [r["status"] for r in listed] == ["cached", "cached"]
    assert not any(
        json.loads(Path(r["output_dir"], "metrics.json").read_text()).get("postprocessed")
        for r in listed
    )
    # a run with postprocess does not reuse a result made without it
    assert [r["status"] for r in json.loads(qa(proj, "batch", "pics", "--list").stdout)] == [
        "run",
        "run",
    ]
    clear_calls(proj)
    assert qa(proj, "batch", "pics").returncode == 0
    assert len(calls(proj, "run")) == 2
    assert all(m["postprocessed"] is True for m in metrics_of(proj, "pics"))
    # `qa run --no-postprocess` (QA-Board's option of qa run), and after `--`
    single = qa(proj, "run", "-i", "a.jpg", "--no-postprocess")
    assert single.returncode == 0, single.stderr
    [result] = (proj / "output" / "runs" / "@run").rglob("metrics.json")
    assert json.loads(result.read_text()) == {"value": 1, "is_failed": False} | {
        "compute_time": json.loads(result.read_text())["compute_time"]
    }
    forwarded = qa(proj, "batch", "pics", "--list", "--", "--no-postprocess")
    assert [r["status"] for r in json.loads(forwarded.stdout)] == ["cached", "cached"]


def test_postprocess_of_results_made_without_it_as_qaboards_two_steps(proj):
    """`qa batch --no-postprocess`, then `qa batch --action-on-existing postprocess`: run()
    once, postprocess() on its results, which then serve a plain `qa batch`."""
    assert qa(proj, "batch", "pics", "--no-postprocess").returncode == 0
    assert len(calls(proj, "run")) == 2
    clear_calls(proj)
    done = qa(proj, "batch", "pics", "--action-on-existing", "postprocess")
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls(proj, "run") == []  # postprocess only
    assert all(m["postprocessed"] is True and m["value"] == 1 for m in metrics_of(proj, "pics"))
    listed = json.loads(qa(proj, "batch", "pics", "--list").stdout)
    assert [r["status"] for r in listed] == ["cached", "cached"]
    for run in listed:  # the files run() wrote are in the postprocessed result, which is the run's
        folder = Path(run["output_dir"])
        assert (folder / "out.txt").read_text() == "out"
        assert json.loads((folder / "run.json").read_text())["fingerprint"] == run["fingerprint"]
    # the results made without postprocess are unchanged (immutable)
    apart = json.loads(qa(proj, "batch", "pics", "--no-postprocess", "--list").stdout)
    assert [r["status"] for r in apart] == ["cached", "cached"]
    assert not any(
        json.loads(Path(r["output_dir"], "metrics.json").read_text()).get("postprocessed")
        for r in apart
    )
    # with no result either way, postprocess still says so
    other = qa(proj, "batch", "only-a", "--action-on-existing", "postprocess")
    assert other.returncode != 0 and "no results to postprocess" in other.stdout + other.stderr


# ---------------------------------------------------------------- --keep-previous
def test_keep_previous_is_accepted_and_changes_nothing(proj):
    first = qa(proj, "batch", "pics")
    assert first.returncode == 0
    committed = sorted(p.resolve() for p in (proj / "output").rglob("out.txt"))
    again = qa(proj, "batch", "pics", "--keep-previous", "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    for run in seen(proj).values():
        assert "out.txt" not in run["found"]  # each attempt starts empty, as always
        assert run["forwarded_args"] == []  # a flag of QA-Board's qa run, not the user's
    assert all(path.read_text() == "out" for path in committed)  # the previous results stay
    single = qa(proj, "run", "-i", "a.jpg", "--keep-previous")
    assert single.returncode == 0 and seen(proj)["a.jpg"]["forwarded_args"] == []


# ---------------------------------------------------------------- --offline, QA_OFFLINE
def test_offline_and_qa_offline_are_accepted_and_change_nothing(proj):
    plain = qa(proj, "batch", "pics", "--list")
    assert plain.returncode == 0
    assert qa(proj, "--offline", "batch", "pics", "--list").stdout == plain.stdout
    assert qa(proj, "batch", "pics", "--list", QA_OFFLINE="true").stdout == plain.stdout
    ran = qa(proj, "--offline", "batch", "pics")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    clear_calls(proj)
    # the same runs: all reused without the flag, with the variable
    for env in ({}, {"QA_OFFLINE": "1"}):
        listed = json.loads(qa(proj, "batch", "pics", "--list", **env).stdout)
        assert [r["status"] for r in listed] == ["cached", "cached"]
    assert qa(proj, "batch", "pics", QA_OFFLINE="1").returncode == 0
    assert calls(proj, "run") == []
