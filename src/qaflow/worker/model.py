"""The vocabulary shared by the scheduler, the executors and the store: statuses, tasks, results.

A `RunTask` is what crosses to a worker process (it pickles: plain data only), with the run
itself as a `RunPayload` (built from the planner's `RunSpec` by the execution phase); a
`RunResult` is what comes back. A failure of the user's code is a result with status
FAILED, never an exception; ERRORED means qaflow could not run it at all. (The executors'
seam, `Executor`, is on the run side: `qaflow.execution.model`.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class RunStatus(StrEnum):
    """The life of a run. `style` and `symbol` are how the console and the board show it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the user's code failed (raised, exited, crashed, timed out)
    ERRORED = "errored"  # qaflow could not execute it
    SKIPPED = "skipped"  # not executed: upstream failed, or --action-on-existing skip
    CACHED = "cached"  # an up-to-date result was reused
    INTERRUPTED = "interrupted"  # its driver died while it ran
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)

    @property
    def ok(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.CACHED)

    @property
    def style(self) -> str:
        return _STYLES[self]

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_STYLES = {
    RunStatus.PENDING: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.ERRORED: "red",
    RunStatus.SKIPPED: "yellow",
    RunStatus.CACHED: "blue",
    RunStatus.INTERRUPTED: "magenta",
    RunStatus.CANCELLED: "yellow",
}
_SYMBOLS = {
    RunStatus.PENDING: "·",
    RunStatus.RUNNING: "▶",
    RunStatus.SUCCEEDED: "✓",
    RunStatus.FAILED: "✗",
    RunStatus.ERRORED: "!",
    RunStatus.SKIPPED: "-",
    RunStatus.CACHED: "=",
    RunStatus.INTERRUPTED: "?",
    RunStatus.CANCELLED: "-",
}

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


PENDING_SKIPPED = "not executed: another execution is running it (--action-on-pending skip)"
"""The error of a run skipped because it was pending elsewhere: not a failure of the execution."""


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


@dataclass(frozen=True)
class RunResult:
    """What came of executing a task."""

    key: str
    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # one line first, then details (e.g. the traceback)
    started_at: float = 0.0  # time.time()
    ended_at: float = 0.0
    host: str = ""
    pid: int = 0
    attempt: int = 1
    output_dir: str | None = None  # where its files are: the committed result, or the attempt's
    fingerprint: str | None = None  # the run's final fingerprint (upstream outputs known)
    digest: str | None = None  # of what a successful run produced (`rundir.result_digest`)
    parts: dict[str, Any] | None = None  # what its final fingerprint is made of

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def error_line(self) -> str:
        return (
            (self.error or "").strip().splitlines()[0] if self.error and self.error.strip() else ""
        )


@functools.cache
def hostname() -> str:
    """This machine's name, as every record of a run or an execution gives it (results,
    executions, background drivers); `socket` (~3 ms of imports) is imported when it is
    first asked for."""
    import socket

    return socket.gethostname()
