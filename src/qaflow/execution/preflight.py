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
from pathlib import Path

from qaflow.config.entrypoint import check_entrypoint
from qaflow.config.project import Project
from qaflow.config.values import concurrency_value
from qaflow.errors import UsageError
from qaflow.execution.options import Options, runner_of
from qaflow.plan.model import Plan


@dataclass(frozen=True)
class Preflight:
    """What the checks resolved: where runs execute and how many at once."""

    runner: str  # local or dask
    capacity: int  # slots of the local pool
    limits: dict[str, int]  # batch -> runs of it at once (`local.concurrency`)
    # QA_BATCH_TIMEOUT, else runners.local.timeout: seconds (0: no limit), for the batches
    # that set none and when --local-timeout is not given
    timeout: float | None


def preflight(project: Project, the_plan: Plan, options: Options) -> Preflight:
    """Refuse what the execution cannot do (UsageError, nothing started); else what it uses."""
    runner = runner_of(project, options)
    needs_entrypoint = options.command is None and any(run.command is None for run in the_plan.runs)
    if needs_entrypoint:
        check_entrypoint(project.entrypoint)
    capacity, limits = concurrency(project, the_plan, options.concurrency)
    timeout = env_timeout()
    if timeout is None:  # as QA-Board, the variable first, then qaboard.yaml
        timeout = project.local_timeout
    check_storage(project.storage)
    check_database(project)
    if options.outputs_prefix is not None or options.output_path is not None:
        from qaflow.execution.publish import check_links

        check_links(the_plan, options, project.storage)
    return Preflight(runner=runner, capacity=capacity, limits=limits, timeout=timeout)


def check_database(project: Project) -> None:
    """A `database_url` is one qaflow supports, and its server answers (the default SQLite
    file needs no check: `check_storage` covers its folder)."""
    if project.database_url is None:
        return
    from qaflow.store import Store  # SQLAlchemy: only for projects that name a database

    Store.open(project.database_url, storage=project.storage).close()


def check_storage(storage: Path) -> None:
    """The storage folder is a folder we may write in, or can be created as one."""
    existing = storage
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling symlink: mkdir would fail on it
            break
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        what = "a dangling symlink" if existing.is_symlink() and not existing.exists() else "a file"
        problem = f"{str(existing)!r} is {what}, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"you may not write in {str(existing)!r}"
    if problem is not None:
        raise UsageError(
            f"Cannot use the storage folder {str(storage)!r}: {problem}. Set `storage:` in "
            "qaboard.yaml to a folder you may write in (it is created if missing)."
        )


def concurrency(project: Project, the_plan: Plan, cli: int | None) -> tuple[int, dict[str, int]]:
    """(capacity of the pool, per-batch limits): CLI, else batch `local.concurrency`, else
    `runners.local.concurrency`, else QA_BATCH_CONCURRENCY, else one per CPU (-1)."""
    cpus = os.cpu_count() or 1

    def resolve(value: int) -> int:
        return cpus if value <= 0 else value

    if cli is not None:
        try:
            return resolve(concurrency_value(cli)), {}
        except ValueError as exc:
            raise UsageError(f"--local-concurrency {cli}: {exc}.") from None
    default = project.local_concurrency
    if default is None:
        env = os.environ.get("QA_BATCH_CONCURRENCY")
        try:
            default = concurrency_value(int(env)) if env else -1
        except ValueError:
            raise UsageError(
                f"QA_BATCH_CONCURRENCY={env!r} is not a number of runs; set it to 1 or more, or -1 for one per CPU."
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
