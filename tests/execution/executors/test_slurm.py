"""The Dask runner on a real SLURM cluster: `runners.dask.cluster: {type: slurm}` submits
dask-jobqueue's worker jobs with `sbatch` to the one-machine cluster `.ci/slurm-up` starts
(two partitions; `QA_TEST_SLURM=1` says it runs). Without it these tests are skipped, and
fail in CI.

Each test names its jobs (`job_name`), so it sees and cleans up only its own in `squeue`,
and ends by waiting for them to be gone: the jobs of an execution stop with it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import write_project
from qaflow.worker.rundir import committed_attempt, run_dir_of

# in turn: the cluster is one node with the machine's CPUs, and a test that holds two of them
# waits for them. On one pytest-xdist worker where `--dist loadgroup` honours the group; with
# pytest 9.2 it does not (xdist 3.8 renames the node ids, which pytest now computes), so the
# tests also take a lock that every xdist worker of the session shares (`in_turn`).
pytestmark = pytest.mark.xdist_group("slurm")

SLURM_ENV = "QA_TEST_SLURM"  # set by .ci/slurm-up's caller once `sinfo` shows the node idle
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DEADLINE = 180.0  # seconds: a job waits in the queue, then starts Python and a Dask worker

MAIN = """
import os
import time
from pathlib import Path


def run(context):
    # one file per attempt in marks/MARK/INPUT/: a re-execution after a lost job sees the first
    marks = Path(context.database, "marks", context.params["mark"], context.input_path.name)
    marks.mkdir(parents=True, exist_ok=True)
    attempt = len(list(marks.iterdir())) + 1
    written = context.output_dir / "job"  # then moved: a reader never sees it half-written
    written.write_text(os.environ.get("SLURM_JOB_ID", ""))
    os.replace(written, marks / str(attempt))
    hold = context.params.get("hold")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and (
        (hold == "first" and attempt == 1) or (hold == "gate" and Path(context.database, "gate").exists())
    ):
        time.sleep(0.1)
    return {
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "licence": os.environ.get("LICENCE_SERVER", ""),
        "attempt": attempt,
        "size": len(context.input_path.read_text()),
    }
"""
BATCHES = """
quick:
  inputs: [a.txt, b.txt]
  configs: [{mark: quick}]
licensed:
  inputs: [a.txt]
  configs: [{mark: licensed}]
  resources: {licence: 1}
gpu:
  inputs: [a.txt]
  configs: [{mark: gpu}]
  resources: {gpus: 1}
gated:
  inputs: [a.txt, b.txt]
  configs: [{mark: gated, hold: gate}]
after-gated:
  needs: {g: gated}
  inputs: [a.txt]
  configs: [{mark: after}]
lost-retried:
  inputs: [a.txt]
  configs: [{mark: lost-retried, hold: first}]
  retries: 1
lost-once:
  inputs: [b.txt]
  configs: [{mark: lost-once, hold: first}]
"""
FILES = {"a.txt": "aaaa", "b.txt": "bb"}


# ---------------------------------------------------------------- the cluster
@dataclass(frozen=True)
class Slurm:
    """The running SLURM cluster: its default partition and another one."""

    default: str
    other: str

    @staticmethod
    def jobs(name: str) -> list[tuple[str, str, str]]:
        """(job id, partition, state) of the jobs named `name` in the queue."""
        out = _slurm("squeue", "-h", "-n", name, "-o", "%i %P %T")
        return [tuple(line.split()) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    @staticmethod
    def cancel(name: str) -> None:
        _slurm("scancel", "-n", name)


def _slurm(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="session")
def slurm() -> Slurm:
    """The cluster `.ci/slurm-up` started; skipped (failed in CI) when there is none."""
    if not os.environ.get(SLURM_ENV):
        reason = (
            f"{SLURM_ENV} is not set, so the Dask runner is not tested on SLURM. Run "
            f".ci/slurm-up (as root) and set {SLURM_ENV}=1."
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} CI must test SLURM.")
        pytest.skip(reason)
    states = _slurm("sinfo", "-h", "-N", "-o", "%t").split()
    assert set(states) & {"idle", "mix", "alloc"}, f"no SLURM node is up: {states}"
    partitions = _slurm("sinfo", "-h", "-o", "%P").split()
    default = next(p.rstrip("*") for p in partitions if p.endswith("*"))
    others = [p for p in partitions if not p.endswith("*")]
    assert others, f"the tests need two partitions, SLURM has {partitions}"
    cpus = max(int(n) for n in _slurm("sinfo", "-h", "-N", "-o", "%c").split())
    assert cpus >= 2, f"the tests hold two one-core jobs at once; the node has {cpus} CPU(s)"
    return Slurm(default=default, other=others[0])


def cluster_state() -> str:
    """What the queue and the node say: for a test's message when a wait times out."""
    queue = _slurm("squeue", "-h", "-o", "%i %j %T %r cpus=%C mem=%m")
    nodes = _slurm("sinfo", "-h", "-N", "-o", "%N %t cpus=%c (allocated/idle/other/total %C) %E")
    return f"squeue:\n{queue or '(empty)'}\nsinfo:\n{nodes}"


@pytest.fixture(autouse=True)
def in_turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One SLURM test at a time in the whole session, each xdist worker waiting for the
    lock in the session's base folder (shared by its workers); held until the test's jobs
    are gone (set up before, so torn down after, the fixtures it uses)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(shared / "slurm-tests.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_DRIVERS: list[subprocess.Popen[str]] = []  # the executions started by in_background


@pytest.fixture
def job_name(slurm: Slurm) -> Iterator[str]:
    """This test's jobs' name. When it ends, its executions still running are stopped, and
    its jobs left are cancelled: a failed test must not hold the node's CPUs for the next."""
    name = f"qa-test-{secrets.token_hex(4)}"
    yield name
    while _DRIVERS:
        driver = _DRIVERS.pop()
        if driver.poll() is None:
            driver.terminate()  # qa cancels its execution, whose jobs then stop
            try:
                driver.wait(60)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait(60)
    slurm.cancel(name)


def eventually(check: Callable[[], Any], seconds: float = DEADLINE) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        if time.monotonic() >= deadline:
            pytest.fail(f"still false after {seconds} s\n{cluster_state()}")
        time.sleep(0.2)
    return value


def no_jobs_left(slurm: Slurm, name: str) -> None:
    eventually(lambda: not slurm.jobs(name))


def cluster_yaml(tmp_path: Path, job_name: str, **options: Any) -> str:
    """qaboard.yaml's runners section: one-core jobs of 1 GB of `job_name`, logged in tmp."""
    cluster = {
        "type": "slurm",
        "cores": 1,
        "processes": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "interface": "lo",
        "job_name": job_name,
        "log_directory": str(tmp_path / "slurm-logs"),
        **options,
    }
    return yaml.safe_dump({"runners": {"default": "dask", "dask": {"cluster": cluster}}})


def project(tmp_path: Path, job_name: str, **options: Any) -> Path:
    return write_project(
        tmp_path / "proj",
        qaboard=cluster_yaml(tmp_path, job_name, **options),
        batches=BATCHES,
        extra={"qa/main.py": MAIN, **FILES},
    )


# a lost job is replaced once the cluster gives its worker up (15 s by default): sooner here
FASTER = {"DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "2s"}


def qa_command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "qaflow", "-C", str(root), *args]


def qa(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(qa_command(root, *args), capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **FASTER})  # fmt: skip


def in_background(root: Path, *args: str) -> Callable[[], subprocess.CompletedProcess[str]]:
    """Start `qa ARGS` (stopped when the test ends, if it still runs); the returned function
    waits for its end and gives its output."""
    driver = subprocess.Popen(qa_command(root, *args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **FASTER})  # fmt: skip
    _DRIVERS.append(driver)
    box: list[tuple[str, str]] = []
    thread = threading.Thread(target=lambda: box.append(driver.communicate()), daemon=True)
    thread.start()

    def result() -> subprocess.CompletedProcess[str]:
        thread.join(600)
        if not box:
            pytest.fail(f"the execution did not end in 600 s\n{cluster_state()}")
        out, err = box[0]
        return subprocess.CompletedProcess(driver.args, driver.returncode, out, err)

    return result


def runs(root: Path, batch: str) -> list[dict[str, Any]]:
    """The metrics of each run of `batch`: its committed result (what its output directory,
    a symlink, points at), else its last attempt. A run killed with its job may leave a
    failed attempt beside the retry that succeeded (README: committed results are immutable)."""
    last: dict[Path, Path] = {}  # run output directory -> the metrics shown for it
    for metrics in sorted((root / "output" / "runs" / batch).rglob("metrics.json")):
        attempt = metrics.parent  # FP12.EXECUTION-N
        if "." not in attempt.name:
            continue
        run = attempt.with_name(attempt.name.split(".", 1)[0])
        number = int(attempt.name.rsplit("-", 1)[1])
        if run not in last or number > int(last[run].parent.name.rsplit("-", 1)[1]):
            last[run] = metrics
    return [
        json.loads(((run / "metrics.json") if run.is_symlink() else metrics).read_text())
        for run, metrics in sorted(last.items())
    ]


def attempts(root: Path, mark: str, name: str = "a.txt") -> list[str]:
    """The SLURM job id of each attempt started of the run marked `mark` on input `name`."""
    marks = root / "marks" / mark / name
    count = len(list(marks.iterdir())) if marks.is_dir() else 0
    return [(marks / str(n)).read_text() for n in range(1, count + 1)]


def submitted(tmp_path: Path) -> set[str]:
    """The SLURM job ids of the jobs dask-jobqueue submitted (their log files)."""
    return {path.stem.rsplit("-", 1)[1] for path in (tmp_path / "slurm-logs").glob("*.out")}


# ---------------------------------------------------------------- same results as local
def test_the_calibration_example_on_slurm_equals_the_local_runner(slurm, job_name, tmp_path):
    root = tmp_path / "calibration"
    shutil.copytree(EXAMPLES / "calibration", root, ignore=shutil.ignore_patterns("output", "data"))
    made = subprocess.run([sys.executable, "make_images.py"], capture_output=True, cwd=root)
    assert made.returncode == 0, made.stderr
    local = qa(root, "batch", "my-evaluation-batch", "--runner", "local")
    assert local.returncode == 0, local.stderr
    before = metrics_of(root)
    assert len(before) == 8
    with open(root / "qaboard.yaml", "a") as qaboard:
        qaboard.write(cluster_yaml(tmp_path, job_name, queue=slurm.default))
    on_slurm = qa(root, "batch", "my-evaluation-batch", "--force")
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    assert "succeeded" in on_slurm.stdout and "my-calibration" in on_slurm.stdout
    assert metrics_of(root) == before
    assert submitted(tmp_path), "no job was submitted with sbatch"
    no_jobs_left(slurm, job_name)


def metrics_of(root: Path) -> dict[str, dict[str, Any]]:
    """Every run directory's committed metrics but compute_time, by the run directory's path
    (not its attempt directory's, named by the execution: a forced re-run adds new ones)."""
    found = {}
    for path in (root / "output" / "runs").rglob("metrics.json"):
        run_dir = run_dir_of(path.parent)
        if committed_attempt(run_dir) != path.parent:
            continue  # an attempt directory the run directory does not point to (any more)
        values = json.loads(path.read_text())
        values.pop("compute_time")
        found[str(run_dir)] = values
    return found


# ---------------------------------------------------------------- jobs come and go with the runs
def test_jobs_start_as_runs_wait_and_stop_when_done(slurm, job_name, tmp_path):
    root = project(tmp_path, job_name, maximum_jobs=2)
    (root / "gate").write_text("")
    result = in_background(root, "batch", "after-gated")
    seen: set[str] = set()

    def both_held_on_jobs() -> bool:
        jobs = slurm.jobs(job_name)
        assert len(jobs) <= 2, f"more jobs than maximum_jobs: {jobs}"
        seen.update(job for job, _, state in jobs if state == "RUNNING")
        return len(attempts(root, "gated")) == len(attempts(root, "gated", "b.txt")) == 1

    eventually(both_held_on_jobs)
    held_on = {*attempts(root, "gated"), *attempts(root, "gated", "b.txt")}
    assert held_on <= seen | set(slurm_running(slurm, job_name))
    assert not runs(root, "after-gated")  # it needs the held runs
    (root / "gate").unlink()
    done = result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m["partition"] for m in runs(root, "gated")] == [slurm.default] * 2
    assert [m["attempt"] for m in runs(root, "after-gated")] == [1]
    no_jobs_left(slurm, job_name)
    assert submitted(tmp_path) >= held_on


def slurm_running(slurm: Slurm, name: str) -> list[str]:
    return [job for job, _, state in slurm.jobs(name) if state == "RUNNING"]


def test_resources_route_runs_to_the_jobs_partition_and_worker_options(slurm, job_name, tmp_path):
    root = project(
        tmp_path,
        job_name,
        queue=slurm.other,
        worker_extra_args=["--resources", "licence=1"],
        job_script_prologue=["export LICENCE_SERVER=lic.example.com"],
    )
    done = qa(root, "batch", "licensed")
    assert done.returncode == 0, done.stdout + done.stderr
    [metrics] = runs(root, "licensed")
    assert metrics["partition"] == slurm.other and metrics["licence"] == "lic.example.com"
    jobs = submitted(tmp_path)
    # a batch asking for what no job's worker offers is refused before any job is submitted
    refused = qa(root, "batch", "gpu")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "asks for the Dask resources GPU=1, which no worker of the SLURM cluster" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr and submitted(tmp_path) == jobs
    assert not runs(root, "gpu")
    no_jobs_left(slurm, job_name)


# ---------------------------------------------------------------- the shared filesystem
HIDE = """#!/bin/sh
# The worker of a node that does not mount the project's filesystem: an empty folder over it.
exec unshare --mount --propagation private sh -c 'mount -t tmpfs none "$0" && exec "$@"' \\
  {root} {python} "$@"
"""


def test_a_job_that_does_not_see_the_project_runs_nothing_and_says_why(slurm, job_name, tmp_path):
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here to hide the project from a job: {probe.stderr!r}")
    hide = tmp_path / "hide.sh"
    root = project(tmp_path, job_name, python=str(hide))
    hide.write_text(HIDE.format(root=root, python=sys.executable))
    hide.chmod(0o755)
    done = qa(root, "batch", "quick")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "cannot run it: it cannot see the project folder" in done.stdout, done.stdout
    assert not (root / "marks").exists()  # no run was executed
    [status] = json.loads(qa(root, "status", "--json").stdout)
    assert status["counts"]["failed"] == 2 and status["counts"]["done"] == 0, status
    no_jobs_left(slurm, job_name)


# ---------------------------------------------------------------- jobs lost mid-run
def held_runs_on_one_job(root: Path) -> str:
    """Wait for the first attempts of lost-retried and lost-once; the job running both."""
    eventually(lambda: attempts(root, "lost-retried") and attempts(root, "lost-once", "b.txt"))
    [job] = {attempts(root, "lost-retried")[0], attempts(root, "lost-once", "b.txt")[0]}
    return job


def check_nothing_lost(root: Path, done: subprocess.CompletedProcess[str], lost: str) -> None:
    """lost-retried executed again on another job; lost-once (no retries) failed, saying why."""
    assert done.returncode == 1, done.stdout + done.stderr
    first, second = attempts(root, "lost-retried")
    assert first == lost and second not in ("", lost)
    [retried] = runs(root, "lost-retried")
    assert retried["attempt"] == 2 and not retried["is_failed"]
    assert attempts(root, "lost-once", "b.txt") == [lost]  # not executed again
    [failed] = runs(root, "lost-once")
    assert failed["is_failed"] is True
    [status] = json.loads(qa(root, "status", "--json").stdout)
    assert status["counts"]["failed"] == 1 and status["counts"]["done"] == 1, status
    [line] = [line for line in done.stdout.splitlines() if "failed    lost-once  b.txt" in line]
    assert "the Dask worker tcp://127.0.0.1:" in line and "died while running it" in line, line


def test_a_job_cancelled_mid_run_loses_nothing(slurm, job_name, tmp_path):
    root = project(tmp_path, job_name, cores=2, maximum_jobs=1)
    result = in_background(root, "batch", "lost-retried", "lost-once")
    job = held_runs_on_one_job(root)
    _slurm("scancel", job)
    check_nothing_lost(root, result(), job)
    no_jobs_left(slurm, job_name)


def test_a_job_killed_by_its_walltime_loses_nothing(slurm, job_name, tmp_path):
    root = project(tmp_path, job_name, cores=2, maximum_jobs=1, walltime="00:01:00")
    result = in_background(root, "batch", "lost-retried", "lost-once")
    job = held_runs_on_one_job(root)
    check_nothing_lost(root, result(), job)  # SLURM ended the job after a minute
    no_jobs_left(slurm, job_name)


# ---------------------------------------------------------------- in the background
def test_no_wait_status_and_cancel_which_cancels_the_jobs(slurm, job_name, tmp_path):
    root = project(tmp_path, job_name)
    (root / "gate").write_text("")
    started = qa(root, "batch", "gated", "--no-wait")
    assert started.returncode == 0, started.stderr
    execution = started.stdout.split()[1]
    eventually(lambda: attempts(root, "gated"))
    assert slurm_running(slurm, job_name)

    def shown_running() -> bool:  # the driver hears of the start just after the run's mark
        shown = json.loads(qa(root, "status", execution, "--json").stdout)
        assert shown["status"] == "running", shown
        return shown["counts"]["running"] >= 1

    eventually(shown_running)
    cancelled = qa(root, "cancel", execution)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    shown = json.loads(qa(root, "status", execution, "--json").stdout)
    assert shown["status"] == "cancelled" and shown["counts"]["cancelled"] == 2, shown
    no_jobs_left(slurm, job_name)
    # the runs held by the gate never finished: those started were killed, recorded as failed
    killed = runs(root, "gated")
    assert killed and all(m["is_failed"] and "attempt" not in m for m in killed), killed
