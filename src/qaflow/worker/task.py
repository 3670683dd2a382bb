"""What crosses to a worker process: a `RunTask`, with the run itself as a `RunPayload` (built
from the planner's `RunSpec` by the execution phase). Plain data only: both pickle.

Apart from `qaflow.worker.model` (statuses and results, which planning and a no-op re-run use
too) so that only the paths that execute runs create these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["run", "postprocess"]


@dataclass(frozen=True)
class RunPayload:
    """The run a worker executes, as planned: what it runs on, with what, and where its
    outputs go. Plain data (paths as strings), so it pickles cheaply."""

    batch: str
    batch_file: str | None
    input_path: str | None
    rel_input_path: str | None
    database: str
    type: str
    configurations: tuple[Any, ...]
    params: dict[str, Any]
    platform: str
    matrix: dict[str, Any]
    output_dir: str
    fingerprint: str | None = None
    command: str | None = None  # script batches and pipeline `run:` steps, as planned
    deferred: bool = False  # its configurations wait for upstream metrics
    parts: dict[str, Any] | None = None  # what its fingerprint is made of (see RunSpec)

    def record(self, key: str) -> dict[str, Any]:
        """The run's description in run.json: the keys of `qa batch --list` (RunSpec.to_dict)."""
        configurations = list(self.configurations)
        data: dict[str, Any] = {
            "batch": self.batch,
            "batch_file": self.batch_file,
            "input_path": self.input_path,
            "rel_input_path": self.rel_input_path,
            "database": self.database,
            "type": self.type,
            "configurations": configurations,
            "configs": list(configurations),
            "params": self.params,
            "platform": self.platform,
            "matrix": self.matrix,
            "output_dir": self.output_dir,
            "id": key,
            "fingerprint": self.fingerprint,
        }
        if self.command is not None:
            data["command"] = self.command
        if self.deferred:
            data["deferred"] = True
        return data


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute one run. Plain data, so it pickles."""

    key: str  # the run's identity (RunSpec.key); results come back under it
    payload: RunPayload  # the run: batch, input, configurations, params, output_dir…
    project_root: str
    entrypoint: str | None  # path of the file defining run(context); None for commands
    command: str | None = None  # a shell command to run instead of the entrypoint
    action: Action = "run"
    forwarded_args: tuple[str, ...] = ()
    extra_parameters: dict[str, Any] = field(default_factory=dict)
    dryrun: bool = False
    timeout: float | None = None  # seconds; enforced by the executor
    cpus: int = 1  # slots of the local pool this run occupies
    attempt: int = 1
    tee: bool = False  # also copy the run's output to our own stdout (qa run)
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables of the run
    reuse: bool = False  # a successful result already in output_dir may be reused (CACHED)
    lock_dir: str | None = None  # the folder whose `.locks` file holds this run's lock
    attempt_id: str = ""  # names this attempt's directory (`rundir.attempt_dir_of`)
    # QA-Board parity: what its run context and `context.obj` tell the user's code
    label: str = "default"
    project_name: str = ""
    subproject: str = "."
    share: bool = False
    runner: str = "local"
    job_options: dict[str, Any] = field(default_factory=dict)  # the batch's `local:`, `lsf:`…
    on_pending: str = "wait"  # --action-on-pending: wait, sync, skip or run
    postprocess: bool = True  # False: QA-Board's --no-postprocess, run() only
    # --action-on-existing postprocess of a run with no result: the result of the same run
    # made with --no-postprocess (its own fingerprint), to postprocess instead, if any
    postprocess_from: str | None = None
