"""The recorder writes an execution's events to a real SQLite store, coalesced: its thread
takes the first event, sleeps, then writes everything queued in one transaction; `flush`
wakes it at once and writes what is left."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conftest import write_project
from qaflow.config.git import GitInfo
from qaflow.config.project import Project
from qaflow.execution.recorder import StoreRecorder
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan
from qaflow.store import Store
from qaflow.store.direct import DirectStore
from qaflow.worker.model import RunResult, RunStatus, hostname

BATCHES = """
b:
  inputs: [a.txt, b.txt, c.txt, d.txt, e.txt, f.txt]
  configs: [{x: 1}, {x: 2}]
"""
FILES = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt"]
DEADLINE = 60.0  # seconds: far longer than a flush, far shorter than the interval below


class Counting:
    """A real store whose `record` calls (its transactions of events) are counted."""

    def __init__(self, store: DirectStore) -> None:
        self.store = store
        self.records = 0
        self.lookups = store
        self.writes = self

    def record(self, *args: object, **kwargs: object) -> None:
        self.records += 1
        self.store.record(*args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def planned(tmp_path: Path):
    root = write_project(tmp_path / "proj", batches=BATCHES, files=FILES)
    project = Project.load(root)
    the_plan = plan(project, ["b"], PlanOptions())
    assert len(the_plan.runs) == 6  # configs: [...] is one run's configurations, merged
    store = DirectStore.open(None, project.storage, create=True)
    assert store is not None
    yield project, the_plan, store
    store.close()


def new_execution(store: DirectStore) -> str:
    return store.create_execution(
        label="l",
        project="p",
        argv=["qa"],
        git=GitInfo(commit=None, branch=None, dirty=None),
        pid=1,
        host="h",
    )


def test_events_are_written_together_and_flush_wakes_the_writer(planned):
    project, the_plan, store = planned
    execution_id = new_execution(store)
    counting = Counting(store)
    # an interval no test waits for: only flush() can end the writer's sleep
    recorder = StoreRecorder(store=counting, execution_id=execution_id, interval=3600.0)  # type: ignore[arg-type]
    recorder.execution_started(execution_id, the_plan)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED]
    for i, run in enumerate(the_plan.runs):
        recorder.run_started(run, 1)
        recorder.run_finished(run, RunResult(run.key, statuses[i % 2], metrics={"i": i}))
    flushed = threading.Thread(target=recorder.flush, daemon=True)
    flushed.start()
    flushed.join(DEADLINE)
    assert not flushed.is_alive(), "flush() waited for the writer's interval"
    # one transaction for the 12 events: the writer slept, then took them all
    assert counting.records == 1
    with Store.open(None, storage=project.storage) as full:
        runs = {r.key: r for r in full.lookups.runs(execution_id)}
    assert len(runs) == 6
    for i, run in enumerate(the_plan.runs):
        assert runs[run.key].status == statuses[i % 2].value
        assert runs[run.key].metrics == {"i": i}
        assert runs[run.key].host == hostname()  # recorded when it started


def test_events_after_a_write_are_written_by_the_next(planned):
    project, the_plan, store = planned
    execution_id = new_execution(store)
    counting = Counting(store)
    recorder = StoreRecorder(store=counting, execution_id=execution_id, interval=0.05)  # type: ignore[arg-type]
    recorder.execution_started(execution_id, the_plan)
    first, *others = the_plan.runs
    recorder.run_finished(first, RunResult(first.key, RunStatus.SUCCEEDED))

    def first_written() -> bool:
        with Store.open(None, storage=project.storage) as full:
            [run] = [r for r in full.lookups.runs(execution_id) if r.key == first.key]
        return run.status == "succeeded"

    waited = threading.Event()
    for _ in range(int(DEADLINE / 0.05)):  # polled: the writer writes after its interval
        if first_written():
            break
        waited.wait(0.05)
    assert first_written()
    assert counting.records == 1
    for run in others:
        recorder.run_finished(run, RunResult(run.key, RunStatus.SUCCEEDED))
    recorder.flush()
    assert counting.records >= 2
    with Store.open(None, storage=project.storage) as full:
        assert {r.status for r in full.lookups.runs(execution_id)} == {"succeeded"}
