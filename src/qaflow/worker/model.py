"""The vocabulary shared by the planner, the scheduler, the executors and the store: statuses
and results.

A `RunResult` is what comes back from a worker for a `RunTask` (`qaflow.worker.task`: what
crosses to it, imported only where runs execute). A failure of the user's code is a result with status
FAILED, never an exception; ERRORED means qaflow could not run it at all. (The executors'
seam, `Executor`, is on the run side: `qaflow.execution.model`.)
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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

PENDING_SKIPPED = "not executed: another execution is running it (--action-on-pending skip)"
"""The error of a run skipped because it was pending elsewhere: not a failure of the execution."""


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
    executions, background drivers): what `socket.gethostname()` answers, read from
    `os.uname()` without importing `socket` (~3 ms)."""
    return os.uname().nodename
