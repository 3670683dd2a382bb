"""The Dask runner on a real cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1 (one offering GPU=1), shared by the tests of this module, and a LocalCluster.

Each execution is checked against the local runner's on the same project: statuses,
metrics and output files must be the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import qaflow
from conftest import write_project
from qaflow.execution.report import ConsoleReporter
from qaflow.worker.model import RunStatus
from qaflow.worker.rundir import run_dir_of

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

MAIN = """
import os
import time
from pathlib import Path


def run(context):
    (context.output_dir / "started").write_text(os.environ.get("QA_DASK_WORKER", "") + "\\n" + str(os.getpid()))
    if context.params.get("barrier"):  # wait for another run to start: how many ran at once
        return {"live": barrier(Path(context.database, "live"), context.input_path.name, context.params["barrier"])}
    hold = Path(context.database, "hold")
    deadline = time.monotonic() + 60
    while context.params.get("hold") and hold.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(context.params.get("sleep", 0))
    if context.params.get("flaky"):
        with open(Path(context.database, "tries"), "a+") as tries:
            tries.write("x")
            tries.seek(0)
            if len(tries.read()) % 2:
                raise RuntimeError("flaky: fails every other time")
    text = context.input_path.read_text()
    if "bad" in text:
        raise ValueError("bad input")
    value = len(text) * context.params.get("scale", 1) + context.params.get("upstream", 0)
    (context.output_dir / "out.txt").write_text(f"{context.input_path.name}: {value}\\n")
    return {"value": value, "worker": os.environ.get("QA_DASK_WORKER")}


def barrier(folder, name, seconds):
    folder.mkdir(exist_ok=True)
    (folder / f"start-{name}").write_text("")
    deadline, most = time.monotonic() + seconds, 1
    while True:
        started = {p.name[6:] for p in folder.glob("start-*")}
        ended = {p.name[4:] for p in folder.glob("end-*")}
        most = max(most, len(started - ended))
        if len(started) > 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    (folder / f"end-{name}").write_text("")
    return most
"""
BATCHES = """
measure:
  inputs: [a.txt, b.txt, c.txt]
  configs: [{scale: 2}]
use:
  needs: {m: {batch: measure, per: input}}
  inputs: [a.txt, b.txt, c.txt]
  configs: [{upstream: "${m.metrics.value}"}]
gpu:
  inputs: [a.txt, b.txt, d.txt]
  resources: {gpus: 1}
too-many-gpus:
  inputs: [a.txt]
  resources: {gpus: 2}
held:
  inputs: [a.txt]
  configs: [{hold: true}]
  retries: 1
held-once:
  inputs: [a.txt]
  configs: [{hold: true}]
flaky:
  inputs: [a.txt]
  configs: [{flaky: true}]
  retries: 1
slow:
  inputs: [a.txt]
  configs: [{sleep: 30}]
  timeout: 1
overlap:
  inputs: [a.txt, b.txt]
  configs: [{barrier: 10}]
"""
FILES = {"a.txt": "aaaa", "b.txt": "bb", "c.txt": "bad", "d.txt": "dddddd"}


# ---------------------------------------------------------------- the cluster
@dataclass
class Cluster:
    address: str
    client: Client
    scheduler_file: Path
    log: Path

    def pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def gpu_worker(self) -> str:
        workers = self.client.scheduler_info()["workers"]
        return next(a for a, w in workers.items() if (w.get("resources") or {}).get("GPU"))


def dask_process(*args: str, log: Path, prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def worker_args(scheduler_file: Path, name: str, *extra: str) -> tuple[str, ...]:
    return (
        "worker",
        "--scheduler-file",
        str(scheduler_file),
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--no-dashboard",
        "--name",
        name,
        *extra,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    with _suppress():
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with _suppress():
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`dask scheduler` + `dask worker` (plain) + `dask worker --resources GPU=1`, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file, log = folder / "scheduler.json", folder / "dask.log"
    processes = [
        dask_process(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(scheduler_file),
            log=log,
        )
    ]
    try:
        eventually(scheduler_file.exists, 30)
        processes.append(dask_process(*worker_args(scheduler_file, "plain"), log=log))
        processes.append(
            dask_process(*worker_args(scheduler_file, "gpu", "--resources", "GPU=1"), log=log)
        )
        client = Client(scheduler_file=str(scheduler_file), set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        yield Cluster(client.scheduler.address, client, scheduler_file, log)
        client.close()
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.fixture
def two_workers(cluster: Cluster) -> Cluster:
    """The cluster with both workers up (a killed worker is restarted by its nanny)."""
    cluster.client.wait_for_workers(2, timeout=60)
    eventually(lambda: len(cluster.client.scheduler_info()["workers"]) == 2, 30)
    return cluster


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "proj",
        batches=BATCHES,
        extra={"qa/main.py": MAIN, **FILES},
    )


def eventually(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"still false after {seconds} s"
        time.sleep(0.05)
    return value


def qa(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qaflow", "-C", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def batch(root: Path, name: str, **options: Any) -> qaflow.execution.driver.Execution:
    execution = qaflow.batch(name, project=root, reporter=ConsoleReporter(quiet=True), **options)
    assert isinstance(execution, qaflow.execution.driver.Execution)
    return execution


def outcome(
    execution: qaflow.execution.driver.Execution,
) -> dict[tuple[str, str | None], tuple[Any, ...]]:
    """What must not depend on the runner: per run, status, metrics, error, output files."""
    rows = {}
    for run in execution.runs():
        metrics = {k: v for k, v in run.metrics.items() if k not in ("compute_time", "worker")}
        manifest = run.output_dir / "manifest.outputs.json"
        files = json.loads(manifest.read_text()) if manifest.is_file() else {}
        files.pop("started", None)  # the pid and worker of the run
        rows[(run.spec.batch, run.spec.rel_input_path)] = (
            run.status,
            metrics,
            run.result.error_line,
            files,
            # a failed attempt: the run's folder; the fingerprint covers upstream metrics
            str(run_dir_of(run.output_dir).parent),
        )
    return rows


# ---------------------------------------------------------------- same results as local
def test_per_input_dag_with_upstream_metrics_equals_the_local_runner(two_workers, root):
    local = outcome(batch(root, "use", runner="local", concurrency=2))
    on_dask = batch(root, "use", runner="dask", dask_scheduler=two_workers.address, force=True)
    assert outcome(on_dask) == local
    rows = outcome(on_dask)
    assert rows[("use", "a.txt")][:2] == (RunStatus.SUCCEEDED, {"value": 12, "is_failed": False})
    assert rows[("measure", "c.txt")][0] is RunStatus.FAILED
    assert rows[("use", "c.txt")][0] is RunStatus.SKIPPED
    assert rows[("use", "c.txt")][2] == "skipped (upstream failed): measure c.txt"
    workers = {run.metrics.get("worker") for run in on_dask.runs()} - {None}
    assert workers <= set(two_workers.pids()) and workers
    # --action-on-existing skip: runs with results are not executed, the failed one is
    skip = outcome(
        batch(root, "use", dask_scheduler=two_workers.address, action_on_existing="skip")
    )
    assert skip == outcome(batch(root, "use", action_on_existing="skip"))
    assert [row[0] for row in skip.values()].count(RunStatus.CACHED) == 4
    # nothing was left to execute: a second execution submits nothing
    again = batch(root, "use", runner="dask", dask_scheduler=two_workers.address)
    statuses = {(r.spec.batch, r.status) for r in again.runs()}
    assert ("measure", RunStatus.CACHED) in statuses and ("use", RunStatus.CACHED) in statuses


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "calibration"
    shutil.copytree(EXAMPLES / "calibration", root, ignore=shutil.ignore_patterns("output", "data"))
    made = subprocess.run(
        [sys.executable, str(root / "make_images.py")], capture_output=True, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    return root


def test_the_calibration_example_equals_the_local_runner(two_workers, calibration):
    local = qa(calibration, "batch", "my-evaluation-batch", "--runner", "local")
    assert local.returncode == 0, local.stderr
    before = outcome_of_files(calibration)
    run = qa(
        calibration,
        "batch",
        "my-evaluation-batch",
        "--force",
        "--dask-scheduler",
        two_workers.address,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout and "my-calibration" in run.stdout  # the same summary
    assert outcome_of_files(calibration) == before
    runs = (calibration / "output").rglob("*")  # the committed result: a fingerprint's link
    [cde] = [
        r / "calibration.cde" for r in runs if r.is_symlink() and (r / "calibration.cde").exists()
    ]
    assert json.loads(cde.read_text())["white_balance_gains"][1] == 1.0
    # runs that need cached runs: those are passed to the Dask tasks as results, not futures
    again = qa(calibration, "batch", "my-evaluation-batch", "--force-batch", "my-evaluation-batch",
               "--dask-scheduler", two_workers.address)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert outcome_of_files(calibration) == before


def outcome_of_files(root: Path) -> dict[str, Any]:
    """Every run's committed result: metrics (but compute_time) and output files, by path."""
    found = {}
    runs = (root / "output" / "runs").rglob("*")
    for metrics in (run / "metrics.json" for run in runs if run.is_symlink()):
        values = json.loads(metrics.read_text())
        values.pop("compute_time")
        manifest = json.loads((metrics.parent / "manifest.outputs.json").read_text())
        found[str(metrics.parent)] = (values, manifest)
    assert len(found) == 8
    return found


def test_the_pipeline_example_sees_the_previous_step_on_dask(two_workers, tmp_path):
    import shutil

    root = tmp_path / "pipeline"
    shutil.copytree(EXAMPLES / "pipeline", root, ignore=shutil.ignore_patterns("output"))
    local = qa(root, "batch", "my-pipeline")
    assert local.returncode == 0, local.stderr
    [summary] = (root / "output").rglob("summary.json")
    expected = json.loads(summary.read_text())
    summary.unlink()
    run = qa(root, "batch", "my-pipeline", "--force", "--dask-scheduler", two_workers.address)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(summary.read_text()) == expected
    assert expected["previous_step_runs"] == 4 and expected["words"] > 0


def test_a_local_cluster_from_qaboard_yaml(tmp_path):
    root = write_project(
        tmp_path / "proj",
        qaboard="runners: {default: dask, dask: {cluster: {type: local, n_workers: 2, processes: false}}}\n",
        batches=BATCHES,
        extra={"qa/main.py": MAIN, **FILES},
    )
    on_dask = batch(root, "use")
    expected = outcome(on_dask)
    local = batch(root, "use", runner="local", force=True)
    assert outcome(local) == expected
    assert {r.status for r in on_dask.runs()} == {
        RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED,
    }  # fmt: skip


# ---------------------------------------------------------------- resources, timeouts
def test_a_gpu_batch_runs_only_on_the_worker_with_a_gpu(two_workers, root):
    execution = batch(root, "gpu", runner="dask", dask_scheduler=two_workers.address)
    assert execution.exit_code == 0
    assert [run.metrics["worker"] for run in execution.runs()] == [two_workers.gpu_worker()] * 3


def test_resources_no_worker_offers_are_refused_before_anything_runs(two_workers, root):
    result = qa(root, "batch", "too-many-gpus", "--dask-scheduler", two_workers.address)
    assert result.returncode == 2
    assert "Batch 'too-many-gpus' asks for the Dask resources GPU=2" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "output" / "runs").exists()
    # once its results are up to date (executed locally here), nothing of it needs a GPU
    assert qa(root, "batch", "too-many-gpus", "--runner", "local").returncode == 0
    cached = qa(root, "batch", "too-many-gpus", "--dask-scheduler", two_workers.address)
    assert cached.returncode == 0, cached.stderr
    assert "too-many-gpus: 1 run(s) up to date" in cached.stdout


def test_a_failed_run_is_retried_as_with_the_local_runner(two_workers, root):
    local = outcome(batch(root, "flaky", runner="local"))
    on_dask = batch(root, "flaky", dask_scheduler=two_workers.address, force=True)
    assert outcome(on_dask) == local
    [run] = on_dask.runs()
    assert run.status is RunStatus.SUCCEEDED and run.result.attempt == 2
    assert (root / "tries").read_text() == "xxxx"


def test_a_run_over_its_timeout_fails_and_the_worker_goes_on(two_workers, root):
    execution = batch(root, "slow", runner="dask", dask_scheduler=two_workers.address)
    [run] = execution.runs()
    assert run.status is RunStatus.FAILED and run.result.error_line == "timed out after 1 s"
    assert batch(root, "gpu", runner="dask", dask_scheduler=two_workers.address).exit_code == 0


def test_dask_concurrency_caps_the_runs_at_once_on_the_cluster(two_workers, root):
    # each run of `overlap` waits (up to 10 s) for the other to start, and tells how many of
    # them ran at once
    free = batch(root, "overlap", runner="dask", dask_scheduler=two_workers.address)
    assert free.exit_code == 0 and max(r.metrics["live"] for r in free.runs()) == 2
    shutil.rmtree(root / "live")
    args = ("overlap", "--dask-scheduler", two_workers.address, "--force")
    capped = qa(root, "batch", *args, "--dask-concurrency", "1")  # QA-Board's option
    assert capped.returncode == 0, capped.stdout + capped.stderr
    listed = json.loads(qa(root, "batch", "overlap", "--list").stdout)
    live = [json.loads(Path(r["output_dir"], "metrics.json").read_text()) for r in listed]
    assert [m["live"] for m in live] == [1, 1]  # one at a time
    shutil.rmtree(root / "live")
    (root / "qaboard.yaml").write_text("runners: {dask: {concurrency: 1}}\n")  # its default
    configured = batch(root, "overlap", dask_scheduler=two_workers.address, force=True)
    assert [r.metrics["live"] for r in configured.runs()] == [1, 1]


# ---------------------------------------------------------------- a worker dies mid-run
def kill_the_worker_running(cluster: Cluster, root: Path, name: str) -> str:
    """SIGKILL the Dask worker process that started the run of batch `name`; its address."""
    marker = eventually(lambda: next((root / "output" / "runs" / name).rglob("started"), None))
    address = eventually(lambda: marker.read_text().split("\n")[0])
    os.kill(cluster.pids()[address], signal.SIGKILL)
    return address


def in_thread(function: Callable[[], Any]) -> Callable[[], Any]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(function()), daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(90)
        assert box, "the execution did not end"
        return box[0]

    return result


def test_a_run_whose_worker_is_killed_is_retried_on_another(two_workers, root):
    (root / "hold").write_text("")
    result = in_thread(
        lambda: batch(root, "held", runner="dask", dask_scheduler=two_workers.address)
    )
    marker = eventually(lambda: next((root / "output" / "runs" / "held").rglob("started"), None))
    pid = int(eventually(lambda: marker.read_text().split("\n")[1:2])[0])
    killed = kill_the_worker_running(two_workers, root, "held")
    eventually(lambda: not _alive(pid), 10)  # the run's process dies with its worker...
    (root / "hold").unlink()  # ...before it could finish: the run must execute again
    execution = result()
    [run] = execution.runs()
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.result.attempt == 2 and run.metrics["worker"] != killed
    log = (run.output_dir / "log.txt").read_text()
    assert "Traceback" not in log


def test_a_killed_run_without_retries_fails_with_the_reason(two_workers, root):
    (root / "hold").write_text("")
    result = in_thread(
        lambda: batch(root, "held-once", runner="dask", dask_scheduler=two_workers.address)
    )
    killed = kill_the_worker_running(two_workers, root, "held-once")
    execution = result()
    (root / "hold").unlink()
    [run] = execution.runs()
    assert run.status is RunStatus.FAILED
    assert run.result.error_line.startswith(f"the Dask worker {killed} died while running it")
    assert json.loads((run.output_dir / "metrics.json").read_text())["is_failed"] is True
    assert execution.exit_code == 1


# ---------------------------------------------------------------- in the background
def started(root: Path, *args: str) -> str:
    result = qa(root, "batch", *args, "--no-wait")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def test_no_wait_then_qa_wait_and_status(two_workers, root):
    ok = started(root, "gpu", "--dask-scheduler", two_workers.address)
    failing = started(root, "measure", "--dask-scheduler", two_workers.address)
    assert qa(root, "wait", ok).returncode == 0
    assert qa(root, "wait", failing).returncode == 1
    shown = json.loads(qa(root, "status", failing, "--json").stdout)
    counts = {word: n for word, n in shown["counts"].items() if n}
    assert shown["status"] == "failed" and counts == {"done": 2, "failed": 1, "total": 3}


def test_qa_cancel_stops_the_runs_on_the_cluster(two_workers, root):
    (root / "hold").write_text("")
    execution_id = started(root, "held", "--dask-scheduler", two_workers.address)
    marker = eventually(lambda: next((root / "output" / "runs" / "held").rglob("started"), None))
    pid = int(eventually(lambda: marker.read_text().split("\n")[1:2])[0])
    cancelled = qa(root, "cancel", execution_id)
    assert cancelled.returncode == 0, cancelled.stderr
    shown = json.loads(qa(root, "status", execution_id, "--json").stdout)
    assert shown["status"] == "cancelled" and shown["counts"]["cancelled"] == 1
    eventually(lambda: not _alive(pid), 10)  # the run's process was killed on its worker

    def tasks(dask_scheduler: Any) -> list[str]:
        return [str(key) for key in dask_scheduler.tasks]

    eventually(
        lambda: not [k for k in two_workers.client.run_on_scheduler(tasks) if execution_id in k]
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] not in "ZX"


# ---------------------------------------------------------------- a worker that does not share the files
def test_workers_that_do_not_see_the_project_are_named(two_workers, root, tmp_path):
    """A third worker in its own mount namespace, with an empty tmpfs over the test's folder:
    the same paths, other files, as on a machine without the shared filesystem."""
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    mount = (
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs none "$0" && exec "$@"',
        str(tmp_path),
    )
    blind = dask_process(
        *worker_args(two_workers.scheduler_file, "blind"), log=two_workers.log, prefix=mount
    )
    try:
        two_workers.client.wait_for_workers(3, timeout=60)
        result = qa(root, "batch", "measure", "--dask-scheduler", two_workers.address)
        workers = two_workers.client.scheduler_info()["workers"]
        address = next(a for a, w in workers.items() if w.get("name") == "blind")
    finally:
        stop(blind)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "1 of the 3 Dask workers" in result.stderr
    assert f"{address}: it cannot see the project folder {root}" in result.stderr
    assert "Traceback" not in result.stderr and not (root / "output" / "runs").exists()
    eventually(lambda: len(two_workers.client.scheduler_info()["workers"]) == 2, 30)


def test_an_unreachable_scheduler_is_a_clear_error(root, monkeypatch, qa_cli):
    from qaflow.execution.executors import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.5)
    result = qa_cli("-C", str(root), "batch", "measure", "--dask-scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in result.stderr


@pytest.fixture
def qa_cli() -> Callable[..., Any]:
    from conftest import run_qa

    return run_qa
