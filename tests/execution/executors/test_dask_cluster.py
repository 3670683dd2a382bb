"""Where the Dask runner runs: dask-jobqueue clusters from `runners.dask.cluster` (checked by
the job script they would submit: no batch system is needed), and the translation of batch
`resources:` into Dask task resources."""

from __future__ import annotations

import dataclasses
import gc
import warnings

import pytest

from conftest import write_project
from qaflow.config.project import Project
from qaflow.errors import UsageError
from qaflow.execution.executors.cluster import Cluster, configured, task_resources
from qaflow.execution.executors.dask_worker import Shared, shared_problem

SLURM = """
runners:
  default: dask
  dask:
    cluster:
      type: slurm
      cores: 8
      processes: 2
      memory: 32GB
      queue: gpu-short
      walltime: "02:00:00"
      job_extra: ["--gres=gpu:1", "--exclusive"]
      worker_extra_args: ["--resources", "GPU=1"]
      maximum_jobs: 5
"""
LSF = """
runners:
  dask:
    cluster:
      type: lsf
      cores: 4
      memory: 16GB
      queue: normal
      walltime: "01:30"
      project: imaging
      lsf_units: mb
      job_extra_directives: ['-R "select[gpu]"']
"""


def cluster_of(tmp_path, qaboard: str) -> Cluster:
    project = Project.load(write_project(tmp_path / "proj", qaboard=qaboard))
    return configured(project.dask["cluster"], retries=0)


def test_a_slurm_job_script_asks_for_the_configured_resources(tmp_path):
    cluster = cluster_of(tmp_path, SLURM)
    try:
        script = cluster._jobs.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -p gpu-short",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=30G",  # dask-jobqueue asks SLURM for memory in GiB, rounded
        "#SBATCH -t 02:00:00",
        "#SBATCH --gres=gpu:1",  # job_extra, dask-jobqueue's former name of job_extra_directives
        "#SBATCH --exclusive",
    ):
        assert line in script, f"{line!r} not in\n{script}"
    assert "--nworkers 2" in script and "--nthreads 4" in script
    assert "--resources GPU=1" in script
    assert cluster.offered == {"GPU": 1.0}  # so a gpus: 1 batch is accepted
    assert cluster.resources("b", {"gpus": 1, "cpus": 2}) == {"GPU": 1.0}


def test_an_lsf_job_script_asks_for_the_configured_resources(tmp_path):
    cluster = cluster_of(tmp_path, LSF)
    try:
        script = cluster._jobs.job_script()
    finally:
        cluster.close()
    for line in (
        "#BSUB -q normal",
        '#BSUB -P "imaging"',
        "#BSUB -n 4",
        "#BSUB -M 16000",  # 16 GB in MB (lsf_units: mb)
        "#BSUB -W 01:30",
        '#BSUB -R "select[gpu]"',
    ):
        assert line in script, f"{line!r} not in\n{script}"
    with pytest.raises(UsageError, match="asks for the Dask resources GPU=1, which no worker"):
        cluster.resources("gpu-batch", {"gpus": 1})


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ("{type: slurm, memory: 8GB}", "cores and memory per job"),
        ("{type: slurm, cores: 2, memory: 8GB, walltme: '1:00'}", "walltme"),
        ("{type: condor, cores: 2}", "runners.dask.cluster.type"),
        ("{type: local, n_wrkers: 2}", "'n_wrkers' is not an option .* Did you mean 'n_workers'"),
    ],
)
def test_bad_cluster_options_are_usage_errors(tmp_path, cluster, message):
    qaboard = f"runners: {{dask: {{cluster: {cluster}}}}}\n"
    try:
        project = Project.load(write_project(tmp_path / "proj", qaboard=qaboard))
    except Exception as exc:  # the type is validated by qaboard.yaml's schema
        assert message in str(exc)
        return
    with pytest.raises(UsageError, match=message) as caught:
        configured(project.dask["cluster"], retries=0)
    assert "runners.dask.cluster" in str(caught.value)
    with warnings.catch_warnings():  # dask-jobqueue leaves the cluster it failed to make
        warnings.simplefilter("ignore", ResourceWarning)
        del caught
        gc.collect()


def test_resources_become_dask_resources():
    offered = {"GPU": 2.0, "CPU": 8.0}
    assert task_resources("b", {"gpus": 1, "cpus": 2, "memory": "8GB"}, offered) == {
        "GPU": 1.0,
        "CPU": 2.0,  # the workers declare CPU: a constraint
    }  # MEMORY is not declared: left to the worker's memory limit
    assert task_resources("b", {"memory": "1 GiB", "licence": 1}, {"MEMORY": 1e10}) == {
        "MEMORY": float(2**30),
        "licence": 1.0,
    }
    assert task_resources("b", {"gpus": 0, "cpus": 4}, {}) == {}
    with pytest.raises(UsageError, match=r"Batch 'b': `resources.memory` is 'lots'"):
        task_resources("b", {"memory": "lots"}, {})


def test_a_local_cluster_is_not_started_before_there_is_work(tmp_path):
    qaboard = "runners: {dask: {cluster: {type: local, resources: {GPU: 1}}}}\n"
    cluster = cluster_of(tmp_path, qaboard)
    assert cluster.connected is None and cluster.offered == {"GPU": 1.0}
    with pytest.raises(UsageError, match="GPU=2"):
        cluster.resources("b", {"gpus": 2})


def test_a_worker_that_sees_other_files_is_told_why(tmp_path):
    root = write_project(tmp_path / "proj", qaboard="")
    marker = tmp_path / "output" / "marker"
    marker.parent.mkdir()
    marker.write_text("token")
    assert shared_problem(Shared.of(root, marker, "token", stamped=True)) is None
    assert "cannot see the storage folder" in shared_problem(Shared.of(root, marker, "other"))
    moved = Shared.of(root, marker, "token")
    (root / "qaboard.yaml").unlink()
    assert shared_problem(moved) == f"it cannot see the project folder {root}"
    (root / "qaboard.yaml").write_text("project: {name: another}\n")
    stamped = dataclasses.replace(moved, stamp=(0, 0))
    assert "is not the driver's" in shared_problem(stamped)
    assert shared_problem(moved) is None  # per run, only its presence is checked


# ---------------------------------------------------------------- QA-Board's LSF settings
QABOARD_LSF = """
runners:
  default: lsf
  lsf: {queue: normal, project: imaging, max_memory: 2000, resources: "select[mem>2000]"}
"""


@pytest.fixture
def lsf_conf():
    """Limits in MB, as an LSF cluster's lsf.conf would tell dask-jobqueue (for `-M`)."""
    import dask

    from qaflow.execution.executors.cluster import _import_jobqueue

    _import_jobqueue()  # its configuration defaults, before one is changed
    with dask.config.set({"jobqueue.lsf.lsf-units": "mb"}):
        yield


def test_runners_lsf_and_the_lsf_options_shape_the_job_script(tmp_path, qa, lsf_conf):
    root = write_project(tmp_path / "proj", qaboard=QABOARD_LSF, batches="b: {inputs: [a]}\n",
                         files=["a"], extra={"qa/main.py": "def run(context):\n    return {}\n"})  # fmt: skip
    shown = qa("-C", str(root), "--dryrun", "batch", "b")
    assert shown.exit_code == 0, shown.stderr
    for line in (
        "#BSUB -q normal",
        '#BSUB -P "imaging"',
        "#BSUB -M 2000",
        '#BSUB -R "select[mem>2000]"',
        "--nthreads 1",
    ):
        assert line in shown.stdout, f"{line!r} not in\n{shown.stdout}"
    assert "#BSUB -W" not in shown.stdout and "#BSUB -n 1" in shown.stdout
    assert "at most" not in shown.stdout  # runners.lsf sets no concurrency: no cap
    options = ["--lsf-queue", "night", "--lsf-max-threads", "4", "--lsf-max-memory", "8000",
               "--lsf-priority", "1000", "--lsf-options", "-W 24:00 -G team",
               "--lsf-resources", "select[gpu] rusage[mem=8000]",
               "--lsf-concurrency", "3"]  # fmt: skip
    shown = qa("-C", str(root), "--dryrun", "batch", "b", *options)
    assert shown.exit_code == 0, shown.stderr
    for line in ("#BSUB -q night", "#BSUB -n 4", "#BSUB -M 8000", "#BSUB -sp 1000",
                 "#BSUB -W 24:00 -G team", '#BSUB -R "select[gpu] rusage[mem=8000]"'):  # fmt: skip
        assert line in shown.stdout, f"{line!r} not in\n{shown.stdout}"
    assert "#BSUB -q normal" not in shown.stdout and "select[mem>2000]" not in shown.stdout
    assert "The Dask workers would be batch jobs, at most 3 at once, submitted" in shown.stdout
    # --lsf-concurrency 0: unlimited, as in QA-Board
    unlimited = qa("-C", str(root), "--dryrun", "batch", "b", "--lsf-concurrency", "0")
    assert unlimited.exit_code == 0 and "at most" not in unlimited.stdout
    # the local runner ignores them, as QA-Board does
    local = qa("-C", str(root), "--dryrun", "batch", "b", "--runner", "local", *options)
    assert local.exit_code == 0 and "#BSUB" not in local.stdout


def test_lsf_concurrency_caps_the_jobs(tmp_path):
    from qaflow.execution.executors.cluster import cluster_options
    from qaflow.execution.model import Options

    project = Project.load(write_project(tmp_path / "proj", qaboard=QABOARD_LSF))
    settings = cluster_options(project, Options(lsf={"concurrency": 3}))
    assert settings["maximum_jobs"] == 3
    # a cluster of type lsf in runners.dask overrides runners.lsf, key by key
    qaboard = QABOARD_LSF.replace("default: lsf", "dask: {cluster: {type: lsf, queue: gpu}}")
    project = Project.load(write_project(tmp_path / "proj2", qaboard=qaboard))
    settings = cluster_options(project, Options(runner="dask"))
    assert settings["queue"] == "gpu" and settings["project"] == "imaging"


def test_without_bsub_the_lsf_runner_is_a_usage_error(tmp_path, qa, monkeypatch, lsf_conf):
    root = write_project(tmp_path / "proj", qaboard=QABOARD_LSF, batches="b: {inputs: [a]}\n",
                         files=["a"], extra={"qa/main.py": "def run(context):\n    return {}\n"})  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bsub
    refused = qa("-C", str(root), "batch", "b")
    assert refused.exit_code == 2
    assert "`bsub` is not found on this machine's PATH, so the LSF cluster" in refused.stderr
    assert not (root / "output" / "runs").exists()
