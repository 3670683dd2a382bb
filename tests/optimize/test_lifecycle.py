"""A study's life across processes: killed and resumed, in the background, cancelled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from conftest import Result
from qaflow.execution.background import HOST

from .conftest import optimize, quadratic_project
from .test_optimize import complete, search, study_of

SLOW = "space: {{x: {{low: 0.0, high: 1.0}}, y: {{low: -1.0, high: 0.0}}}}\npreset_params: {{sleep: {sleep}}}\nobjective: {{loss: minimize}}\nevaluations: {evaluations}\nseed: 3\n"


def qa_process(root: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "qaflow", "-C", str(root), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def eventually(check: Callable[[], Any], seconds: float = 120.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"not true after {seconds} s"
            return value
        time.sleep(0.2)


def completed(root: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return complete(study_of(root, name))
    except Exception:  # the study (or its storage) is not made yet
        return []


def test_a_study_killed_with_sigkill_resumes_from_its_completed_trials(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    config = search(root, SLOW.format(sleep=0.3, evaluations=8))
    process = qa_process(
        root, "--label", "resume", "optimize", "-b", "quadratic", "--config-file", config
    )
    try:
        eventually(lambda: len(completed(root, "resume")) >= 2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and its pool's workers
        process.communicate()  # reaps it, closes its pipe
    before = {t.number: (t.params, t.value) for t in completed(root, "resume")}
    assert 2 <= len(before) < 8
    result = qa(
        "-C", str(root), "--label", "resume", "optimize", "-b", "quadratic", "--config-file", config
    )
    assert result.exit_code == 0, result.stderr
    assert f"resuming after {len(before)} trial(s)" in result.stdout
    after = completed(root, "resume")
    assert len(after) == 8  # the budget, counting the trials done before the kill
    assert {t.number: (t.params, t.value) for t in after if t.number in before} == before
    assert min(t.number for t in after if t.number not in before) > max(before)


def test_in_the_background_with_status_and_wait(tmp_path: Path, qa: Callable[..., Result]) -> None:
    root = quadratic_project(tmp_path / "p")
    config = search(root, SLOW.format(sleep=0, evaluations=3))
    started = optimize(qa, root, "bg", config, "--no-wait")
    assert started.exit_code == 0, started.stderr
    execution = started.stdout.split("as execution ")[1].split()[0]
    waited = qa("-C", str(root), "wait", execution, "--timeout", "300")
    assert waited.exit_code == 0, (
        waited.stdout,
        (root / "output" / "executions" / f"{execution}.log").read_text(),
    )
    status = json.loads(qa("-C", str(root), "status", execution, "--json").stdout)
    assert (status["label"], status["status"]) == ("bg", "succeeded")
    assert len(completed(root, "bg")) == 3
    log = (root / "output" / "executions" / f"{execution}.log").read_text()
    assert "[3/3] bg|iter3" in log
    shown = json.loads(qa("-C", str(root), "optimize", "--show", "bg", "--json").stdout)
    assert shown["attrs"]["execution"] == execution


def test_cancel_stops_the_trials_and_leaves_the_study_resumable(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    config = search(root, SLOW.format(sleep=600, evaluations=3))
    started = optimize(qa, root, "stop", config, "--no-wait")
    execution = started.stdout.split("as execution ")[1].split()[0]

    def trial_running() -> bool:  # the first trial's execution has its run in flight
        runs = json.loads(qa("-C", str(root), "status", "--json", "--label", "stop|iter1").stdout)
        return bool(runs) and runs[0]["counts"].get("running", 0) == 1

    eventually(trial_running)
    cancelled = qa("-C", str(root), "cancel", execution)
    assert cancelled.exit_code == 0, cancelled.stderr
    status = json.loads(qa("-C", str(root), "status", execution, "--json").stdout)
    assert status["status"] == "cancelled"
    trials = study_of(root, "stop")
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]
    assert "error" not in trials[0].user_attrs  # not counted against the budget
    first = json.loads(
        qa("-C", str(root), "status", trials[0].user_attrs["execution"], "--json").stdout
    )
    assert first["status"] == "cancelled"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_work_on_one_study(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    root = quadratic_project(tmp_path / "p", qaboard=f"database_url: {url}\n" if url else "")
    meet = root / "meet"
    meet.mkdir()
    # each process's first trial waits for a run of the other's: both worked at the same time
    text = f"space: {{x: {{low: 0.0, high: 1.0}}}}\npreset_params: {{rendezvous: '{meet}'}}\nobjective: {{loss: minimize}}\nevaluations: 6\n"
    config = search(root, text)
    args = ("--label", "shared", "optimize", "-b", "quadratic", "--config-file", config)
    processes = [qa_process(root, *args) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    lines = [[line for line in out.splitlines() if line.startswith("[")] for out in outputs]
    assert all(lines), outputs  # each process ran trials
    trials = completed(root, "shared")
    assert 6 <= len(trials) <= 7  # the budget; the other process may finish one trial more
    assert sum(map(len, lines)) == len(trials)
    assert len({t.number for t in trials}) == len(trials)


def running_trial(root: Path, name: str, pid: int) -> optuna.trial.FrozenTrial | None:
    """The study's running trial of process `pid`, once its execution is recorded."""
    try:
        trials = study_of(root, name)
    except Exception:  # the study (or its storage) is not made yet
        return None
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state == optuna.trial.TrialState.RUNNING and attrs.get("pid") == pid:
            return trial if "execution" in attrs else None
    return None


def test_a_trial_whose_process_is_killed_fails_at_once_and_the_study_goes_on(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    slow = search(root, SLOW.format(sleep=600, evaluations=3))
    gate = root / "gate"
    gate.mkdir()
    # the other process's first run waits at a gate (for a second file in `gate`): it is busy
    # with its own trial, not starting a new one, when the first process dies
    waiting = root / "waiting.yaml"
    waiting.write_text(
        f"space: {{x: {{low: 0.0, high: 1.0}}}}\npreset_params: {{rendezvous: '{gate}'}}\n"
        "objective: {loss: minimize}\nevaluations: 3\nseed: 4\n"
    )
    args = ("--label", "dies", "optimize", "-b", "quadratic", "--config-file")
    doomed = qa_process(root, *args, slow)
    other: subprocess.Popen[str] | None = None
    try:
        trial = eventually(lambda: running_trial(root, "dies", doomed.pid))
        other = qa_process(root, *args, str(waiting))
        eventually(lambda: any(gate.iterdir()))  # its first trial's run is at the gate
        os.killpg(doomed.pid, signal.SIGKILL)  # the process and its pool's workers
        doomed.communicate()

        def failed() -> optuna.trial.FrozenTrial | None:
            found = study_of(root, "dies")[trial.number]
            return found if found.state == optuna.trial.TrialState.FAIL else None

        dead = eventually(failed)
        # failed by the other process on seeing the pid gone (Optuna's own stale-trial check
        # runs only before a trial starts, and the other process is held in its first one)
        assert dead.user_attrs["interrupted"] == f"its process {doomed.pid} on {HOST} died"
        assert "error" not in dead.user_attrs  # not counted against the budget
        execution = dead.user_attrs["execution"]
        status = json.loads(qa("-C", str(root), "status", execution, "--json").stdout)
        assert status["status"] == "interrupted"
        (gate / "open").write_text("")  # let the other process go on
        output = other.communicate(timeout=600)[0]
    finally:
        for process in (doomed, other):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert other.returncode == 0, output
    assert f"dies|iter{trial.number + 1}: failed: its process {doomed.pid}" in output
    trials = study_of(root, "dies")
    later = [t for t in complete(trials) if t.number > trial.number]
    assert len(later) == 3 and len(complete(trials)) == 3  # the budget, all after the dead one
    assert all(t.user_attrs["pid"] == other.pid for t in later)
    shown = json.loads(qa("-C", str(root), "optimize", "--show", "dies", "--json").stdout)
    reasons = {t["number"]: t["error"] for t in shown["trials"]}
    assert reasons[trial.number] == dead.user_attrs["interrupted"]


def test_show_fails_the_trial_of_a_dead_process(tmp_path: Path, qa: Callable[..., Result]) -> None:
    root = quadratic_project(tmp_path / "p")
    slow = search(root, SLOW.format(sleep=600, evaluations=2))
    doomed = qa_process(
        root, "--label", "gone", "optimize", "-b", "quadratic", "--config-file", slow
    )
    try:
        trial = eventually(lambda: running_trial(root, "gone", doomed.pid))
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.communicate()
    shown = json.loads(qa("-C", str(root), "optimize", "--show", "gone", "--json").stdout)
    row = shown["trials"][trial.number]
    assert (row["state"], row["error"]) == ("fail", f"its process {doomed.pid} on {HOST} died")
    status = json.loads(qa("-C", str(root), "status", row["execution"], "--json").stdout)
    assert status["status"] == "interrupted"
