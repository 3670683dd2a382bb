"""Executing batches end to end: files of each run, the store's records, modes, limits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import qaflow
from importing import qa_importing
from qaflow.config.project import Project
from qaflow.execution.driver import _options
from qaflow.execution.model import Options
from qaflow.execution.preflight import concurrency
from qaflow.execution.report import RecordingReporter
from qaflow.plan.model import Plan, PlanOptions
from qaflow.plan.planner import plan
from qaflow.store import Store
from qaflow.worker.model import RunStatus

MAIN = """
import json, os, sys
from pathlib import Path

def run(context):
    name = context.input_path.name
    with open(Path(context.database) / "calls.txt", "a") as f:
        f.write(name + "\\n")
    print("run on", name, "configs", context.configs)
    os.system("echo child says hi")
    (context.output_dir / "out.txt").write_text(name * 2)
    (context.output_dir / "metrics.json").write_text(json.dumps({"from_file": 1, "size": -1}))
    if name == "bad.txt":
        raise RuntimeError("cannot process bad.txt")
    return {"size": len(name), "nested": {"a": [1, 2.5, "é"]}, "threshold": context.params.get("threshold")}

def postprocess(metrics, context):
    return {**metrics, "post": True}
"""


def make(
    project, *, database_url: str | None = None, batches: str | None = None, main: str = MAIN
) -> Path:
    qaboard = f"database_url: {database_url}\n" if database_url else ""
    return project(
        qaboard=qaboard,
        batches=batches
        or "ok:\n  inputs: [a.txt, bb.txt]\n  configs: [base, {threshold: 3}]\nmixed:\n  inputs: [a.txt, bad.txt]\n",
        files=["a.txt", "bb.txt", "bad.txt"],
        extra={"qa/main.py": main},
    )


def calls(root: Path) -> list[str]:
    path = root / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_a_batch_writes_each_runs_files_and_records_them(project, store_url):
    root = make(project, database_url=store_url)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        cwd=root,
        check=True,
    )
    execution = qaflow.batch(
        "ok", project=root, label="exp", reporter=RecordingReporter(), argv=("qa", "batch", "ok")
    )
    assert execution.exit_code == 0
    [a, _] = execution.runs()
    metrics = json.loads((a.output_dir / "metrics.json").read_text())
    assert (
        metrics["from_file"] == 1
        and metrics["size"] == 5
        and metrics["nested"] == {"a": [1, 2.5, "é"]}
    )
    assert metrics["threshold"] == 3 and metrics["post"] is True and metrics["is_failed"] is False
    assert metrics["compute_time"] >= 0
    assert a.metrics == metrics
    log = (a.output_dir / "log.txt").read_text()
    assert "run on a.txt configs ['base', {'threshold': 3}]" in log and "child says hi" in log
    record = json.loads((a.output_dir / "run.json").read_text())
    assert record["rel_input_path"] == "a.txt"
    # run.json: the run as `qa batch --list` shows it (RunSpec.to_dict), then the attempt's
    assert record == {
        **a.spec.to_dict(),
        "key": a.spec.key,
        "attempt": 1,
        "started_at": a.result.started_at,
    }
    assert list(record) == [*a.spec.to_dict(), "key", "attempt", "started_at"]
    manifest = json.loads((a.output_dir / "manifest.outputs.json").read_text())
    assert list(manifest) == ["out.txt"] and manifest["out.txt"]["size"] == len("a.txta.txt")

    with Store.open(store_url, storage=root / "output") as store:
        record = store.lookups.execution(execution.id)
        assert (record.label, record.status, record.argv) == (
            "exp",
            "succeeded",
            ["qa", "batch", "ok"],
        )
        assert (
            record.git.branch == "main"
            and record.git.dirty is False
            and len(record.git.commit or "") == 40
        )
        assert record.counts == {"succeeded": 2}
        rows = store.lookups.runs(execution.id)
    assert [r.rel_input_path for r in rows] == ["a.txt", "bb.txt"]
    assert [r.status for r in rows] == [RunStatus.SUCCEEDED] * 2
    assert rows[1].metrics["size"] == 6
    assert rows[0].output_dir == str(a.output_dir)
    assert all(r.started_at and r.ended_at and r.started_at <= r.ended_at and r.host for r in rows)


def test_a_failed_run_fails_the_execution_alone(project, store_url):
    root = make(project, database_url=store_url)
    execution = qaflow.batch("mixed", project=root, reporter=RecordingReporter())
    assert execution.exit_code == 1 and execution.status == "failed"
    by_name = {Path(r.spec.rel_input_path).name: r for r in execution.runs()}
    assert by_name["a.txt"].status is RunStatus.SUCCEEDED
    bad = by_name["bad.txt"]
    assert bad.status is RunStatus.FAILED
    assert bad.result.error_line == "RuntimeError: cannot process bad.txt"
    assert json.loads((bad.output_dir / "metrics.json").read_text())["is_failed"] is True
    with Store.open(store_url, storage=root / "output") as store:
        assert store.lookups.execution(execution.id).status == "failed"
        [row] = [r for r in store.lookups.runs(execution.id) if r.status is RunStatus.FAILED]
        assert "cannot process bad.txt" in (row.error or "")


def test_action_on_existing_modes(project):
    root = make(project)
    qaflow.batch("mixed", project=root, reporter=RecordingReporter())
    assert sorted(calls(root)) == ["a.txt", "bad.txt"]

    skipped = qaflow.batch(
        "mixed", project=root, action_on_existing="skip", reporter=RecordingReporter()
    )
    assert {r.spec.rel_input_path: r.status for r in skipped.runs()} == {
        "a.txt": RunStatus.CACHED,
        "bad.txt": RunStatus.FAILED,
    }
    assert sorted(calls(root)) == ["a.txt", "bad.txt", "bad.txt"]  # only the failed run ran again

    synced = qaflow.batch(
        "mixed", project=root, action_on_existing="sync", reporter=RecordingReporter()
    )
    assert {r.spec.rel_input_path: r.status for r in synced.runs()} == {
        "a.txt": RunStatus.SUCCEEDED,
        "bad.txt": RunStatus.FAILED,
    }
    assert len(calls(root)) == 3  # nothing ran

    main = root / "qa" / "main.py"
    main.write_text(main.read_text().replace('"post": True', '"post": "again"'))
    post = qaflow.batch(
        "ok", project=root, action_on_existing="postprocess", reporter=RecordingReporter()
    )
    assert post.runs()[0].status is RunStatus.FAILED  # "ok" never ran: nothing to postprocess
    qaflow.batch("ok", project=root, reporter=RecordingReporter())
    before = len(calls(root))
    post = qaflow.batch(
        "ok", project=root, action_on_existing="postprocess", reporter=RecordingReporter()
    )
    assert [r.metrics["post"] for r in post.runs()] == ["again", "again"]
    assert len(calls(root)) == before  # run() was not called


def test_sync_without_results_fails(project):
    root = make(project)
    execution = qaflow.batch(
        "ok", project=root, action_on_existing="sync", reporter=RecordingReporter()
    )
    assert execution.exit_code == 1
    assert all("no existing results to sync" in (r.error or "") for r in execution.runs())
    assert calls(root) == []


def test_retries_and_timeout_from_the_batch_file(project):
    main = """
import time
from pathlib import Path
def run(context):
    if context.input_path.name == "a.txt":
        counter = context.output_dir.parent / "tries"
        tries = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(tries))
        if tries < 3:
            raise ValueError(f"flaky {tries}")
        return {"tries": tries}
    time.sleep(30)
"""
    root = make(
        project,
        main=main,
        batches="flaky:\n  inputs: [a.txt]\n  retries: 2\nslow:\n  inputs: [bb.txt]\n  timeout: 0.5\n",
    )
    execution = qaflow.batch(["flaky", "slow"], project=root, reporter=RecordingReporter())
    flaky, slow = execution.runs()
    assert (
        flaky.status is RunStatus.SUCCEEDED
        and flaky.metrics["tries"] == 3
        and flaky.result.attempt == 3
    )
    assert slow.status is RunStatus.FAILED and "timed out" in (slow.error or "")
    assert slow.result.duration < 30  # the run sleeps 30 s: it was cut, whatever the load


def test_concurrency_precedence(project, monkeypatch):
    root = make(
        project,
        batches="a:\n  inputs: [a.txt]\n  local: {concurrency: 5}\nb:\n  inputs: [bb.txt]\n",
    )
    p = Project.load(root)
    the_plan: Plan = plan(p, ["a", "b"], PlanOptions())
    monkeypatch.delenv("QA_BATCH_CONCURRENCY", raising=False)
    assert concurrency(p, the_plan, 3) == (3, {})
    cpus = os.cpu_count() or 1
    assert concurrency(p, the_plan, None) == (max(cpus, 5), {"a": 5})
    monkeypatch.setenv("QA_BATCH_CONCURRENCY", "7")
    assert concurrency(p, the_plan, None) == (7, {"a": 5})
    (root / "qaboard.yaml").write_text("runners:\n  local: {concurrency: 1}\n")
    assert concurrency(Project.load(root), the_plan, None) == (5, {"a": 5})
    assert concurrency(p, the_plan, -1) == (cpus, {})


def test_options_are_validated():
    with pytest.raises(TypeError, match="unknown option"):
        _options({"colour": 1})
    assert _options({"label": "x", "platform": "arm"}) == Options(
        label="x", plan=PlanOptions(label="x", platform="arm")
    )


def test_a_no_op_re_run_is_recorded_whole_and_finished(project, store_url):
    root = make(project, database_url=store_url)
    first = qaflow.batch("ok", project=root, reporter=RecordingReporter())
    reporter = RecordingReporter()
    again = qaflow.batch("ok", project=root, reporter=reporter, label="again")
    assert again.id != first.id and again.exit_code == 0
    assert {run.status for run in again.runs()} == {RunStatus.CACHED}
    assert len(calls(root)) == len(first.runs())  # nothing executed the second time
    assert [e[0] for e in reporter.events].count("run_finished") == len(first.runs())
    with Store.open(store_url, storage=Project.discover(root).storage) as store:
        record = store.lookups.execution(again.id)
        runs = store.lookups.runs(again.id)
    assert record.status == "succeeded" and record.label == "again" and record.ended_at
    assert record.counts == {"cached": len(first.runs())}
    assert [run.key for run in runs] == [spec.key for spec in again.plan.runs]


def test_a_no_op_re_run_of_the_default_store_needs_no_sqlalchemy(project):
    """The default SQLite store is read and written through sqlite3 when nothing runs
    (store/direct.py): the `qa` process imports no SQLAlchemy, and what it recorded reads
    back through the Store as a whole, finished execution."""
    root = make(project)
    first = qaflow.batch("ok", project=root, reporter=RecordingReporter())
    again, imported = qa_importing(root, "--label", "again", "batch", "ok")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "qaflow.store.direct" in imported
    assert not {name for name in imported if name.split(".")[0] in ("sqlalchemy", "alembic")}
    assert len(calls(root)) == len(first.runs())  # nothing executed the second time
    with Store.open(None, storage=Project.discover(root).storage) as store:
        [record] = store.lookups.executions(label="again")
        runs = store.lookups.runs(record.id)
    assert record.status == "succeeded" and record.ended_at and record.pid
    assert record.counts == {"cached": len(first.runs())}
    assert [run.key for run in runs] == [spec.key for spec in first.plan.runs]
    assert {run.fingerprint for run in runs} == {spec.fingerprint for spec in first.plan.runs}


def test_an_execution_on_the_default_store_needs_no_sqlalchemy(project):
    """A project's first `qa batch` creates the default SQLite store and records its
    execution through sqlite3 (store/direct.py): no SQLAlchemy imported, and every start,
    result and the end read back through the Store."""
    root = make(project)
    mixed, imported = qa_importing(root, "--label", "mixed", "batch", "mixed")
    assert mixed.returncode == 1, mixed.stderr[-2000:]  # bad.txt fails
    assert "qaflow.store.direct" in imported
    assert not {name for name in imported if name.split(".")[0] in ("sqlalchemy", "alembic")}
    with Store.open(None, storage=Project.discover(root).storage) as store:
        [record] = store.lookups.executions(label="mixed")
        runs = {Path(run.input_path or "").name: run for run in store.lookups.runs(record.id)}
    assert record.status == "failed" and record.ended_at and record.pid and record.heartbeat_at
    assert record.counts == {"succeeded": 1, "failed": 1}
    good, bad = runs["a.txt"], runs["bad.txt"]
    assert good.status is RunStatus.SUCCEEDED and good.metrics["size"] == 5
    assert good.metrics["nested"] == {"a": [1, 2.5, "é"]} and good.host and good.fingerprint
    assert good.started_at and good.ended_at and good.started_at <= good.ended_at
    assert (Path(good.output_dir) / "out.txt").read_text() == "a.txta.txt"
    assert bad.status is RunStatus.FAILED and "cannot process bad.txt" in (bad.error or "")


class Breaking(RecordingReporter):
    """A reporter that fails once a run finished: the driver fails after recording."""

    def run_finished(self, run, result):  # type: ignore[no-untyped-def]
        raise OSError("the terminal is gone")


def test_a_driver_failing_on_the_default_store_records_its_execution_interrupted(project):
    root = make(project)
    qaflow.batch("ok", project=root, reporter=RecordingReporter())  # creates the store
    with pytest.raises(OSError, match="the terminal is gone"):
        qaflow.batch("mixed", project=root, reporter=Breaking(), label="broken")
    with Store.open(None, storage=Project.discover(root).storage) as store:
        [record] = store.lookups.executions(label="broken")
        runs = store.lookups.runs(record.id)
    assert record.status == "interrupted" and record.ended_at
    assert all(run.status.finished for run in runs)
