"""What drivers write: executions created, adopted, kept alive and finished; their planned
runs added, started and finished; statuses set in bulk.

Consumers: the recorder (execution/recorder.py: add_runs, record, heartbeat, finish_execution),
the driver (execution/driver.py: create_execution, adopt_execution) and background executions
(execution/background.py: create_execution, adopt_execution, finish_execution, set_status).
Every call is one transaction; the hot ones (run_started, run_finished, record) are Core
UPDATEs found by (execution_id, key) through the unique index, with no read before them.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, func, insert, select, update

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store import engine as db
from qaflow.store.base import Database
from qaflow.store.codec import CHUNK
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.store.queries import exists
from qaflow.store.rows import (
    execution_row,
    finish_params,
    finished_status,
    run_rows,
    settled_execution_row,
    start_params,
)
from qaflow.worker.model import RunResult, RunStatus

_BY_KEY = update(RUNS).where(
    RUNS.c.execution_id == bindparam("b_execution_id"), RUNS.c.key == bindparam("b_key")
)
_FINISHED = _BY_KEY.values(  # an unknown start time, host… (None) keeps the stored one
    started_at=func.coalesce(bindparam("b_started_at"), RUNS.c.started_at),
    host=func.coalesce(bindparam("b_host"), RUNS.c.host),
    output_dir=func.coalesce(bindparam("b_output_dir"), RUNS.c.output_dir),
    fingerprint=func.coalesce(bindparam("b_fingerprint"), RUNS.c.fingerprint),
)


class Writes:
    """The store's writes, one transaction per call: `store.writes`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------ executions
    def create_execution(
        self,
        *,
        label: str,
        project: str,
        argv: list[str],
        git: GitInfo,
        pid: int | None,
        host: str | None,
    ) -> str:
        """Record a new execution, status "running"; return its new id."""
        now = time.time()
        row = execution_row(label, project, argv, git, pid, host, started_at=now)
        with self._db.transaction("create an execution") as connection:
            execution_id = _new_id(connection)
            connection.execute(insert(EXECUTIONS), {"id": execution_id, **row})
        return execution_id

    def create_settled_execution(
        self,
        *,
        label: str,
        project: str,
        argv: list[str],
        git: GitInfo,
        pid: int | None,
        host: str | None,
        specs: Sequence[dict[str, Any]],
        fingerprints: Sequence[str | None],
        results: Mapping[str, RunResult],
        status: str,
        started_at: float,
        ended_at: float,
    ) -> str:
        """Record an execution whose every run was settled before anything ran (a no-op
        re-run) whole, in one transaction: the execution, finished with `status`, and its
        runs (as `add_runs` inserts them) with their results. Return its new id."""
        row = settled_execution_row(
            label,
            project,
            argv,
            git,
            pid,
            host,
            status=status,
            started_at=started_at,
            ended_at=ended_at,
        )
        with self._db.transaction("record an execution") as connection:
            execution_id = _new_id(connection)
            connection.execute(insert(EXECUTIONS), {"id": execution_id, **row})
            runs = run_rows(execution_id, specs, fingerprints, results)
            if runs:
                _insert_many(connection, RUNS, runs)
        return execution_id

    def adopt_execution(self, execution_id: str, *, pid: int, host: str) -> None:
        """A process takes over driving an execution created by another (`--no-wait`)."""
        with self._db.transaction(f"adopt execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(pid=pid, host=host, heartbeat_at=time.time(), status="running")
            ).rowcount
            if not changed:
                raise self._db.no_execution(execution_id)

    def heartbeat(self, execution_id: str) -> None:
        """Note that the execution's driver is alive."""
        with self._db.transaction(f"record a heartbeat of execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(heartbeat_at=time.time())
            ).rowcount
            if not changed:
                raise self._db.no_execution(execution_id)

    def finish_execution(
        self, execution_id: str, status: str, *, ended_at: float | None = None
    ) -> None:
        """Record how the execution ended (its runs' statuses are set separately)."""
        status = finished_status(status)
        when = time.time() if ended_at is None else ended_at
        with self._db.transaction(f"finish execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(status=status, ended_at=when)
            ).rowcount
            if not changed:
                raise self._db.no_execution(execution_id)

    # ------------------------------------------------------------ runs
    def add_runs(
        self,
        execution_id: str,
        specs: Sequence[dict[str, Any]],
        *,
        fingerprints: Sequence[str | None] | None = None,
        results: Mapping[str, RunResult] | None = None,
    ) -> None:
        """Insert the planned runs, PENDING, in one transaction; specs are RunSpec.to_dict()s.

        `results`: runs already settled before anything executes (reused results), by key:
        inserted finished, so that a fully cached execution costs one insert and no update.
        """
        rows = run_rows(execution_id, specs, fingerprints, results)
        with self._db.transaction(f"add runs to execution {execution_id}") as connection:
            if connection.execute(exists(execution_id)).first() is None:
                raise self._db.no_execution(execution_id)
            if rows:
                _insert_many(connection, RUNS, rows)

    def run_started(
        self, execution_id: str, key: str, *, started_at: float, host: str, attempt: int = 1
    ) -> None:
        """The run is RUNNING (again, for a retry: its last end and error are cleared)."""
        values = {
            "status": RunStatus.RUNNING.value,
            "started_at": started_at,
            "host": host,
            "attempt": attempt,
            "ended_at": None,
            "error": None,
        }
        self._update_run(execution_id, key, values, "record the start of")

    def run_finished(self, execution_id: str, result: RunResult) -> None:
        """Record a run's result. An unset started_at (0) or host ("") keeps the stored one."""
        values: dict[str, Any] = {
            "status": RunStatus(result.status).value,
            "metrics": result.metrics,
            "error": result.error,
            "ended_at": result.ended_at or time.time(),
            "attempt": result.attempt,
        }
        if result.started_at:
            values["started_at"] = result.started_at
        if result.host:
            values["host"] = result.host
        if result.output_dir:
            values["output_dir"] = result.output_dir
        if result.fingerprint:
            values["fingerprint"] = result.fingerprint
        self._update_run(execution_id, result.key, values, "record the result of")

    def record(
        self,
        execution_id: str,
        *,
        started: Sequence[tuple[str, float, str, int]] = (),
        finished: Sequence[RunResult] = (),
        parts: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        """Many run_started (key, started_at, host, attempt) then run_finished, in one transaction.

        What a busy driver calls instead of one transaction per event: the same updates,
        executed as two executemany statements, so a batch of 2,000 runs costs a few commits.
        """
        starts = start_params(execution_id, started)
        ends = finish_params(execution_id, finished)
        with self._db.transaction(
            f"record {len(starts)} starts and {len(ends)} results of execution {execution_id}"
        ) as connection:
            if starts:
                connection.execute(_BY_KEY, starts)
            if ends:
                connection.execute(_FINISHED, ends)
            for key, made_of in parts:  # the final fingerprint's parts, for `qa why`
                where = (RUNS.c.execution_id == execution_id) & (RUNS.c.key == key)
                spec = connection.execute(select(RUNS.c.spec).where(where)).scalar()
                if isinstance(spec, dict):
                    new = {**spec, "fingerprint_parts": made_of}
                    connection.execute(update(RUNS).where(where).values(spec=new))

    def _update_run(self, execution_id: str, key: str, values: dict[str, Any], what: str) -> None:
        params = {"b_execution_id": execution_id, "b_key": key, **values}
        with self._db.transaction(f"{what} run {key} of execution {execution_id}") as connection:
            if not connection.execute(_BY_KEY, params).rowcount:
                raise StoreError(
                    f"There is no run {key!r} in execution {execution_id!r} in the run store "
                    f"at {self._db.shown_url}."
                )

    def set_status(
        self,
        execution_id: str,
        keys: Sequence[str],
        status: RunStatus,
        *,
        error: str | None = None,
    ) -> None:
        """Set the status and error (None clears it) of many runs; a finished status also
        sets ended_at to now where it is unset."""
        unique = list(dict.fromkeys(keys))
        values: dict[str, Any] = {"status": RunStatus(status).value, "error": error}
        if RunStatus(status).finished:
            values["ended_at"] = func.coalesce(RUNS.c.ended_at, time.time())
        what = f"set the status of {len(unique)} runs of execution {execution_id}"
        with self._db.transaction(what) as connection:
            changed = 0
            for start in range(0, len(unique), CHUNK):
                chunk = unique[start : start + CHUNK]
                where = (RUNS.c.execution_id == execution_id) & RUNS.c.key.in_(chunk)
                changed += connection.execute(update(RUNS).where(where).values(values)).rowcount
            if changed != len(unique):
                self._raise_missing(connection, execution_id, unique)

    def _raise_missing(self, connection: Connection, execution_id: str, keys: list[str]) -> None:
        query = select(RUNS.c.key).where(RUNS.c.execution_id == execution_id)
        known = set(connection.execute(query).scalars())
        missing = [key for key in keys if key not in known]
        listed = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise StoreError(
            f"Execution {execution_id!r} has no run {listed} (run store at "
            f"{self._db.shown_url}); no status was changed."
        )


def _insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """`connection.execute(insert(table), rows)`, as one executemany of the driver, with the
    JSON columns serialised here: SQLAlchemy's processing of each row's parameters cost
    more than SQLite's insert of it (10,000 runs per execution, cached ones included)."""
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    quote = connection.dialect.identifier_preparer.quote
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    encode, pick = db.dumps, operator.itemgetter(*columns)
    encoded = [i for i, column in enumerate(columns) if column in json_columns]
    values = []
    for row in rows:
        value = list(pick(row))
        for i in encoded:
            value[i] = encode(value[i])
        values.append(tuple(value))
    connection.exec_driver_sql(statement, values)


def _new_id(connection: Connection) -> str:
    while True:
        candidate = os.urandom(6).hex()  # as secrets.token_hex(6)
        if connection.execute(exists(candidate)).first() is None:
            return candidate
