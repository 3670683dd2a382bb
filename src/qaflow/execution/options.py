"""`Options`: how to execute, everything `qa batch` accepts besides the batch names; and
`runner_of`, the runner they and the project choose.

Apart from the execution's other types (`qaflow.execution.model`, which re-exports it) so
that a dry run, a `--list` and the CLI's option parsing import only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qaflow.errors import UsageError
from qaflow.plan.model import PlanOptions

if TYPE_CHECKING:
    from qaflow.config.project import Project

ActionOnExisting = Literal["run", "postprocess", "sync", "skip"]


@dataclass(frozen=True)
class Options:
    """How to execute: everything `qa batch` accepts besides the batch names."""

    label: str = "default"
    plan: PlanOptions = field(default_factory=PlanOptions)
    runner: str | None = None
    dask_scheduler: str | None = None  # the address of a Dask scheduler (runner dask)
    concurrency: int | None = None
    action_on_existing: ActionOnExisting = "run"
    forwarded_args: tuple[str, ...] = ()
    dryrun: bool = False
    command: str | None = None
    tee: bool = False
    argv: tuple[str, ...] = ()
    force: bool = False  # execute every planned run, even those with an up-to-date result
    force_batches: tuple[str, ...] = ()  # execute the runs of these batches (and what needs them)
    lsf: dict[str, Any] = field(default_factory=dict)  # QA-Board's --lsf-* given, by key
    share: bool = False  # QA-Board's --share: the project's runs go to its shared `storage:`
    local_timeout: float | None = None  # QA-Board's --local-timeout: seconds; 0: no limit
    dask_concurrency: int | None = None  # QA-Board's --dask-concurrency: runs at once; 0: any
    action_on_pending: str = "wait"  # QA-Board's: runs another execution runs (`worker.execute`)
    outputs_prefix: str | None = None  # QA-Board's --prefix-outputs-path (`execution.publish`)
    output_path: str | None = None  # QA-Board's `qa run -o`: the single run's results there too
    save_manifests_in_database: bool = False  # copy the manifests into the input folders

    def to_json(self) -> dict[str, Any]:
        """The options as JSON-able data (`from_json` makes them again): what a background
        execution's driver reads instead of re-parsing a command line."""
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "plan"}
        data["plan"] = {f.name: _jsonable(getattr(self.plan, f.name)) for f in fields(self.plan)}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        """The options `to_json` wrote: tuples and paths are made again from their JSON form."""
        plan = dict(data["plan"])
        if plan.get("configs") is not None:
            plan["configs"] = tuple(plan["configs"])
        if plan.get("tuned_batches") is not None:
            plan["tuned_batches"] = tuple(plan["tuned_batches"])
        if "shared_roots" in plan:
            plan["shared_roots"] = tuple(plan["shared_roots"])
        if "searched" in plan:
            plan["searched"] = tuple(plan["searched"])
        if plan.get("database") is not None:
            plan["database"] = Path(plan["database"])
        tuples = {f.name for f in fields(cls) if isinstance(getattr(cls, f.name, None), tuple)}
        values: dict[str, Any] = {
            k: tuple(v) if k in tuples else v for k, v in data.items() if k != "plan"
        }
        return cls(**values, plan=PlanOptions(**plan))


def _jsonable(value: Any) -> Any:
    """A field's value for JSON: paths as strings, tuples as lists (inner values as they are)."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


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
