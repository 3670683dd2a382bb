"""What the store hands out: plain records of executions and runs (frozen dataclasses, and
NamedTuples for the reads that return many narrow rows), made from their table rows (the
rows the writes make are in `rows`).

Every query module (writes, lookups, board, history) returns these and nothing else: no
SQLAlchemy row, no type of a higher phase (a comparison builds its `CompareRun` from a
`CompareRow`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from qaflow.config.git import GitInfo
from qaflow.store.rows import whole_spec
from qaflow.worker.model import RunStatus

if TYPE_CHECKING:
    from sqlalchemy import Row


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


class RunSummary(NamedTuple):
    """A run as a table of runs shows it."""

    id: int
    key: str
    batch: str
    rel_input_path: str | None
    configurations: list[Any]
    status: str
    metrics: dict[str, Any]
    started_at: float | None
    ended_at: float | None
    output_dir: str


class CompareRow(NamedTuple):
    """A run as a comparison reads it: the columns `History.compare_runs` selects."""

    key: str
    batch: str
    input: str | None  # rel_input_path
    platform: str
    configurations: list[Any]
    matrix: dict[str, Any]
    status: str
    metrics: dict[str, Any]
    output_dir: str


# ---------------------------------------------------------------- rows -> records
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
        spec=whole_spec(row),
    )
