"""`qa optimize` on a small project whose metric is a known quadratic of two parameters."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from conftest import Result
from qaflow.config.project import Project
from qaflow.optimize.storage import load_study, opened_storage

from .conftest import optimize, quadratic_project

OPTIMUM = (0.3, -0.2)
TOLERANCE = 0.15  # distance to the optimum the best trial must reach within 30 trials


class Trials(list[optuna.trial.FrozenTrial]):
    """A study's trials, read once (the storage closed after)."""

    @property
    def best(self) -> optuna.trial.FrozenTrial:
        values = complete(self)
        return min(values, key=lambda t: t.value)


def study_of(root: Path, name: str) -> Trials:
    with opened_storage(Project.discover(root)) as storage:
        return Trials(load_study(storage, name).get_trials())


def complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def search(root: Path, text: str) -> str:
    (root / "s.yaml").write_text(text)
    return str(root / "s.yaml")


def test_finds_the_optimum_within_its_budget_deterministically(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    result = optimize(qa, root, "tune", str(root / "search.yaml"))
    assert result.exit_code == 0, result.stderr
    study = study_of(root, "tune")
    assert len(complete(study)) == 30
    best = study.best
    x, y = best.params["x"], best.params["y"]
    assert ((x - OPTIMUM[0]) ** 2 + (y - OPTIMUM[1]) ** 2) ** 0.5 <= TOLERANCE
    assert best.value == pytest.approx((x - 0.3) ** 2 + (y + 0.2) ** 2)
    assert "best objective" in result.stdout and "[30/30] tune|iter30" in result.stdout
    # each trial is an execution labelled LABEL|iterN whose run got the parameters
    status = qa("-C", str(root), "status", best.user_attrs["execution"], "--json")
    assert json.loads(status.stdout)["label"] == f"tune|iter{best.number + 1}"
    # the same seed, the same trials
    again = optimize(qa, root, "again", str(root / "search.yaml"), "--evaluations", "8")
    assert again.exit_code == 0, again.stderr
    first = [t.params for t in study[:8]]
    assert [t.params for t in study_of(root, "again")] == first


def test_a_study_on_postgresql_lives_in_its_own_schema(
    tmp_path: Path, qa: Callable[..., Result], postgres_url: str
) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    root = quadratic_project(tmp_path / "p", qaboard=f"database_url: {postgres_url}\n")
    result = optimize(qa, root, "pg", str(root / "search.yaml"), "--evaluations", "3")
    assert result.exit_code == 0, result.stderr
    assert len(complete(study_of(root, "pg"))) == 3
    assert not (root / "output" / "studies.db").exists()
    engine = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with engine.connect() as connection:
        tables = set(
            connection.execute(
                text("SELECT table_schema || '.' || table_name FROM information_schema.tables")
            ).scalars()
        )
    engine.dispose()
    assert {"optuna.trials", "optuna.studies", "public.runs", "public.executions"} <= tables
    shown = qa("-C", str(root), "optimize", "--show", "pg", "--json")
    assert len(json.loads(shown.stdout)["trials"]) == 3
    assert qa("-C", str(root), "status").exit_code == 0  # the run store is intact


def test_an_upstream_batch_without_the_tuned_parameters_executes_once(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    result = optimize(
        qa, root, "dag", str(root / "search.yaml"), "--evaluations", "4", batch="evaluation"
    )
    assert result.exit_code == 0, result.stderr
    trials = complete(study_of(root, "dag"))
    assert len(trials) == 4 and len({t.params["x"] for t in trials}) == 4
    assert (root / "calibration-count.txt").read_text().splitlines() == ["calibration"]
    later = qa("-C", str(root), "status", trials[-1].user_attrs["execution"], "--json").json()
    counts = later["counts"]
    assert (counts["cached"], counts["done"]) == (1, 2)  # calibration reused, 2 evaluations ran


def test_a_trial_whose_run_fails_is_a_failed_trial(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    grid = search(
        root,
        "space: {x: {low: 0.0, high: 0.5, step: 0.5}, fail: ['yes', 'no']}\nobjective: {loss: minimize}\nevaluations: 4\nsampler: grid\n",
    )
    result = qa(
        "-C", str(root), "--label", "f", "optimize", "-b", "quadratic", "--config-file", grid
    )
    assert result.exit_code == 0, result.stderr
    trials = study_of(root, "f")
    states = {(t.params["x"], t.params["fail"]): t.state for t in trials}
    assert states == {
        (0.0, "yes"): optuna.trial.TrialState.FAIL,
        (0.5, "yes"): optuna.trial.TrialState.FAIL,
        (0.0, "no"): optuna.trial.TrialState.COMPLETE,
        (0.5, "no"): optuna.trial.TrialState.COMPLETE,
    }
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert all("asked to fail" in t.user_attrs["error"] for t in failed)
    assert "failed: 1 run(s) failed: quadratic a.txt" in result.stdout
    shown = qa("-C", str(root), "optimize", "--show", "f")
    assert "best objective 0.08 " in shown.stdout  # x=0.5: 0.2², y=0: 0.2²
    assert shown.stdout.count("RuntimeError: asked to") == 2


@pytest.mark.parametrize(
    ("args", "text", "expected"),
    [
        (
            (),
            "space: {x: [1]}\nobjective: {psnr: maximize}\nevaluations: 2",
            "the metric 'psnr', which",
        ),
        ((), "space: {}\nobjective: {loss: minimize}\nevaluations: 2", "search space is empty"),
        (
            (),
            "space: {x: {low: 3, high: 1}}\nobjective: {loss: minimize}\nevaluations: 2",
            "`low` (3) is greater than `high` (1)",
        ),
        (
            ("-b", "quadratc"),
            "space: {x: [1]}\nobjective: {loss: minimize}\nevaluations: 2",
            "quadratic",
        ),
        (
            ("--tune-batch", "nope"),
            "space: {x: [1]}\nobjective: {loss: minimize}\nevaluations: 2",
            "nope",
        ),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(
    tmp_path: Path, qa: Callable[..., Result], args: tuple[str, ...], text: str, expected: str
) -> None:
    root = quadratic_project(tmp_path / "p")
    batch = () if "-b" in args else ("-b", "quadratic")
    result = qa("-C", str(root), "optimize", *batch, *args, "--config-file", search(root, text))
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (root / "output").exists()


def rendezvous_search(root: Path) -> str:
    folder = root / "meet"
    folder.mkdir()
    return search(
        root,
        f"space: {{x: {{low: 0.0, high: 1.0}}}}\npreset_params: {{rendezvous: '{folder}'}}\nobjective: {{loss: minimize}}\nevaluations: 4\nseed: 1\n",
    )


def test_parallel_trials_share_the_local_pool(tmp_path: Path, qa: Callable[..., Result]) -> None:
    root = quadratic_project(tmp_path / "p")
    # each run waits for another to be running at the same time: only parallel trials pass
    result = optimize(
        qa, root, "par", rendezvous_search(root), "--parallel", "2", "--local-concurrency", "2"
    )
    assert result.exit_code == 0, result.stderr
    assert "2 at once on 2 local worker(s)" in result.stdout
    assert len(complete(study_of(root, "par"))) == 4


@pytest.fixture(scope="module")
def local_cluster() -> Any:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster


def test_parallel_trials_share_a_dask_cluster(
    tmp_path: Path, qa: Callable[..., Result], local_cluster: Any
) -> None:
    root = quadratic_project(tmp_path / "p")
    address = local_cluster.scheduler_address
    result = optimize(
        qa, root, "dask", rendezvous_search(root), "--parallel", "2", "--dask-scheduler", address
    )
    assert result.exit_code == 0, result.stderr
    assert "on Dask" in result.stdout
    trials = complete(study_of(root, "dask"))
    assert len(trials) == 4
    runs = qa("-C", str(root), "status", trials[0].user_attrs["execution"], "--json").json()
    assert runs["counts"]["done"] == 1


def test_parallel_trials_on_a_local_cluster_the_study_starts(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    # no scheduler given: the study starts a LocalCluster (2 worker processes of 1 thread,
    # on 127.0.0.1) that every trial shares, and closes it at the end
    cluster = "{type: local, host: 127.0.0.1, processes: true, n_workers: 2, threads_per_worker: 1}"
    root = quadratic_project(tmp_path / "p", qaboard=f"runners: {{dask: {{cluster: {cluster}}}}}\n")
    config = rendezvous_search(root)
    command = [sys.executable, "-m", "qaflow", "-C", str(root), "--label", "lc", "optimize"]
    command += ["-b", "quadratic", "--config-file", config, "--runner", "dask", "--parallel", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "2 at once on Dask" in done.stdout
    trials = complete(study_of(root, "lc"))
    assert len(trials) == 4
    for trial in trials:
        x = trial.params["x"]
        assert trial.value == pytest.approx((x - 0.3) ** 2 + 0.2**2)
        runs = qa("-C", str(root), "status", trial.user_attrs["execution"], "--json").json()
        assert (runs["label"], runs["status"], runs["counts"]["done"]) == (
            trial.user_attrs["label"],
            "succeeded",
            1,
        )
    # every run ran on a worker of that cluster; two trials' runs ran at once, on both workers
    workers = [f.read_text() for f in (root / "meet").iterdir()]
    assert len(workers) == 4 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    assert len(set(workers)) == 2
    # and the cluster is gone with the study: its workers refuse connections
    for address in set(workers):
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        deadline = time.monotonic() + 60
        while _accepts(host, int(port)):
            assert time.monotonic() < deadline, f"{address} still accepts connections"
            time.sleep(0.5)


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        return False
    return True


def test_dryrun_describes_the_study_and_writes_nothing(
    tmp_path: Path, qa: Callable[..., Result]
) -> None:
    root = quadratic_project(tmp_path / "p")
    config = str(root / "search.yaml")
    result = qa(
        "-C", str(root), "--dryrun", "optimize", "-b", "evaluation", "--config-file", config
    )
    assert result.exit_code == 0, result.stderr
    assert "up to 30 trial(s) of evaluation (tuned: evaluation)" in result.stdout
    assert "x in [-1.0, 1.0]" in result.stdout and "'default|iterN'" in result.stdout
    assert not (root / "output").exists()
