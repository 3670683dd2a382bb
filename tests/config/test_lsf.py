"""QA-Board's LSF settings (`runners.lsf`, `--lsf-*`) as dask-jobqueue LSFCluster options."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qaflow.config.lsf import DEFAULT_MEMORY, lsf_cluster, merged


def test_each_qaboard_setting_has_its_lsf_cluster_option():
    cluster = lsf_cluster(
        {
            "queue": "night",
            "project": "imaging",
            "max_threads": 4,
            "max_memory": 16000,
            "resources": "select[gpu]",
            "priority": 1000,
            "options": "-G team -app big",
            "concurrency": 10,
            "concurrency_strategy": "array",  # QA-Board's job arrays: nothing to map
        }
    )
    assert cluster == {
        "type": "lsf",
        "cores": 1,  # a job executes one run at a time, with its 4 slots
        "processes": 1,
        "ncpus": 4,
        "memory": "16000MB",
        "queue": "night",
        "project": "imaging",
        "job_extra_directives": ['-R "select[gpu]"', "-sp 1000", "-G team -app big"],
        "maximum_jobs": 10,
        "job_directives_skip": ["#BSUB -W"],  # no walltime given: the queue's limit
    }


def test_unset_values_ask_for_nothing():
    for unset in ({}, {"max_threads": 0, "max_memory": 0, "concurrency": 0, "options": ""}):
        cluster = lsf_cluster(unset)
        assert cluster["memory"] == DEFAULT_MEMORY
        assert cluster["job_extra_directives"] == []
        assert not {"ncpus", "maximum_jobs", "queue", "project"} & set(cluster)


def test_a_walltime_in_the_options_is_written():
    assert "job_directives_skip" not in lsf_cluster({"options": "-W 24:00"})


def test_cli_values_override_runners_lsf_and_the_cluster_keys_override_both():
    lsf = {"queue": "normal", "max_memory": 2000, "project": "imaging"}
    cli = {"queue": "night", "max_memory": None}  # an option not given does not override
    assert merged(lsf, cli, {})["queue"] == "night"
    assert merged(lsf, cli, {})["memory"] == "2000MB"
    cluster = {"type": "lsf", "cores": 8, "memory": "32GB", "walltime": "02:00"}
    both = merged(lsf, cli, cluster)
    assert both["cores"] == 8 and both["memory"] == "32GB" and both["queue"] == "night"
    assert "job_directives_skip" not in both  # the walltime given is written
    # runners.lsf is not mixed into a cluster of another type
    assert merged(lsf, {}, {"type": "slurm", "cores": 2})["type"] == "lsf"


@given(st.integers(min_value=1, max_value=10**7))
def test_max_memory_is_in_megabytes(megabytes):
    assert lsf_cluster({"max_memory": megabytes})["memory"] == f"{megabytes}MB"
    assert lsf_cluster({"max_memory": str(megabytes)})["memory"] == f"{megabytes}MB"
    assert lsf_cluster({"memory": f"{megabytes}GB"})["memory"] == f"{megabytes}GB"
