"""The backend seam (`run/backends.py`): `backend_for` chooses, and every graph runner honours one contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_project
from qaflow.config.project import Project
from qaflow.execution.backends import DaskBackend, GraphRunner, LocalBackend, backend_for
from qaflow.execution.executors.dask import DaskScheduler
from qaflow.execution.executors.inline import InlineExecutor
from qaflow.execution.model import Options, Run, RunResult, RunStatus
from qaflow.execution.preflight import Preflight
from qaflow.execution.report import RecordingReporter
from qaflow.execution.scheduler import Scheduler
from qaflow.execution.settle import Decisions
from qaflow.plan.model import Plan, PlanOptions
from qaflow.plan.planner import plan


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = write_project(
        tmp_path,
        batches="a:\n  inputs: [x.txt, y.txt]\nb:\n  inputs: [x.txt]\n",
        files=["x.txt", "y.txt"],
    )
    return Project.load(root)


def planned(project: Project) -> Plan:
    return plan(project, ["a", "b"], PlanOptions())


def test_backend_for_chooses_by_the_runner_and_opens_no_pool_for_settled_runs(project):
    the_plan = planned(project)
    local = Preflight(runner="local", capacity=2, limits={}, timeout=None)
    backend = backend_for(project, the_plan, Options(), local, Decisions({}, frozenset()))
    assert isinstance(backend, LocalBackend) and backend.capacity == 2 and backend.executes
    every = {run.key: RunResult(run.key, RunStatus.CACHED) for run in the_plan.runs}
    cached = backend_for(project, the_plan, Options(), local, Decisions(every, frozenset()))
    with cached:
        assert not cached.executes and cached.pool is None
    dask = Preflight(runner="dask", capacity=2, limits={}, timeout=None)
    a_cached = {k: r for k, r in every.items() if k in {run.key for run in the_plan.runs[:2]}}
    remote = backend_for(project, the_plan, Options(), dask, Decisions(a_cached, frozenset()))
    assert isinstance(remote, DaskBackend) and remote.batches == {"b"}  # only b executes


def runners(the_plan: Plan, events: RecordingReporter, root: Path) -> list[GraphRunner]:
    """Each graph runner, for a graph whose runs are all settled: none touches its backend."""
    local = Scheduler(executor=InlineExecutor(), events=events, capacity=1)
    remote = DaskScheduler(
        cluster=None,  # type: ignore[arg-type]  # nothing to submit: never reached
        events=events,
        plan=the_plan,
        execution_id="e",
        root=root,
        storage=root / "output",
    )
    return [local, remote]


@pytest.mark.parametrize("which", [0, 1], ids=["Scheduler", "DaskScheduler"])
def test_every_graph_runner_reports_the_settled_runs_first_and_returns_them(project, which):
    the_plan = planned(project)
    settled = [
        Run(run, RunResult(run.key, RunStatus.CACHED if run.batch == "a" else RunStatus.FAILED))
        for run in the_plan.runs
    ]
    events = RecordingReporter()
    results = runners(the_plan, events, project.root)[which].run([], settled)
    assert results == {run.spec.key: run.result for run in settled}
    assert events.names("run_finished") == [
        ("run_finished", "a", "x.txt:cached"),
        ("run_finished", "a", "y.txt:cached"),
        ("run_finished", "b", "x.txt:failed"),
    ]
