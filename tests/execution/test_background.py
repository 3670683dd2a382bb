"""Background executions: `qa batch --no-wait`, `qa status`, `qa wait`, `qa cancel`, and
`qaflow.batch(..., wait=False)`, with real detached processes and a real store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import qaflow
from conftest import write_project
from qaflow.config.git import GitInfo
from qaflow.errors import UsageError
from qaflow.execution import background
from qaflow.execution.background import HOST, Handle, cancel, is_alive, observe, read_options
from qaflow.execution.report import RecordingReporter
from qaflow.store import Store

MAIN = """
import os
import time


def run(context):
    (context.output_dir / "pid").write_text(str(os.getpid()))
    hold, deadline = context.database / "hold", time.monotonic() + 120
    while hold.exists() and time.monotonic() < deadline:  # a test holds the runs back
        time.sleep(0.02)
    time.sleep(context.params.get("sleep", 0))
    if "bad" in str(context.input_path):
        raise ValueError("bad input")
    extra = context.extra_parameters.get("k")
    return {"slept": context.params.get("sleep", 0), "k": extra, "fwd": context.forwarded_args}
"""
BATCHES = """
b:
  inputs: [a.txt, b.txt]
  configs: [{sleep: 1}]
bad:
  inputs: [a.txt, bad.txt]
  configs: [{sleep: 0.2}]
long:
  inputs: [a.txt]
  configs: [{sleep: 30}]
plain:
  inputs: [a.txt, b.txt]
"""
ID = re.compile(r"^execution ([0-9a-f]{12}) started in the background \(pid (\d+)\)", re.M)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = write_project(
        tmp_path / "proj",
        qaboard="runners: {local: {concurrency: 2}}\n",
        batches=BATCHES,
        files=["a.txt", "b.txt", "bad.txt"],
        extra={"qa/main.py": MAIN},
    )
    Store.open(None, storage=made / "output").close()  # the schema is made once, on first use
    return made


def qa(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qaflow", "-C", str(root), *args]
    return subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=timeout, check=False
    )


def start(root: Path, *args: str) -> str:
    started = qa(root, "batch", *args, "--no-wait")
    assert started.returncode == 0, started.stderr
    found = ID.search(started.stdout)
    assert found, started.stdout
    return found.group(1)


def status(root: Path, execution_id: str) -> dict[str, Any]:
    shown = qa(root, "status", execution_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts: PID 1 may not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] in "ZX"


def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"still false after {seconds} s"
        time.sleep(0.1)
    return value


def pid_of_run(root: Path, batch: str) -> int:
    path = eventually(lambda: next((root / "output" / "runs" / batch).glob("*/*/pid"), None))
    return int(eventually(path.read_text))


def test_no_wait_returns_at_once_then_status_and_wait_follow_it(root):
    (root / "hold").touch()  # the runs wait for it to go: "running" is seen whatever the load
    started = qa(root, "batch", "b", "--no-wait")
    assert started.returncode == 0, started.stderr
    execution_id = ID.search(started.stdout).group(1)
    assert f"qa wait {execution_id}" in started.stdout and "2 run(s) in b" in started.stdout
    assert f"output/executions/{execution_id}.log" in started.stdout
    assert not list((root / "output" / "runs").rglob("metrics.json"))
    running = status(root, execution_id)
    assert running["status"] == "running" and running["exit_code"] is None
    (root / "hold").unlink()

    waited = qa(root, "wait", execution_id)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert waited.stdout.startswith(f"execution {execution_id} succeeded after")
    assert len(list((root / "output" / "runs" / "b").rglob("metrics.json"))) == 2
    done = status(root, execution_id)
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    assert done["log"] == str(root / "output" / "executions" / f"{execution_id}.log")
    assert done["batches"] == {
        "b": {**dict.fromkeys(done["batches"]["b"], 0), "done": 2, "total": 2}
    }
    listed = qa(root, "status", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [execution_id]
    table = qa(root, "status").stdout
    assert execution_id in table and "succeeded" in table and "2 done" in table
    assert "Traceback" not in (root / "output" / "executions" / f"{execution_id}.log").read_text()


def test_the_background_process_survives_its_shell_and_wait_exits_1_on_a_failure(root):
    command = f"{sys.executable} -m qaflow -C {root} batch bad --no-wait; sleep 30"
    shell = subprocess.Popen(
        ["bash", "-c", command], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    first = shell.stdout.readline()
    os.killpg(shell.pid, signal.SIGHUP)  # what closing the terminal does to its session
    shell.wait(10)
    shell.stdout.close()
    execution_id = ID.search(first).group(1)
    waited = qa(root, "wait", execution_id)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "failed" in waited.stdout and "1 done, 1 failed" in waited.stdout
    shown = status(root, execution_id)
    assert shown["status"] == "failed"
    assert shown["batches"]["bad"]["done"] == 1 and shown["batches"]["bad"]["failed"] == 1
    [failure] = shown["failures"]
    assert failure["input"] == "bad.txt" and "ValueError: bad input" in failure["error"]
    text = qa(root, "status", execution_id).stdout
    assert "✗ bad bad.txt: ValueError: bad input" in text


def test_cancel_stops_the_driver_and_kills_the_runs_in_flight(root):
    execution_id = start(root, "long")
    worker = pid_of_run(root, "long")
    driver = status(root, execution_id)["pid"]
    cancelled = qa(root, "cancel", execution_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"execution {execution_id} cancelled" in cancelled.stdout
    shown = status(root, execution_id)
    assert shown["status"] == "cancelled" and shown["counts"]["cancelled"] == 1
    assert shown["exit_code"] == 1
    eventually(lambda: gone(worker), 5)
    eventually(lambda: gone(driver), 5)
    again = qa(root, "cancel", execution_id)
    assert again.returncode == 0 and "already ended: cancelled" in again.stdout


def test_an_execution_whose_driver_died_is_interrupted(root):
    execution_id = start(root, "long")
    worker = pid_of_run(root, "long")
    os.kill(status(root, execution_id)["pid"], signal.SIGKILL)
    shown = status(root, execution_id)
    assert shown["status"] == "interrupted"
    assert shown["counts"]["interrupted"] == 1 and shown["counts"]["running"] == 0
    assert status(root, execution_id)["status"] == "interrupted"  # and it stays so
    assert qa(root, "wait", execution_id).returncode == 1  # no wait for a dead driver
    eventually(lambda: gone(worker), 5)  # the workers die with their driver


def test_a_command_reaches_the_detached_driver(root):
    """A command (once refused with wait=False: argv could not carry it) runs in the background."""
    handle = qaflow.batch(
        "plain", project=root, wait=False, command="echo '{input_path}' > {output_dir}/seen"
    )
    assert handle.wait(timeout=60) == 0
    seen = sorted(Path(run.output_dir, "seen").read_text().strip() for run in handle.runs())
    assert seen == [str(root / "a.txt"), str(root / "b.txt")]


def test_the_python_api_returns_a_handle(root):
    (root / "hold").touch()  # the runs wait for it to go: "running" is seen whatever the load
    handle = qaflow.batch(
        "b",
        project=root,
        wait=False,
        label="api",
        extra_parameters={"k": 7},
        forwarded_args=("-x",),
    )
    assert isinstance(handle, Handle)
    now = handle.status()
    assert now.status == "running" and now.exit_code is None and now.record.label == "api"
    (root / "hold").unlink()
    assert handle.wait(timeout=120) == 0
    runs = handle.runs()
    assert [run.status.value for run in runs] == ["succeeded", "succeeded"]
    assert [(r.metrics["slept"], r.metrics["k"], r.metrics["fwd"]) for r in runs] == [
        (1, 7, ["-x"])
    ] * 2
    assert handle.status().exit_code == 0

    long = qaflow.batch("long", project=root, wait=False)
    with pytest.raises(TimeoutError):
        long.wait(timeout=0.3)
    long.cancel()
    assert long.status().status == "cancelled" and long.wait() == 1


def test_usage_errors_exit_2_and_start_nothing(root):
    for command in ("wait", "status", "cancel"):
        result = qa(root, command, "zzzz")
        assert result.returncode == 2, result.stderr
        assert "no execution 'zzzz'" in result.stderr
        assert "Recent executions: none yet" in result.stderr and "Traceback" not in result.stderr
    unknown = qa(root, "batch", "nosuch", "--no-wait")
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
    assert json.loads(qa(root, "status", "--json").stdout) == []


def test_liveness_and_settling_on_the_store(root):
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Store.open(None, storage=root / "output") as store:

        def make(pid: int | None, host: str) -> str:
            made = store.writes.create_execution(
                label="t", project="p", argv=[], git=GitInfo(), pid=pid, host=host
            )
            store.writes.add_runs(
                made,
                [{"id": "k1", "batch": "b", "platform": "linux", "type": "d", "output_dir": "/o"}],
            )
            return made

        mine = store.lookups.execution(make(os.getpid(), HOST))
        assert is_alive(mine) and not is_alive(mine, now=mine.heartbeat_at + 61)
        assert is_alive(
            store.lookups.execution(make(dead.pid, "elsewhere"))
        )  # another host: heartbeat
        assert not is_alive(store.lookups.execution(make(dead.pid, HOST)))
        interrupted = observe(store, make(dead.pid, HOST))
        assert interrupted.status == "interrupted" and interrupted.counts == {"interrupted": 1}
        ended, was_running = cancel(store, make(dead.pid, HOST))
        assert was_running and ended.status == "cancelled" and ended.counts == {"cancelled": 1}


def test_the_options_reach_the_detached_driver_as_they_were_given(tmp_path):
    from qaflow.execution.driver import _options
    from qaflow.execution.model import Options
    from qaflow.plan.model import PlanOptions

    options = _options(
        {
            "label": "L",
            "configs": ["base:delta", {"url": "http://h:1", "a": [1]}, ["x:y", 2]],
            "platform": "arm",
            "database": tmp_path / "db",
            "type": "image",
            "extra_parameters": {"k": [1, {"v": "a:b"}]},
            "tuned_batches": ("b",),
            "runner": "dask",
            "dask_scheduler": "tcp://h:1",
            "concurrency": 3,
            "action_on_existing": "skip",
            "forwarded_args": ("-v", "a:b"),
            "dryrun": True,
            "command": "echo {input_path}",
            "tee": True,
            "argv": ("qa", "batch"),
            "force": True,
            "force_batches": ("c",),
            "lsf": {"queue": "night", "max_memory": 2000},
            "share": True,
            "local_timeout": 60.0,
            "dask_concurrency": 4,
            "postprocess": False,
            "shared_roots": ("/team/storage",),
            "searched": ({"t": 1}, {"t": [2]}),
            "action_on_pending": "sync",
            "outputs_prefix": "pre",
            "output_path": "/tmp/out",
            "save_manifests_in_database": True,
        }
    )
    defaults = Options()
    changed = [
        f for f in Options.__dataclass_fields__ if getattr(options, f) == getattr(defaults, f)
    ]
    assert changed == [], "give every option a value that is not its default"
    unchanged = [f for f in PlanOptions.__dataclass_fields__ if getattr(options.plan, f) is None]
    assert unchanged == []
    text = json.dumps(options.to_json())
    assert Options.from_json(json.loads(text)) == options


def test_a_background_execution_plans_what_the_foreground_planned(root):
    configs = ["base:delta", {"url": "http://h:1"}, ["x:y", 2]]
    foreground = qaflow.batch("plain", project=root, configs=configs, reporter=RecordingReporter())
    assert foreground.exit_code == 0
    handle = qaflow.batch("plain", project=root, configs=configs, wait=False)
    assert handle.wait(timeout=60) == 0
    runs = handle.runs()
    assert [run.status.value for run in runs] == ["cached", "cached"]  # the same fingerprints
    assert sorted(run.output_dir for run in runs) == sorted(
        str(run.output_dir) for run in foreground.runs()
    )
    planned = [list(run.spec.configurations) for run in foreground.runs()]
    assert [run.configurations for run in runs] == planned  # the list flattened, in both
    # the command line too: a mapping with ':' in a --config goes through as it was given
    args = ("--config", "base:delta", "--config", '{"url": "http://h:1"}')
    assert qa(root, *args, "batch", "plain").returncode == 0
    started = qa(root, *args, "batch", "plain", "--no-wait")
    execution_id = ID.search(started.stdout).group(1)
    assert qa(root, "wait", execution_id).returncode == 0
    assert status(root, execution_id)["counts"]["cached"] == 2


def test_start_refuses_what_the_foreground_refuses_and_records_nothing(root, monkeypatch):
    from qaflow.config.project import Project
    from qaflow.execution.driver import _options
    from qaflow.plan.model import PlanOptions
    from qaflow.plan.planner import plan

    project = Project.discover(root)
    the_plan = plan(project, ["plain"], PlanOptions())
    monkeypatch.setenv("QA_BATCH_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="QA_BATCH_TIMEOUT"):
        background.start(project, the_plan, ["plain"], _options({}))
    monkeypatch.delenv("QA_BATCH_TIMEOUT")
    with pytest.raises(UsageError, match="must be JSON"):
        background.start(
            project, the_plan, ["plain"], _options({"extra_parameters": {"p": Path("/x")}})
        )
    with Store.open(None, storage=root / "output") as store:
        assert store.lookups.executions() == []
    handle = background.start(project, the_plan, ["plain"], _options({"label": "L"}))
    assert read_options(root / "output", handle.id) == (
        project.root,
        ["plain"],
        _options({"label": "L"}),
    )
    assert handle.wait(timeout=60) == 0
