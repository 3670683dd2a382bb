"""What reuse and the CLI look up: executions by id, prefix, label, branch or commit; an
execution's runs; runs by id, key, output directory or prefix; the newest successes by
fingerprint or key (the cache), and what fingerprints were made of (`qa why`).

Consumers: the driver's reuse decision (execution/driver.py → `successes`), background
executions (execution/background.py), the CLI (cli/commands/status, logs, why, compare…), the
board (web/pages.py, web/comparison.py) and gc (results/gc.py). Read-only transactions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, select

from qaflow.errors import StoreError
from qaflow.store.base import Database
from qaflow.store.codec import CHUNK, sqlite_succeeded
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.store.queries import HEX, MIN_PREFIX, PREFIX, exists, starts, status_counts
from qaflow.store.records import ExecutionRecord, RunRecord, execution_record, run_record
from qaflow.store.rows import OK
from qaflow.worker.model import RunStatus


class Lookups:
    """The store's lookups, one read transaction per call: `store.lookups`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------ executions
    def execution(self, execution_id: str) -> ExecutionRecord:
        """The execution with this id, or the only one whose id starts with it."""
        with self._db.transaction("read an execution", write=False) as connection:
            row = self._find_execution(connection, execution_id)
            counts = status_counts(connection, [row.id])
        return execution_record(row, counts.get(row.id, {}))

    def executions(self, *, limit: int = 20, label: str | None = None) -> list[ExecutionRecord]:
        """The newest executions first, optionally only those with this label."""
        query = select(EXECUTIONS).order_by(EXECUTIONS.c.seq.desc()).limit(limit)
        if label is not None:
            query = query.where(EXECUTIONS.c.label == label)
        with self._db.transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
            counts = status_counts(connection, [row.id for row in rows])
        return [execution_record(row, counts.get(row.id, {})) for row in rows]

    def _find_execution(self, connection: Connection, ref: str) -> Row[Any]:
        exact = connection.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == ref)).first()
        if exact is not None:
            return exact
        prefix = ref.strip().lower()
        if not HEX.fullmatch(prefix):
            raise self._db.no_execution(ref)
        query = (
            select(EXECUTIONS)
            .where(EXECUTIONS.c.id.startswith(prefix))
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(11)
        )
        rows = connection.execute(query).all()
        if not rows:
            raise self._db.no_execution(ref)
        if len(rows) > 1:
            shown = ", ".join(f"{row.id} ({row.label})" for row in rows[:10])
            more = ", …" if len(rows) > 10 else ""
            raise StoreError(
                f"The execution id {ref!r} is ambiguous: it starts the ids of {shown}{more}. "
                "Give more of the id."
            )
        return rows[0]

    def resolve_execution(self, ref: str) -> ExecutionRecord:
        """What `qa compare` and the board accept for a side: an execution id, else the
        latest execution of a label, of a git branch, of a commit (or a prefix of at least
        MIN_PREFIX hex digits of it), else an execution id prefix — in that order."""
        newest = select(EXECUTIONS).order_by(EXECUTIONS.c.seq.desc()).limit(1)
        commit = ref.strip().lower()
        with self._db.transaction("find an execution", write=False) as connection:
            row = connection.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == ref)).first()
            for where in (EXECUTIONS.c.label == ref, EXECUTIONS.c.git_branch == ref):
                row = row or connection.execute(newest.where(where)).first()
            if row is None and len(commit) >= MIN_PREFIX and HEX.fullmatch(commit):
                by_commit = starts(EXECUTIONS.c.git_commit, commit, self._db.sqlite)
                row = connection.execute(newest.where(by_commit)).first()
            row = row or self._find_execution(connection, ref)
            counts = status_counts(connection, [row.id])
        return execution_record(row, counts.get(row.id, {}))

    # ------------------------------------------------------------ runs
    def runs(self, execution_id: str) -> list[RunRecord]:
        """The execution's runs in plan (insertion) order."""
        query = select(RUNS).where(RUNS.c.execution_id == execution_id).order_by(RUNS.c.id)
        with self._db.transaction("read runs", write=False) as connection:
            rows = connection.execute(query).all()
            if not rows and connection.execute(exists(execution_id)).first() is None:
                raise self._db.no_execution(execution_id)
        return [run_record(row) for row in rows]

    def run(self, run_id: int) -> RunRecord:
        """The run with this id (`RunRecord.id`)."""
        with self._db.transaction("read a run", write=False) as connection:
            row = connection.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"There is no run with id {run_id} in the run store.")
        return run_record(row)

    def run_by_key(self, execution_id: str, key: str) -> RunRecord | None:
        """The execution's run with this key, if it has one."""
        query = select(RUNS).where(RUNS.c.execution_id == execution_id, RUNS.c.key == key)
        with self._db.transaction("read a run", write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else run_record(row)

    def find_runs(self, ref: str) -> list[RunRecord]:
        """Runs by output directory (a path), or by a prefix of their key or fingerprint;
        newest first."""
        where: ColumnElement[bool]
        if os.sep in ref or "/" in ref or ref.startswith((".", "~")):
            where = RUNS.c.output_dir.in_(_path_forms(ref))
        elif len(ref) < MIN_PREFIX or not PREFIX.fullmatch(ref):
            raise StoreError(
                f"{ref!r} names no run: give a run's output directory, or at least "
                f"{MIN_PREFIX} characters of its key or fingerprint."
            )
        else:
            where = starts(RUNS.c.key, ref, self._db.sqlite) | starts(
                RUNS.c.fingerprint, ref, self._db.sqlite
            )
        with self._db.transaction("find runs", write=False) as connection:
            rows = connection.execute(select(RUNS).where(where).order_by(RUNS.c.id.desc())).all()
        return [run_record(row) for row in rows]

    # ------------------------------------------------------------ the cache
    def latest_success(self, fingerprint: str) -> RunRecord | None:
        """The newest SUCCEEDED run with this fingerprint, if any."""
        query = (
            select(RUNS)
            .where(RUNS.c.fingerprint == fingerprint, RUNS.c.status == RunStatus.SUCCEEDED.value)
            .order_by(RUNS.c.ended_at.desc().nulls_last(), RUNS.c.id.desc())
            .limit(1)
        )
        with self._db.transaction("look up a cached run", write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else run_record(row)

    def fingerprint_parts(self, fingerprints: Sequence[str | None]) -> dict[str, dict[str, Any]]:
        """What each fingerprint was made of, as its newest run that recorded it says (a
        reused run records none: the run it reused holds them); one query per 500."""
        unique = list(dict.fromkeys(f for f in fingerprints if f))
        found: dict[str, dict[str, Any]] = {}
        with self._db.transaction("read fingerprints", write=False) as connection:
            for start in range(0, len(unique), CHUNK):
                query = (
                    select(RUNS.c.fingerprint, RUNS.c.spec)
                    .where(RUNS.c.fingerprint.in_(unique[start : start + CHUNK]))
                    .order_by(RUNS.c.id.desc())
                )
                for fingerprint, spec in connection.execute(query):
                    if fingerprint not in found and spec and "fingerprint_parts" in spec:
                        found[fingerprint] = dict(spec["fingerprint_parts"])
        return found

    def succeeded(self, fingerprints: Sequence[str]) -> set[str]:
        """The fingerprints that have a successful run (SUCCEEDED, or CACHED: reused, which
        proves the result was there), one query per 500 fingerprints, answered from the
        (fingerprint, status) index alone: this runs before every execution, over every
        planned run. On SQLite, one probe per fingerprint (`codec.sqlite_succeeded`); on
        PostgreSQL, `DISTINCT … IN (…)`, which it answers faster than a VALUES list."""
        unique = list(dict.fromkeys(f for f in fingerprints if f))
        found: set[str] = set()
        with self._db.transaction("look up cached runs", write=False) as connection:
            if connection.dialect.name == "sqlite":  # one probe per fingerprint, as DirectStore
                return sqlite_succeeded(connection.exec_driver_sql, unique, OK)
            for start in range(0, len(unique), CHUNK):  # PostgreSQL plans the IN list well
                query = (
                    select(RUNS.c.fingerprint)
                    .where(
                        RUNS.c.fingerprint.in_(unique[start : start + CHUNK]),
                        RUNS.c.status.in_(OK),
                    )
                    .distinct()
                )
                found.update(connection.execute(query).scalars())
        return found

    def last_successes_by_input(
        self, batches: Sequence[str]
    ) -> dict[tuple[str, str | None, str], RunRecord]:
        """The newest successful run per (batch, input, platform) of these batches: what a run
        whose configuration changed (a new identity) is compared with by `qa why`."""
        found: dict[tuple[str, str | None, str], RunRecord] = {}
        query = (
            select(RUNS)
            .where(RUNS.c.batch.in_(list(dict.fromkeys(batches))), RUNS.c.status.in_(OK))
            .order_by(RUNS.c.ended_at.asc().nulls_first(), RUNS.c.id.asc())
        )
        with self._db.transaction("look up the last results", write=False) as connection:
            for row in connection.execute(query):
                record = run_record(row)
                found[(record.batch, record.rel_input_path, record.platform)] = record
        return found

    def last_successes(self, keys: Sequence[str]) -> dict[str, RunRecord]:
        """For each run key (identity) that has one, its newest SUCCEEDED run."""
        return self._newest_success(RUNS.c.key, keys, "key")

    def _newest_success(
        self, column: Any, values: Sequence[str], attribute: str
    ) -> dict[str, RunRecord]:
        unique = list(dict.fromkeys(v for v in values if v))
        found: dict[str, RunRecord] = {}
        with self._db.transaction("look up cached runs", write=False) as connection:
            for start in range(0, len(unique), CHUNK):
                chunk = unique[start : start + CHUNK]
                query = (
                    select(RUNS)
                    .where(column.in_(chunk), RUNS.c.status.in_(OK))
                    .order_by(RUNS.c.ended_at.asc().nulls_first(), RUNS.c.id.asc())
                )
                for row in connection.execute(query):
                    record = run_record(row)
                    found[getattr(record, attribute)] = record  # the newest comes last
        return found


def _path_forms(ref: str) -> list[str]:
    """A path as given, made absolute, and with symlinks resolved: stored paths are one of them."""
    path = Path(ref).expanduser()
    return sorted({ref, os.path.normpath(path.absolute()), str(path.resolve())})
