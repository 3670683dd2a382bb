"""Preflight: what an execution refuses before anything is recorded or started.

One check for both paths, the foreground driver (`driver.execute`) and the background
start (`background.start`, which must refuse in the foreground what its detached driver
would): the runner is known, the entrypoint exists (unless every run has a command), and
the environment's QA_BATCH_CONCURRENCY and QA_BATCH_TIMEOUT are numbers. What it resolved
on the way (runner, capacity, per-batch limits, timeout) is what the execution uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qaflow.config.project import Project
from qaflow.errors import UsageError
from qaflow.execution.model import Options
from qaflow.plan.model import Plan


@dataclass(frozen=True)
class Preflight:
    """What the checks resolved: where runs execute and how many at once."""

    runner: str  # local or dask
    capacity: int  # slots of the local pool
    limits: dict[str, int]  # batch -> runs of it at once (`local.concurrency`)
    timeout: float | None  # QA_BATCH_TIMEOUT: seconds, for the batches that set none


def preflight(project: Project, the_plan: Plan, options: Options) -> Preflight:
    """Refuse what the execution cannot do (UsageError, nothing started); else what it uses."""
    runner = runner_of(project, options)
    needs_entrypoint = options.command is None and any(run.command is None for run in the_plan.runs)
    if needs_entrypoint and not project.entrypoint.is_file():
        raise UsageError(
            f"The entrypoint {str(project.entrypoint)!r} does not exist. Create it with a `run(context)` function "
            "(`qa init` writes a sample), set `project.entrypoint` in qaboard.yaml, or give a command: "
            "qa run -i INPUT 'echo \"{input_path} => {output_dir}\"'."
        )
    capacity, limits = concurrency(project, the_plan, options.concurrency)
    return Preflight(runner=runner, capacity=capacity, limits=limits, timeout=env_timeout())


def runner_of(project: Project, options: Options) -> str:
    """--runner, else dask when a Dask scheduler is given, else runners.default. QA-Board's
    `lsf` runner is the Dask runner on an LSF cluster (`cluster.cluster_options`)."""
    runner = options.runner or ("dask" if options.dask_scheduler else project.runner)
    if runner not in ("local", "dask", "lsf"):
        raise UsageError(
            f"Unknown runner {runner!r} (from --runner or runners.default in qaboard.yaml): "
            "use local, dask or lsf."
        )
    return "dask" if runner == "lsf" else runner


def concurrency(project: Project, the_plan: Plan, cli: int | None) -> tuple[int, dict[str, int]]:
    """(capacity of the pool, per-batch limits): CLI, else batch `local.concurrency`, else
    `runners.local.concurrency`, else QA_BATCH_CONCURRENCY, else one per CPU (-1)."""
    cpus = os.cpu_count() or 1

    def resolve(value: int) -> int:
        return cpus if value <= 0 else value

    if cli is not None:
        return resolve(cli), {}
    default = project.local_concurrency
    if default is None:
        env = os.environ.get("QA_BATCH_CONCURRENCY")
        try:
            default = int(env) if env else -1
        except ValueError:
            raise UsageError(
                f"QA_BATCH_CONCURRENCY={env!r} is not a number; set it to a number of runs, or -1 for one per CPU."
            ) from None
    limits = {
        name: resolve(s.concurrency)
        for name, s in the_plan.settings.items()
        if s.concurrency is not None
    }
    capacity = max([resolve(default), *limits.values()])
    return capacity, limits


def env_timeout() -> float | None:
    """QA_BATCH_TIMEOUT, in seconds (None: unset)."""
    value = os.environ.get("QA_BATCH_TIMEOUT")
    try:
        return float(value) if value else None
    except ValueError:
        raise UsageError(f"QA_BATCH_TIMEOUT={value!r} is not a number of seconds.") from None
