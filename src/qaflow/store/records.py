"""What the store hands out: frozen records of executions and runs, and their table rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qaflow.runs import RunStatus

if TYPE_CHECKING:
    from sqlalchemy import Row

EXECUTION_STATUSES = ("running", "succeeded", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class GitInfo:
    """The state of the project's git checkout when an execution started."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


@dataclass(frozen=True)
class ExecutionRecord:
    """One `qa batch`/`qa run`: who ran what, when, and how its runs stand."""

    id: str
    label: str
    project: str
    argv: list[str]
    git: GitInfo
    status: str  # one of EXECUTION_STATUSES
    started_at: float  # time.time() seconds
    ended_at: float | None
    pid: int | None
    host: str | None
    heartbeat_at: float | None
    counts: dict[str, int]  # RunStatus value -> number of this execution's runs in it


@dataclass(frozen=True)
class RunRecord:
    """One run of an execution, as planned (its spec) and as it went (status, metrics…)."""

    id: int
    execution_id: str
    key: str
    fingerprint: str | None
    batch: str
    input_path: str | None
    rel_input_path: str | None
    configurations: list[Any]
    params: dict[str, Any]
    platform: str
    type: str
    output_dir: str
    status: RunStatus
    metrics: dict[str, Any]
    error: str | None
    started_at: float | None
    ended_at: float | None
    host: str | None
    attempt: int  # attempts so far: 0 while pending
    spec: dict[str, Any]  # the whole RunSpec.to_dict(), as given to add_runs


# ---------------------------------------------------------------- rows <-> records
def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def run_row(execution_id: str, spec: dict[str, Any], fingerprint: str | None) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "key": str(spec["id"]),
        "fingerprint": fingerprint,
        "batch": str(spec["batch"]),
        "input_path": _optional_str(spec.get("input_path")),
        "rel_input_path": _optional_str(spec.get("rel_input_path")),
        "configurations": list(spec.get("configurations", [])),
        "params": spec.get("params", {}),
        "platform": str(spec["platform"]),
        "type": str(spec["type"]),
        "output_dir": str(spec["output_dir"]),
        "status": RunStatus.PENDING.value,
        "metrics": {},
        "error": None,
        "started_at": None,
        "ended_at": None,
        "host": None,
        "attempt": 0,
        "spec": spec,
    }


def execution_record(row: Row[Any], counts: dict[str, int]) -> ExecutionRecord:
    return ExecutionRecord(
        id=row.id,
        label=row.label,
        project=row.project,
        argv=list(row.argv),
        git=GitInfo(commit=row.git_commit, branch=row.git_branch, dirty=row.git_dirty),
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        pid=row.pid,
        host=row.host,
        heartbeat_at=row.heartbeat_at,
        counts=counts,
    )


def run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        execution_id=row.execution_id,
        key=row.key,
        fingerprint=row.fingerprint,
        batch=row.batch,
        input_path=row.input_path,
        rel_input_path=row.rel_input_path,
        configurations=row.configurations,
        params=row.params,
        platform=row.platform,
        type=row.type,
        output_dir=row.output_dir,
        status=RunStatus(row.status),
        metrics=row.metrics,
        error=row.error,
        started_at=row.started_at,
        ended_at=row.ended_at,
        host=row.host,
        attempt=row.attempt,
        spec=row.spec,
    )
