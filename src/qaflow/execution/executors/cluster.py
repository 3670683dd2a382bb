"""Where a Dask execution runs: an existing scheduler, a LocalCluster, or batch-system jobs.

Policy
- `--dask-scheduler ADDRESS`, else `runners.dask.scheduler_address`: connect to that
  scheduler; nothing is started or stopped. Else `runners.dask.cluster` (`type: local` when
  absent): a `distributed.LocalCluster`, or a dask-jobqueue cluster (`slurm`, `lsf`, `pbs`,
  `sge`) whose other keys are dask-jobqueue's options. A cluster of ours is started for the
  execution when it has something to execute, scaled to that work (a LocalCluster: one
  worker per run up to one per CPU; jobs: adaptive, up to `maximum_jobs`, by default one
  job per run), and closed at the end.
- Checked before anything is recorded, on the workers connected: they see the project and
  the storage folder at the driver's paths, they can import qaflow, and some worker offers
  each resource a batch asks for. Workers that join later are checked by each run.
- Resources (`resources:` of a batch → Dask task resources): `gpus` → `GPU`, `memory` →
  `MEMORY` (bytes), any other name as written; `cpus` → `CPU`, and `memory` too, only when
  the workers declare that resource: otherwise a run takes one worker thread and the
  worker's memory limit applies, since a constraint no worker offers would never run.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from qaflow.config.lsf import merged
from qaflow.errors import ExecutorError, UsageError
from qaflow.execution.executors.dask_worker import Shared, shared_problem

if TYPE_CHECKING:
    from distributed import Client

    from qaflow.config.project import Project
    from qaflow.execution.options import Options
    from qaflow.plan.model import Plan

JOBQUEUE = {"slurm": "SLURMCluster", "lsf": "LSFCluster", "pbs": "PBSCluster", "sge": "SGECluster"}
# dask-jobqueue's former option names (still in many docs and in QA-Board setups), renamed
RENAMED = {
    "job_extra": "job_extra_directives",
    "extra": "worker_extra_args",
    "env_extra": "job_script_prologue",
    "header_skip": "job_directives_skip",
}
CONNECT_TIMEOUT = 10  # seconds to reach an existing scheduler
OPTIONAL_RESOURCES = {"cpus": "CPU", "memory": "MEMORY"}  # constraints only where offered
ALWAYS_RESOURCES = {"gpus": "GPU"}


class Cluster:
    """The Dask cluster of one execution: `client(work)` connects (or starts it) on first use."""

    def __init__(
        self,
        *,
        description: str,
        offered: dict[str, float] | None,
        client: Client | None = None,
        local: dict[str, Any] | None = None,
        jobs: Any = None,
        maximum_jobs: int | None = None,
        retries: int = 0,
    ) -> None:
        self.description = description
        self.offered = offered  # resource -> most a worker offers; None: unknown (no worker yet)
        self._client = client
        self._local = local  # LocalCluster options, started on first use
        self._jobs = jobs  # a dask-jobqueue cluster, scaled on first use
        self._maximum_jobs = maximum_jobs
        self._retries = retries
        self._started: Any = None

    def client(self, work: int) -> Client:
        """The client, the cluster started and scaled for `work` runs if it is ours."""
        if self._client is not None:
            return self._client
        from distributed import Client, LocalCluster

        if self._jobs is not None:
            self._jobs.adapt(minimum_jobs=0, maximum_jobs=max(1, self._maximum_jobs or work))
            self._client = Client(self._jobs, set_as_default=False)
            return self._client
        allow_failures(self._retries)
        options: dict[str, Any] = {
            "n_workers": max(1, min(os.cpu_count() or 1, work)),
            "threads_per_worker": 1,
        }
        options |= {"dashboard_address": ":0", **(self._local or {})}  # no fixed port to clash on
        try:
            self._started = LocalCluster(**options)
        except Exception as exc:
            raise ExecutorError(f"cannot start the local Dask cluster: {exc}") from exc
        self._client = Client(self._started, set_as_default=False)
        return self._client

    def check_submit(self) -> None:
        """UsageError when the batch system's submit command (sbatch, bsub…) is not here."""
        if self._jobs is None:
            return
        command = self._jobs.job_cls.submit_command
        if shutil.which(command) is None:
            raise UsageError(
                f"`{command}` is not found on this machine's PATH, so {self.description} "
                "(runners.dask.cluster in qaboard.yaml) cannot submit its worker jobs. Run qa "
                f"where `{command}` works (a login node of the cluster), or use another runner "
                "(--runner local)."
            )

    @property
    def connected(self) -> Client | None:
        return self._client

    def close(self) -> None:
        for closable in (self._client, self._jobs, self._started):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()

    def resources(self, batch: str, wanted: Mapping[str, Any]) -> dict[str, float]:
        """The Dask resources of a run of `batch`; UsageError if no worker can offer them."""
        resources = task_resources(batch, wanted, self.offered or {})
        if self.offered is None:
            return resources
        short = {k: v for k, v in resources.items() if self.offered.get(k, 0) < v}
        if short:
            asked = ", ".join(f"{k}={v:g}" for k, v in short.items())
            have = ", ".join(f"{k}={v:g}" for k, v in self.offered.items()) or "none"
            raise UsageError(
                f"Batch {batch!r} asks for the Dask resources {asked}, which no worker of "
                f"{self.description} offers (the most a worker offers: {have}). Start workers "
                f"with them (`dask worker ADDRESS --resources '{asked.replace(', ', ' ')}'`, or "
                "`resources:` / `worker_extra_args` in runners.dask.cluster), or change the "
                "batch's `resources:`."
            )
        return resources


def task_resources(
    batch: str, wanted: Mapping[str, Any], offered: Mapping[str, float]
) -> dict[str, float]:
    """A batch's `resources:` as Dask task resources (see the module policy)."""
    from dask.utils import parse_bytes

    out: dict[str, float] = {}
    for name, value in wanted.items():
        try:
            amount = float(parse_bytes(value) if name == "memory" else value)
        except (TypeError, ValueError):
            example = "8GB" if name == "memory" else "1"
            raise UsageError(
                f"Batch {batch!r}: `resources.{name}` is {value!r}, not an amount (e.g. {example})."
            ) from None
        dask_name = OPTIONAL_RESOURCES.get(name) or ALWAYS_RESOURCES.get(name) or name
        if name in OPTIONAL_RESOURCES and dask_name not in offered:
            continue
        if amount > 0:
            out[dask_name] = amount
    return out


@contextlib.contextmanager
def open_cluster(
    project: Project,
    the_plan: Plan,
    address: str | None = None,
    *,
    batches: Collection[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Iterator[Cluster]:
    """The execution's cluster (see the module policy), checked; closed when done.

    `batches`: those with runs to execute (default: all); only their `resources:` must be
    offered by a worker: a cached GPU batch needs no GPU worker. `options`: the cluster's
    (default: runners.dask.cluster)."""
    settings = project.dask
    address = address or settings.get("scheduler_address")
    retries = max((s.retries for s in the_plan.settings.values()), default=0)
    if options is None:
        options = settings.get("cluster") or {}
    cluster = connect(address) if address else configured(options, retries)
    try:
        if cluster.connected is not None:
            check_workers(cluster.connected, project, cluster.description)
        if batches is None or batches:
            cluster.check_submit()
        for name, settings_of in the_plan.settings.items():
            if batches is None or name in batches:
                cluster.resources(name, settings_of.resources)
        yield cluster
    finally:
        cluster.close()


def cluster_options(project: Project, options: Options) -> dict[str, Any]:
    """The options of the cluster an execution starts: runners.dask.cluster, or with QA-Board's
    LSF runner (`--runner lsf`, `runners.default: lsf`) or an LSF cluster, runners.lsf and the
    `--lsf-*` given mapped onto LSFCluster's (`qaflow.config.lsf`)."""
    cluster = dict(project.dask.get("cluster") or {})
    if (options.runner or project.runner) == "lsf" or cluster.get("type") == "lsf":
        return merged(project.lsf, options.lsf, cluster)
    return cluster


def job_script(project: Project, options: Options) -> str | None:
    """The job script the execution's batch-system cluster would submit (None: no such
    cluster, or an existing scheduler is used): what `qa --dryrun batch` shows."""
    if options.dask_scheduler or project.dask.get("scheduler_address"):
        return None
    settings = cluster_options(project, options)
    if settings.get("type", "local") == "local":
        return None
    cluster = configured(settings, retries=0)
    try:
        return str(cluster._jobs.job_script())
    finally:
        cluster.close()


def connect(address: str) -> Cluster:
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"Cannot reach the Dask scheduler at {address!r}: {exc}. Start one (`dask scheduler`, "
            f"then `dask worker {address}` on each machine), or fix `--dask-scheduler` / "
            "runners.dask.scheduler_address in qaboard.yaml."
        ) from exc
    workers = client.scheduler_info().get("workers", {})
    offered: dict[str, float] = {}
    for info in workers.values():
        for name, amount in (info.get("resources") or {}).items():
            offered[name] = max(offered.get(name, 0.0), float(amount))
    return Cluster(
        description=f"the Dask scheduler {address}",
        offered=offered if workers else None,
        client=client,
    )


def configured(options: Mapping[str, Any], retries: int) -> Cluster:
    """A cluster of ours from `runners.dask.cluster`: LocalCluster options, or jobqueue's.
    Nothing is imported nor started for a LocalCluster until there is work."""
    options = dict(options)
    kind = options.pop("type", "local")
    maximum_jobs = options.pop("maximum_jobs", None)
    if kind == "local":
        check_local_options(options)
        resources = {k: float(v) for k, v in (options.get("resources") or {}).items()}
        return Cluster(
            description="the local Dask cluster", offered=resources, local=options, retries=retries
        )
    allow_failures(retries)
    jobs = jobqueue_cluster(kind, options)
    return Cluster(
        description=f"the {kind.upper()} cluster",
        offered=_declared_resources(jobs),
        jobs=jobs,
        maximum_jobs=maximum_jobs,
    )


def check_local_options(options: Mapping[str, Any]) -> None:
    """UsageError for a key that LocalCluster (or the workers it passes the rest to) does not
    take: it would only fail once the cluster starts, in its workers."""
    if not options:
        return
    import inspect

    from distributed import LocalCluster, Nanny, Worker

    known = set()
    for function in (LocalCluster.__init__, Nanny.__init__, Worker.__init__):
        known |= set(inspect.signature(function).parameters) - {"self", "kwargs"}
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"runners.dask.cluster in qaboard.yaml: {key!r} is not an option of "
                f"distributed.LocalCluster or its workers.{hint} The options are LocalCluster's: "
                "n_workers, threads_per_worker, processes, memory_limit, resources…"
            )


def allow_failures(retries: int) -> None:
    """A run may execute again after its worker died up to `retries` times: the scheduler we
    start must not give up on its task first (its default allowed-failures is 3)."""
    import dask
    import distributed  # noqa: F401  (loads its configuration defaults)

    allowed = max(int(dask.config.get("distributed.scheduler.allowed-failures")), retries + 1)
    dask.config.set({"distributed.scheduler.allowed-failures": allowed})


def jobqueue_cluster(kind: str, options: Mapping[str, Any]) -> Any:
    """A dask-jobqueue cluster (its scheduler runs here; no job is submitted until scaled)."""
    dask_jobqueue = _import_jobqueue()
    if kind not in JOBQUEUE:
        raise UsageError(
            f"runners.dask.cluster.type in qaboard.yaml is {kind!r}; give one of local, "
            f"{', '.join(JOBQUEUE)}."
        )
    kwargs = {RENAMED.get(k, k): v for k, v in options.items()}
    kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
    try:
        return getattr(dask_jobqueue, JOBQUEUE[kind])(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"runners.dask.cluster ({kind}) in qaboard.yaml: {exc}. Its keys are dask-jobqueue's "
            f"{JOBQUEUE[kind]} options (cores, memory, queue, walltime, job_extra_directives…)."
        ) from exc


def _import_jobqueue() -> Any:
    """dask_jobqueue, without the SIGINT handler its import installs (it exits the process):
    Ctrl-C must stay a KeyboardInterrupt, which cancels the execution."""
    previous = signal.getsignal(signal.SIGINT)
    import dask_jobqueue

    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)
    return dask_jobqueue


def _declared_resources(jobs: Any) -> dict[str, float]:
    """The resources the jobs' workers declare (`--resources A=1,B=2` in their command)."""
    declared: dict[str, float] = {}
    for value in re.findall(r"--resources[= ]+['\"]?([^'\"\s]+)", jobs.job_script()):
        for item in value.split(","):
            name, _, amount = item.partition("=")
            with contextlib.suppress(ValueError):
                declared[name] = float(amount)
    return declared


def check_workers(client: Client, project: Project, where: str) -> None:
    """UsageError naming the workers that cannot see the project or the storage folder."""
    marker_dir = project.storage / "executions"
    marker_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    marker = marker_dir / f".dask-check-{token}"
    marker.write_text(token, encoding="utf-8")
    try:
        problems = client.run(shared_problem, Shared.of(project.root, marker, token, stamped=True))
    except Exception as exc:
        raise UsageError(
            f"The workers of {where} cannot run qaflow's check: {type(exc).__name__}: {exc}. "
            "Install qaflow, the same version, in the workers' Python environment."
        ) from exc
    finally:
        marker.unlink(missing_ok=True)
    blind = {address: problem for address, problem in problems.items() if problem}
    if blind:
        listed = "; ".join(f"{address}: {problem}" for address, problem in sorted(blind.items()))
        raise UsageError(
            f"{len(blind)} of the {len(problems)} Dask workers of {where} do not see the project "
            f"{project.root} and its storage folder {project.storage} at the same paths as this "
            f"machine ({listed}). Runs read inputs and write results there: mount that shared "
            "filesystem at the same path on every worker machine, or stop those workers."
        )
