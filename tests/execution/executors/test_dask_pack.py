"""Packing short runs on Dask (`dask_pack`), on a real LocalCluster of 2 worker processes on
127.0.0.1 (nannies restart a killed worker): results identical to the local runner's, and a
worker killed mid-pack loses no run."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from distributed import Client, LocalCluster, get_task_stream

import qaflow
from conftest import write_project
from qaflow.execution.executors.dask_pack import Packer
from qaflow.execution.report import ConsoleReporter
from qaflow.worker.model import RunStatus
from qaflow.worker.rundir import run_dir_of

RUNS = 60
MAIN = """
import json
import os
import signal
import time
from pathlib import Path


def run(context):
    data = context.input_path.parent
    name = context.input_path.name
    with open(data / "executed.log", "a") as log:
        log.write(name + "\\n")
    if name == context.params.get("killer") and not (data / "killed").exists():
        (data / "killed").write_text("")
        pids = json.loads((data / "pids.json").read_text())
        os.kill(pids[os.environ["QA_DASK_WORKER"]], signal.SIGKILL)  # its own Dask worker
        time.sleep(60)
    time.sleep(0.01)
    text = context.input_path.read_text()
    if "bad" in text:
        raise ValueError("bad input")
    (context.output_dir / "out.txt").write_text(text.upper())
    return {"length": len(text)}
"""
BATCHES = """
short:
  inputs: [inputs]
killed:
  inputs: [inputs]
  configs: [{killer: i040.txt}]
  retries: 1
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as connected,
    ):
        connected.wait_for_workers(2, timeout=60)
        yield connected


@pytest.fixture
def root(tmp_path: Path) -> Path:
    files = {f"inputs/i{i:03d}.txt": ("bad" if i % 17 == 5 else "x" * i) for i in range(RUNS)}
    return write_project(
        tmp_path / "proj",
        qaboard="inputs: {globs: '*.txt'}\n",
        batches=BATCHES,
        extra={"qa/main.py": MAIN, **files},
    )


def batch(root: Path, name: str, **options: Any) -> qaflow.execution.driver.Execution:
    execution = qaflow.batch(name, project=root, reporter=ConsoleReporter(quiet=True), **options)
    assert isinstance(execution, qaflow.execution.driver.Execution)
    return execution


def outcome(execution: qaflow.execution.driver.Execution) -> dict[str, tuple[Any, ...]]:
    """Per run: status, metrics (but the run's time), error, output files, run directory (a
    failed run's attempt directory is named by its execution, so differs between two)."""
    rows = {}
    for run in execution.runs():
        metrics = {k: v for k, v in run.metrics.items() if k != "compute_time"}
        manifest = run.output_dir / "manifest.outputs.json"
        files = json.loads(manifest.read_text()) if manifest.is_file() else {}
        out = run.output_dir / "out.txt"
        rows[str(run.spec.rel_input_path)] = (
            run.status,
            metrics,
            run.result.error_line,
            files,
            out.read_text() if out.is_file() else None,
            str(run_dir_of(run.output_dir)),  # not its attempt's: named by the execution
        )
    return rows


def packs_in(stream: list[dict[str, Any]]) -> list[str]:
    return [task["key"] for task in stream if str(task["key"]).startswith("qaflow-pack")]


def test_packed_runs_give_the_local_runners_results(client, root):
    with get_task_stream(client) as stream:
        on_dask = batch(root, "short", runner="dask", dask_scheduler=client.scheduler.address)
    packs = packs_in(stream.data)
    assert packs, "no run was packed"
    assert len(stream.data) < RUNS  # fewer Dask tasks than runs
    local = batch(root, "short", runner="local", force=True)
    assert outcome(on_dask) == outcome(local)
    statuses = Counter(run.status for run in on_dask.runs())
    assert statuses == {RunStatus.SUCCEEDED: RUNS - 4, RunStatus.FAILED: 4}
    failed = [run for run in on_dask.runs() if run.status is RunStatus.FAILED]
    assert all("bad input" in run.result.error_line for run in failed)
    assert all((run.output_dir / "log.txt").is_file() for run in on_dask.runs())


def test_a_worker_killed_mid_pack_loses_no_run(client, root):
    client.wait_for_workers(2, timeout=60)
    data = root / "inputs"
    (data / "pids.json").write_text(json.dumps(client.run(os.getpid)))
    with get_task_stream(client) as stream:
        execution = batch(root, "killed", runner="dask", dask_scheduler=client.scheduler.address)
    assert (data / "killed").exists(), "the run that kills its worker did not run"
    packs = packs_in(stream.data)
    assert packs, "no run was packed"
    runs = {Path(str(run.spec.rel_input_path)).name: run for run in execution.runs()}
    killer = runs["i040.txt"]
    assert killer.status is RunStatus.SUCCEEDED, killer.result.error_line
    assert killer.result.attempt == 2  # the attempt its worker died in, then one more
    bad = {name for name in runs if "bad" in (data / name).read_text()}
    # every other run ends well: a run that completed on the killed worker before its end
    # was recorded is found complete when it is tried again (CACHED), not executed twice
    assert {n for n, r in runs.items() if not r.status.ok} == bad
    executed = Counter((data / "executed.log").read_text().split())
    # a run that bad inputs fail is retried (retries: 1); the others executed once each
    expected = {name: 2 if name in bad or name == "i040.txt" else 1 for name in runs}
    assert executed == expected
    # the runs of the pack that did not finish went to Dask one by one
    alone = [task["key"] for task in stream.data if str(task["key"]).startswith("qaflow-killed")]
    assert any(killer.spec.key in key for key in alone)


class _Finished:
    """A pack's future, as `Packer.done` reads it."""

    def __init__(self, key: str, status: str = "finished") -> None:
        self.key, self.status = key, status


class _Client:
    """What `Packer.done` asks of the client: the pack's value, counted."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value, self.gathered = value, 0

    def gather(self, future: _Finished) -> dict[str, Any]:
        self.gathered += 1
        return self.value


def test_a_pack_is_fetched_only_for_runs_whose_result_event_is_missing(tmp_path):
    alone: list[Any] = []
    packer = Packer(tmp_path, lambda job: job, lambda key: key, lambda f: None, alone.append)
    a, b, c = (SimpleNamespace(key=key) for key in "abc")
    # every run reported by its event: nothing is fetched from the worker
    packer.packs["p1"] = (_Finished("p1"), [a, b])
    client = _Client({"a": "result a", "b": "result b"})
    assert packer.done(client, _Finished("p1")) == []
    assert client.gathered == 0
    # b's event missing: the pack's value gives its result; c had none (its worker died
    # mid-pack) and goes to Dask alone
    packer.packs["p2"] = (_Finished("p2"), [a, b, c])
    packer.by_key.update(b=b, c=c)
    client = _Client({"a": "result a", "b": "result b"})
    assert packer.done(client, _Finished("p2")) == [(b, "result b")]
    assert client.gathered == 1
    assert alone == [c]
