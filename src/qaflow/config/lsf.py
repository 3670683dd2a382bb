"""QA-Board's LSF settings (`runners.lsf` in qaboard.yaml, `qa batch --lsf-*`) as the options
of dask-jobqueue's `LSFCluster`, whose jobs are Dask workers that execute the runs.

QA-Board submits one `bsub` job per run; qaflow submits worker jobs that each execute
runs one at a time, with what QA-Board would have asked for each run:

    QA-Board (runners.lsf / --lsf-*)   LSFCluster option           job script
    queue: normal                      queue                       #BSUB -q normal
    project: imaging                   project                     #BSUB -P "imaging"
    max_threads: 4   (0: unset)        ncpus (cores stays 1)       #BSUB -n 4
    max_memory: 16000 (MB; 0: unset)   memory "16000MB"            #BSUB -M … (+ the
                                                                   worker's memory limit)
    resources: "select[gpu]"           job_extra_directives        #BSUB -R "select[gpu]"
    priority: 2000                     job_extra_directives        #BSUB -sp 2000
    options: "-W 24:00"                job_extra_directives        #BSUB -W 24:00
    concurrency: 10  (0: unlimited)    maximum_jobs (qaflow's)     at most 10 jobs at once

Without max_memory a job asks for 4GB, as QA-Board's Dask runner did; without a walltime
(dask-jobqueue's `walltime`, or `-W` in `options`) no `-W` is written, so the queue's
limit applies. Keys of `runners.dask.cluster` (when its type is lsf) override these.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

DEFAULT_MEMORY = "4GB"


def lsf_cluster(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `runners.dask.cluster` options (type lsf) that these QA-Board LSF settings mean."""
    memory = settings.get("max_memory") or settings.get("memory") or 0
    threads = int(settings.get("max_threads") or 0)
    directives = []
    if settings.get("resources"):
        directives.append(f'-R "{settings["resources"]}"')
    if settings.get("priority") is not None:
        directives.append(f"-sp {int(settings['priority'])}")
    options = str(settings.get("options") or "").strip()
    if options:
        directives.append(options)
    cluster: dict[str, Any] = {
        "type": "lsf",
        "cores": 1,  # one run at a time per job, with the job's slots (max_threads)
        "processes": 1,
        "memory": _memory(memory),
        "job_extra_directives": directives,
    }
    if threads > 0:
        cluster["ncpus"] = threads
    for key in ("queue", "project"):
        if settings.get(key):
            cluster[key] = str(settings[key])
    if int(settings.get("concurrency") or 0) > 0:
        cluster["maximum_jobs"] = int(settings["concurrency"])
    if "-W" not in shlex.split(options):
        cluster["job_directives_skip"] = ["#BSUB -W"]  # the queue's limit, unless given
    return cluster


def _memory(value: Any) -> str:
    """QA-Board's max_memory is in MB (a number); a string with a unit is taken as it is."""
    if isinstance(value, str) and not value.strip().isdigit():
        return value.strip()
    return f"{int(value)}MB" if int(value) > 0 else DEFAULT_MEMORY


def merged(
    lsf: Mapping[str, Any], cli: Mapping[str, Any], cluster: Mapping[str, Any]
) -> dict[str, Any]:
    """The LSF cluster's options: `runners.lsf`, then the `--lsf-*` given, mapped; then the
    keys of `runners.dask.cluster` when its type is lsf, which override them."""
    given = {**lsf, **{k: v for k, v in cli.items() if v is not None}}
    out = lsf_cluster(given)
    if cluster.get("type") == "lsf":
        if "walltime" in cluster:
            out.pop("job_directives_skip", None)
        out |= dict(cluster)
    return out
