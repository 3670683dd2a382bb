"""The store's table rows, as the writes make them (the driver's direct SQLite path and
`Writes` alike): an execution's row, its runs' rows (each spec compacted: the fields its
columns hold are left out), and the parameters of the run-started and run-finished updates;
and `whole_spec`, which undoes the compaction for the reads, so its format lives here alone.

Apart from the records the reads hand out (`records`), so that recording an execution (a
no-op re-run's only write) creates none of their classes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from sqlalchemy import Row

EXECUTION_STATUSES = ("running", "succeeded", "failed", "cancelled", "interrupted")
OK = (RunStatus.SUCCEEDED.value, RunStatus.CACHED.value)  # run statuses that count as a success


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def execution_row(
    label: str,
    project: str,
    argv: list[str],
    git: GitInfo,
    pid: int | None,
    host: str | None,
    *,
    started_at: float,
) -> dict[str, Any]:
    """An execution's row, running, without its id."""
    return {
        "label": label,
        "project": project,
        "argv": list(argv),
        "git_commit": git.commit,
        "git_branch": git.branch,
        "git_dirty": git.dirty,
        "status": "running",
        "started_at": started_at,
        "pid": pid,
        "host": host,
        "heartbeat_at": started_at,  # creating it is a sign of life
    }


def settled_execution_row(
    label: str,
    project: str,
    argv: list[str],
    git: GitInfo,
    pid: int | None,
    host: str | None,
    *,
    status: str,
    started_at: float,
    ended_at: float,
) -> dict[str, Any]:
    """The row of an execution recorded finished with `status` (create_settled_execution of
    `Writes` and of `DirectStore`), without its id; a running or unknown status is refused."""
    if status not in EXECUTION_STATUSES or status == "running":
        raise ValueError(f"create_settled_execution: invalid status {status!r}")
    row = execution_row(label, project, argv, git, pid, host, started_at=started_at)
    row.update(status=status, ended_at=ended_at)
    return row


def run_row(
    execution_id: str, spec: dict[str, Any], fingerprint: str | None, result: RunResult | None
) -> dict[str, Any]:
    row = {
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
    }
    row["spec"] = _compact(spec, row)
    if result is not None:
        row.update(
            status=RunStatus(result.status).value,
            metrics=result.metrics,
            error=result.error,
            started_at=result.started_at or None,
            ended_at=result.ended_at or None,
            host=result.host or None,
            attempt=result.attempt,
        )
    return row


def run_rows(
    execution_id: str,
    specs: Sequence[dict[str, Any]],
    fingerprints: Sequence[str | None] | None,
    results: Mapping[str, RunResult] | None,
) -> list[dict[str, Any]]:
    """The rows of planned runs: PENDING, or finished with their result when settled."""
    if fingerprints is not None and len(fingerprints) != len(specs):
        raise ValueError(f"add_runs: {len(specs)} specs but {len(fingerprints)} fingerprints")
    prints = fingerprints if fingerprints is not None else [None] * len(specs)
    settled = results or {}
    return [
        run_row(execution_id, s, f, settled.get(str(s["id"])))
        for s, f in zip(specs, prints, strict=True)
    ]


def no_execution(ref: str, shown_url: str) -> StoreError:
    """The error for an execution `ref` the store at `shown_url` does not have."""
    return StoreError(
        f"There is no execution {ref!r} (nor one whose id starts with it) in the run store "
        f"at {shown_url}."
    )


def finished_status(status: object) -> str:
    """An execution's final status as stored (a str Enum is welcome too); ValueError if it
    is not one, or is "running"."""
    value = str(getattr(status, "value", status))
    if value not in EXECUTION_STATUSES or value == "running":
        raise ValueError(f"finish_execution: invalid status {value!r}")
    return value


def start_params(
    execution_id: str, started: Sequence[tuple[str, float, str, int]]
) -> list[dict[str, Any]]:
    """The parameters of `record`'s run-started update, one per (key, started_at, host,
    attempt): RUNNING, its last end and error cleared. `b_` ones find the run."""
    return [
        {
            "b_execution_id": execution_id,
            "b_key": key,
            "status": RunStatus.RUNNING.value,
            "started_at": at,
            "host": host,
            "attempt": attempt,
            "ended_at": None,
            "error": None,
        }
        for key, at, host, attempt in started
    ]


def finish_params(execution_id: str, finished: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The parameters of `record`'s run-finished update, one per result. An unset start
    time, host, output dir or fingerprint (None) keeps the stored one."""
    now = time.time()
    return [
        {
            "b_execution_id": execution_id,
            "b_key": r.key,
            "status": RunStatus(r.status).value,
            "metrics": r.metrics,
            "error": r.error,
            "ended_at": r.ended_at or now,
            "attempt": r.attempt,
            "b_started_at": r.started_at or None,
            "b_host": r.host or None,
            "b_output_dir": r.output_dir or None,
            "b_fingerprint": r.fingerprint or None,
        }
        for r in finished
    ]


# Fields of a spec that the run's columns hold too: stored once, in the column.
_IN_COLUMNS = {
    "batch": "batch",
    "input_path": "input_path",
    "rel_input_path": "rel_input_path",
    "type": "type",
    "configurations": "configurations",
    "configs": "configurations",
    "params": "params",
    "platform": "platform",
    "output_dir": "output_dir",
    "id": "key",
    "fingerprint": "fingerprint",
}
_MOVED = "_in_columns"  # the fields left out of the stored spec, to put back when read
_BITS = {k: 1 << i for i, k in enumerate(_IN_COLUMNS)}  # never reorder: stored rows use it


def _compact(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The spec without the fields its columns hold with the same value (half its size:
    10,000 runs are inserted per execution, cached ones included); `_in_columns` says which,
    as bits of `_BITS` (rows written before say it as a list of names)."""
    compact, moved = {}, 0
    for k, v in spec.items():
        column = _IN_COLUMNS.get(k)
        if column is not None and v == row[column]:
            moved |= _BITS[k]
        else:
            compact[k] = v
    compact[_MOVED] = moved
    return compact


def whole_spec(row: Row[Any]) -> dict[str, Any]:
    """A run row's whole spec again (what `_compact` stored, with the fields its columns
    hold put back): for the records the reads make of rows (`records.run_record`)."""
    spec = dict(row.spec)
    moved = spec.pop(_MOVED, ())
    names = [k for k, bit in _BITS.items() if moved & bit] if isinstance(moved, int) else moved
    for k in names:
        spec[k] = getattr(row, _IN_COLUMNS[k])
    return spec
