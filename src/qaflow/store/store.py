"""The run store: where executions and their runs are recorded (SQLite by default, or PostgreSQL).

Policy
- One public call is one transaction, committed before it returns: if the process is killed
  between two calls, the store holds exactly what the calls before it wrote.
- The hot paths (run_started, run_finished, heartbeat) are single Core UPDATEs found by
  (execution_id, key) through the unique index: no ORM loads, no reads before writing.
- SQLite: WAL journal (readers never block the writer: `qa status` while an execution runs),
  synchronous=NORMAL (a power cut may lose the last commits, never corrupt the file),
  busy_timeout=30 s, and writes begin with BEGIN IMMEDIATE so concurrent writers from several
  processes wait for the lock instead of failing with "database is locked".
- PostgreSQL: through psycopg 3, a 10 s connect timeout, connections pinged before use.
- Schema: SCHEMA_REVISION is the revision this code needs. Opening a database at it costs
  one query; a new or older database is migrated with Alembic (imported only then, under a
  lock so concurrent openers serialise); a newer one is refused.
- Errors: every SQLAlchemy or driver error leaves as a StoreError naming what failed and
  the URL without its password. Programming errors (a bad status) are ValueErrors.
- JSON values: NaN and ±infinity are stored as null on both backends (PostgreSQL refuses
  them); values JSON cannot encode (dates…) are stored as their str().

Invariants
- An execution id is 12 lowercase hex characters, unique; `execution()` also takes a prefix.
- A run is unique by (execution_id, key); add_runs inserts runs PENDING with attempt 0, and
  run ids grow with insertion, so an execution's runs in id order are in plan order.
- `spec` is exactly the dict given to add_runs (after a JSON round trip).
- `counts` adds up to the number of runs of the execution, by status.
"""

from __future__ import annotations

import contextlib
import operator
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Table,
    Text,
    bindparam,
    case,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from qaflow.errors import StoreError
from qaflow.store import engine as db
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.store.records import (
    EXECUTION_STATUSES,
    ExecutionRecord,
    GitInfo,
    RunRecord,
    execution_record,
    run_record,
    run_row,
)
from qaflow.worker.model import RunResult, RunStatus

if TYPE_CHECKING:
    from qaflow.results.compare import CompareRun

_BY_KEY = update(RUNS).where(
    RUNS.c.execution_id == bindparam("b_execution_id"), RUNS.c.key == bindparam("b_key")
)
_FINISHED = _BY_KEY.values(  # an unknown start time or host (None) keeps the stored one
    started_at=func.coalesce(bindparam("b_started_at"), RUNS.c.started_at),
    host=func.coalesce(bindparam("b_host"), RUNS.c.host),
)
_OK = (RunStatus.SUCCEEDED.value, RunStatus.CACHED.value)
_HEX = re.compile(r"[0-9a-f]+")
_PREFIX = re.compile(r"[0-9A-Za-z_.:+=-]+")
MIN_PREFIX = 4  # characters of a run key or fingerprint prefix in find_runs
_CHUNK = 500  # keys per IN (…) list: well under every backend's limit on parameters


class Store:
    """Executions and runs, recorded one transaction per call. Open with `Store.open`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**db.WRITE)
        self._sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str | None = None, *, storage: Path) -> Store:
        """Connect (url None: SQLite file storage/qaflow.db) and bring the schema up to date."""
        target = db.database_url(url, storage)
        engine = db.create(target)
        try:
            with db.translated(target, "open the database"):
                _retrying_locks(lambda: db.ensure_schema(engine))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str, *, write: bool = True) -> Iterator[Connection]:
        engine = self._writer if write else self._engine
        with db.translated(self._engine.url, what), engine.begin() as connection:
            yield connection

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
        with self._transaction("create an execution") as connection:
            execution_id = _new_id(connection)
            connection.execute(
                insert(EXECUTIONS),
                {
                    "id": execution_id,
                    "label": label,
                    "project": project,
                    "argv": list(argv),
                    "git_commit": git.commit,
                    "git_branch": git.branch,
                    "git_dirty": git.dirty,
                    "status": "running",
                    "started_at": now,
                    "pid": pid,
                    "host": host,
                    "heartbeat_at": now,  # creating it is a sign of life
                },
            )
        return execution_id

    def adopt_execution(self, execution_id: str, *, pid: int, host: str) -> None:
        """A process takes over driving an execution created by another (`--no-wait`)."""
        with self._transaction(f"adopt execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(pid=pid, host=host, heartbeat_at=time.time(), status="running")
            ).rowcount
            if not changed:
                raise self._no_execution(execution_id)

    def heartbeat(self, execution_id: str) -> None:
        """Note that the execution's driver is alive."""
        with self._transaction(f"record a heartbeat of execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(heartbeat_at=time.time())
            ).rowcount
            if not changed:
                raise self._no_execution(execution_id)

    def finish_execution(
        self, execution_id: str, status: str, *, ended_at: float | None = None
    ) -> None:
        """Record how the execution ended (its runs' statuses are set separately)."""
        status = str(getattr(status, "value", status))  # a str Enum is welcome too
        if status not in EXECUTION_STATUSES or status == "running":
            raise ValueError(f"finish_execution: invalid status {status!r}")
        when = time.time() if ended_at is None else ended_at
        with self._transaction(f"finish execution {execution_id}") as connection:
            changed = connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id == execution_id)
                .values(status=status, ended_at=when)
            ).rowcount
            if not changed:
                raise self._no_execution(execution_id)

    def execution(self, execution_id: str) -> ExecutionRecord:
        """The execution with this id, or the only one whose id starts with it."""
        with self._transaction("read an execution", write=False) as connection:
            row = self._find_execution(connection, execution_id)
            counts = _counts(connection, [row.id])
        return execution_record(row, counts.get(row.id, {}))

    def executions(self, *, limit: int = 20, label: str | None = None) -> list[ExecutionRecord]:
        """The newest executions first, optionally only those with this label."""
        query = select(EXECUTIONS).order_by(EXECUTIONS.c.seq.desc()).limit(limit)
        if label is not None:
            query = query.where(EXECUTIONS.c.label == label)
        with self._transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
            counts = _counts(connection, [row.id for row in rows])
        return [execution_record(row, counts.get(row.id, {})) for row in rows]

    def _find_execution(self, connection: Connection, ref: str) -> Row[Any]:
        exact = connection.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == ref)).first()
        if exact is not None:
            return exact
        prefix = ref.strip().lower()
        if not _HEX.fullmatch(prefix):
            raise self._no_execution(ref)
        query = (
            select(EXECUTIONS)
            .where(EXECUTIONS.c.id.startswith(prefix))
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(11)
        )
        rows = connection.execute(query).all()
        if not rows:
            raise self._no_execution(ref)
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
        with self._transaction("find an execution", write=False) as connection:
            row = connection.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == ref)).first()
            for where in (EXECUTIONS.c.label == ref, EXECUTIONS.c.git_branch == ref):
                row = row or connection.execute(newest.where(where)).first()
            if row is None and len(commit) >= MIN_PREFIX and _HEX.fullmatch(commit):
                by_commit = _starts(EXECUTIONS.c.git_commit, commit, self._sqlite)
                row = connection.execute(newest.where(by_commit)).first()
            row = row or self._find_execution(connection, ref)
            counts = _counts(connection, [row.id])
        return execution_record(row, counts.get(row.id, {}))

    def names(self, *, limit: int = 200) -> dict[str, list[str]]:
        """Recent labels, branches and execution ids, newest first: for did-you-mean hints."""
        query = (
            select(EXECUTIONS.c.id, EXECUTIONS.c.label, EXECUTIONS.c.git_branch)
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(limit)
        )
        with self._transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
        return {
            "labels": list(dict.fromkeys(row.label for row in rows)),
            "branches": list(dict.fromkeys(row.git_branch for row in rows if row.git_branch)),
            "ids": [row.id for row in rows],
        }

    def compare_runs(self, execution_id: str, *, batch: str | None = None) -> list[CompareRun]:
        """The execution's runs in plan order, only the columns a comparison needs (no spec
        but its matrix): what `qa compare` reads of 10,000 runs in a fraction of a second."""
        from qaflow.results.compare import CompareRun

        query = (
            select(
                RUNS.c.key,
                RUNS.c.batch,
                RUNS.c.rel_input_path,
                RUNS.c.platform,
                RUNS.c.configurations,
                RUNS.c.spec["matrix"],
                RUNS.c.status,
                RUNS.c.metrics,
                RUNS.c.output_dir,
            )
            .where(RUNS.c.execution_id == execution_id)
            .order_by(RUNS.c.id)
        )
        if batch is not None:
            query = query.where(RUNS.c.batch == batch)
        with self._transaction("read runs", write=False) as connection:
            rows = connection.execute(query).all()
        return [
            CompareRun(k, b, i, p, c or [], m or {}, s, ms or {}, o)
            for k, b, i, p, c, m, s, ms, o in rows
        ]

    def metric_history(
        self,
        batch: str,
        metric: str,
        *,
        label: str | None = None,
        branch: str | None = None,
        limit: int = 20,
    ) -> list[tuple[ExecutionRecord, list[Any]]]:
        """The last `limit` executions that ran `batch` (of this label or git branch), oldest
        first, each with the values of `metric` in that batch's successful runs."""
        query = (
            select(EXECUTIONS)
            .where(EXECUTIONS.c.id.in_(select(RUNS.c.execution_id).where(RUNS.c.batch == batch)))
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(limit)
        )
        if label is not None:
            query = query.where(EXECUTIONS.c.label == label)
        if branch is not None:
            query = query.where(EXECUTIONS.c.git_branch == branch)
        values: dict[str, list[Any]] = {}
        with self._transaction("read the history of a metric", write=False) as connection:
            rows = connection.execute(query).all()[::-1]
            ids = [row.id for row in rows]
            runs = select(RUNS.c.execution_id, RUNS.c.metrics[metric]).where(
                RUNS.c.execution_id.in_(ids), RUNS.c.batch == batch, RUNS.c.status.in_(_OK)
            )
            for execution_id, value in connection.execute(runs.order_by(RUNS.c.id)):
                values.setdefault(execution_id, []).append(value)
            counts = _counts(connection, ids)
        return [
            (execution_record(row, counts.get(row.id, {})), values.get(row.id, [])) for row in rows
        ]

    def _no_execution(self, ref: str) -> StoreError:
        return StoreError(
            f"There is no execution {ref!r} (nor one whose id starts with it) in the run store "
            f"at {db.shown(self._engine.url)}."
        )

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
        if fingerprints is not None and len(fingerprints) != len(specs):
            raise ValueError(f"add_runs: {len(specs)} specs but {len(fingerprints)} fingerprints")
        prints = fingerprints if fingerprints is not None else [None] * len(specs)
        settled = results or {}
        rows = [
            run_row(execution_id, s, f, settled.get(str(s["id"])))
            for s, f in zip(specs, prints, strict=True)
        ]
        with self._transaction(f"add runs to execution {execution_id}") as connection:
            if connection.execute(_exists(execution_id)).first() is None:
                raise self._no_execution(execution_id)
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
        self._update_run(execution_id, result.key, values, "record the result of")

    def record(
        self,
        execution_id: str,
        *,
        started: Sequence[tuple[str, float, str, int]] = (),
        finished: Sequence[RunResult] = (),
    ) -> None:
        """Many run_started (key, started_at, host, attempt) then run_finished, in one transaction.

        What a busy driver calls instead of one transaction per event: the same updates,
        executed as two executemany statements, so a batch of 2,000 runs costs a few commits.
        """
        starts = [
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
        ends = [
            {
                "b_execution_id": execution_id,
                "b_key": r.key,
                "status": RunStatus(r.status).value,
                "metrics": r.metrics,
                "error": r.error,
                "ended_at": r.ended_at or time.time(),
                "attempt": r.attempt,
                "b_started_at": r.started_at or None,
                "b_host": r.host or None,
            }
            for r in finished
        ]
        with self._transaction(
            f"record {len(starts)} starts and {len(ends)} results of execution {execution_id}"
        ) as connection:
            if starts:
                connection.execute(_BY_KEY, starts)
            if ends:
                connection.execute(_FINISHED, ends)

    def _update_run(self, execution_id: str, key: str, values: dict[str, Any], what: str) -> None:
        params = {"b_execution_id": execution_id, "b_key": key, **values}
        with self._transaction(f"{what} run {key} of execution {execution_id}") as connection:
            if not connection.execute(_BY_KEY, params).rowcount:
                raise StoreError(
                    f"There is no run {key!r} in execution {execution_id!r} in the run store "
                    f"at {db.shown(self._engine.url)}."
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
        with self._transaction(what) as connection:
            changed = 0
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
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
            f"{db.shown(self._engine.url)}); no status was changed."
        )

    def runs(self, execution_id: str) -> list[RunRecord]:
        """The execution's runs in plan (insertion) order."""
        query = select(RUNS).where(RUNS.c.execution_id == execution_id).order_by(RUNS.c.id)
        with self._transaction("read runs", write=False) as connection:
            rows = connection.execute(query).all()
            if not rows and connection.execute(_exists(execution_id)).first() is None:
                raise self._no_execution(execution_id)
        return [run_record(row) for row in rows]

    def find_runs(self, ref: str) -> list[RunRecord]:
        """Runs by output directory (a path), or by a prefix of their key or fingerprint;
        newest first."""
        where: ColumnElement[bool]
        if os.sep in ref or "/" in ref or ref.startswith((".", "~")):
            where = RUNS.c.output_dir.in_(_path_forms(ref))
        elif len(ref) < MIN_PREFIX or not _PREFIX.fullmatch(ref):
            raise StoreError(
                f"{ref!r} names no run: give a run's output directory, or at least "
                f"{MIN_PREFIX} characters of its key or fingerprint."
            )
        else:
            where = _starts(RUNS.c.key, ref, self._sqlite) | _starts(
                RUNS.c.fingerprint, ref, self._sqlite
            )
        with self._transaction("find runs", write=False) as connection:
            rows = connection.execute(select(RUNS).where(where).order_by(RUNS.c.id.desc())).all()
        return [run_record(row) for row in rows]

    def latest_success(self, fingerprint: str) -> RunRecord | None:
        """The newest SUCCEEDED run with this fingerprint, if any."""
        query = (
            select(RUNS)
            .where(RUNS.c.fingerprint == fingerprint, RUNS.c.status == RunStatus.SUCCEEDED.value)
            .order_by(RUNS.c.ended_at.desc().nulls_last(), RUNS.c.id.desc())
            .limit(1)
        )
        with self._transaction("look up a cached run", write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else run_record(row)

    def fingerprint_parts(self, fingerprints: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What each fingerprint was made of, as its newest run that recorded it says (a
        reused run records none: the run it reused holds them); one query per 500."""
        unique = list(dict.fromkeys(f for f in fingerprints if f))
        found: dict[str, dict[str, Any]] = {}
        with self._transaction("read fingerprints", write=False) as connection:
            for start in range(0, len(unique), _CHUNK):
                query = (
                    select(RUNS.c.fingerprint, RUNS.c.spec)
                    .where(RUNS.c.fingerprint.in_(unique[start : start + _CHUNK]))
                    .order_by(RUNS.c.id.desc())
                )
                for fingerprint, spec in connection.execute(query):
                    if fingerprint not in found and spec and "fingerprint_parts" in spec:
                        found[fingerprint] = dict(spec["fingerprint_parts"])
        return found

    def successes(self, fingerprints: Sequence[str]) -> dict[str, Success]:
        """For each fingerprint that has one, its newest successful run (SUCCEEDED, or CACHED:
        reused, which proves the result was there), one query per 500 fingerprints. Only the
        columns the cache needs: this runs before every execution, over every planned run."""
        unique = list(dict.fromkeys(f for f in fingerprints if f))
        found: dict[str, Success] = {}
        with self._transaction("look up cached runs", write=False) as connection:
            for start in range(0, len(unique), _CHUNK):
                newest = (  # answered from the (fingerprint, status) index
                    select(func.max(RUNS.c.id))
                    .where(
                        RUNS.c.fingerprint.in_(unique[start : start + _CHUNK]),
                        RUNS.c.status.in_(_OK),
                    )
                    .group_by(RUNS.c.fingerprint)
                )
                query = select(RUNS.c.fingerprint, RUNS.c.output_dir, RUNS.c.metrics).where(
                    RUNS.c.id.in_(newest)
                )
                for fingerprint, output_dir, metrics in connection.execute(query):
                    found[fingerprint] = Success(output_dir, metrics or {})
        return found

    def last_successes_by_input(
        self, batches: Sequence[str]
    ) -> dict[tuple[str, str | None, str], RunRecord]:
        """The newest successful run per (batch, input, platform) of these batches: what a run
        whose configuration changed (a new identity) is compared with by `qa why`."""
        found: dict[tuple[str, str | None, str], RunRecord] = {}
        query = (
            select(RUNS)
            .where(RUNS.c.batch.in_(list(dict.fromkeys(batches))), RUNS.c.status.in_(_OK))
            .order_by(RUNS.c.ended_at.asc().nulls_first(), RUNS.c.id.asc())
        )
        with self._transaction("look up the last results", write=False) as connection:
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
        with self._transaction("look up cached runs", write=False) as connection:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                query = (
                    select(RUNS)
                    .where(column.in_(chunk), RUNS.c.status.in_(_OK))
                    .order_by(RUNS.c.ended_at.asc().nulls_first(), RUNS.c.id.asc())
                )
                for row in connection.execute(query):
                    record = run_record(row)
                    found[getattr(record, attribute)] = record  # the newest comes last
        return found

    # ------------------------------------------------------------ the board's reads
    def find_executions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        project: str | None = None,
        label: str | None = None,
        git_branch: str | None = None,
        git_commit: str | None = None,
        status: str | None = None,
    ) -> list[ExecutionRecord]:
        """The newest executions first, of this project, label, branch, commit (a prefix of
        it) and status; None or "" matches anything."""
        query = select(EXECUTIONS).order_by(EXECUTIONS.c.seq.desc()).limit(limit).offset(offset)
        equal = {"project": project, "label": label, "git_branch": git_branch, "status": status}
        for name, value in equal.items():
            if value:
                query = query.where(EXECUTIONS.c[name] == value)
        if git_commit:
            query = query.where(EXECUTIONS.c.git_commit.startswith(git_commit, autoescape=True))
        with self._transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
            counts = _counts(connection, [row.id for row in rows])
        return [execution_record(row, counts.get(row.id, {})) for row in rows]

    def execution_values(self, *names: str, limit: int = 200) -> dict[str, list[str]]:
        """The distinct values of these execution columns, most recent first: filter choices."""
        found: dict[str, list[str]] = {}
        with self._transaction("list execution values", write=False) as connection:
            for name in names:
                column = EXECUTIONS.c[name]
                query = (
                    select(column)
                    .where(column.is_not(None))
                    .group_by(column)
                    .order_by(func.max(EXECUTIONS.c.seq).desc())
                    .limit(limit)
                )
                found[name] = [str(value) for value in connection.execute(query).scalars()]
        return found

    def batch_counts(self, execution_id: str) -> dict[str, dict[str, int]]:
        """Node -> run status -> number of runs, nodes in plan order (of their first run). A
        node is a batch, or one `run:` step of a pipeline (see `_node`)."""
        query = (
            select(RUNS.c.batch, _STEP, RUNS.c.status, func.count(), func.min(RUNS.c.id))
            .where(RUNS.c.execution_id == execution_id)
            .group_by(RUNS.c.batch, _STEP, RUNS.c.status)
        )
        with self._transaction("count runs per batch", write=False) as connection:
            rows = sorted(connection.execute(query), key=lambda row: row[4])
        counts: dict[str, dict[str, int]] = {}
        for batch, step, status, count, _ in rows:
            counts.setdefault(_node(batch, step), {})[status] = int(count)
        return counts

    def batch_names(self, execution_id: str) -> list[str]:
        """The execution's batches, in plan order (of their first run)."""
        query = (
            select(RUNS.c.batch)
            .where(RUNS.c.execution_id == execution_id)
            .group_by(RUNS.c.batch)
            .order_by(func.min(RUNS.c.id))
        )
        with self._transaction("list the batches of an execution", write=False) as connection:
            return list(connection.execute(query).scalars())

    def batch_edges(self, execution_id: str) -> list[tuple[str, str]]:
        """(upstream node, downstream node) pairs (nodes as in `batch_counts`), from the run
        keys each run's spec needs."""
        with self._transaction("read the graph of batches", write=False) as connection:
            keys = select(RUNS.c.key, RUNS.c.batch, _STEP).where(
                RUNS.c.execution_id == execution_id
            )
            node_of = {row.key: _node(row.batch, row.step) for row in connection.execute(keys)}
            query = select(RUNS.c.key, RUNS.c.spec["needs"]).where(
                RUNS.c.execution_id == execution_id
            )
            edges: dict[tuple[str, str], None] = {}
            for key, needs in connection.execute(query):
                for upstream in needs or ():
                    if upstream in node_of and node_of[upstream] != node_of[key]:
                        edges[(node_of[upstream], node_of[key])] = None
        return list(edges)

    def run_table(
        self,
        execution_id: str,
        *,
        batch: str | None = None,
        statuses: Sequence[str] = (),
        text: str | None = None,
        sort: str = "",
        descending: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[RunSummary]]:
        """One page of an execution's runs, filtered and sorted (sort: "", "batch", "input",
        "status", "duration", or "metric:NAME"), with only the columns a table shows; and how
        many runs pass the filter."""
        where = [RUNS.c.execution_id == execution_id]
        if batch:
            where.append(RUNS.c.batch == batch)
        if statuses:
            where.append(RUNS.c.status.in_(list(statuses)))
        if text:
            where.append(
                func.coalesce(RUNS.c.rel_input_path, "").contains(text, autoescape=True)
                | cast(RUNS.c.configurations, Text).contains(text, autoescape=True)
            )
        order = _table_order(sort, self._sqlite)
        order = order.desc().nulls_last() if descending else order.asc().nulls_last()
        columns = [RUNS.c[name] for name in RunSummary._fields]
        query = (
            select(*columns)
            .where(*where)
            .order_by(order, RUNS.c.id)
            .offset(max(0, offset))
            .limit(limit)
        )
        with self._transaction("read a table of runs", write=False) as connection:
            total = connection.execute(select(func.count()).where(*where)).scalar_one()
            rows = [RunSummary(*row) for row in connection.execute(query)]
        return int(total), rows

    def run(self, run_id: int) -> RunRecord:
        """The run with this id (`RunRecord.id`)."""
        with self._transaction("read a run", write=False) as connection:
            row = connection.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"There is no run with id {run_id} in the run store.")
        return run_record(row)

    def run_by_key(self, execution_id: str, key: str) -> RunRecord | None:
        """The execution's run with this key, if it has one."""
        query = select(RUNS).where(RUNS.c.execution_id == execution_id, RUNS.c.key == key)
        with self._transaction("read a run", write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else run_record(row)

    def matching_run(self, execution_id: str, run: RunRecord) -> RunRecord | None:
        """The execution's run with the run's key, else its first run of the same batch and
        input (a run whose configuration changed): what the run is compared with."""
        same = self.run_by_key(execution_id, run.key)
        if same is not None:
            return same
        query = (
            select(RUNS)
            .where(
                RUNS.c.execution_id == execution_id,
                RUNS.c.batch == run.batch,
                RUNS.c.platform == run.platform,
                RUNS.c.rel_input_path.is_(None)
                if run.rel_input_path is None
                else RUNS.c.rel_input_path == run.rel_input_path,
            )
            .order_by(RUNS.c.id)
            .limit(1)
        )
        with self._transaction("read a run", write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else run_record(row)

    def same_runs(self, key: str, *, limit: int = 30) -> list[tuple[int, ExecutionRecord]]:
        """The runs with this key (the same batch, input and configuration) in the newest
        executions: (run id, its execution), newest first."""
        query = (
            select(RUNS.c.id.label("run_id"), EXECUTIONS)
            .join(EXECUTIONS, EXECUTIONS.c.id == RUNS.c.execution_id)
            .where(RUNS.c.key == key)
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(limit)
        )
        with self._transaction("find the same run elsewhere", write=False) as connection:
            rows = connection.execute(query).all()
        return [(row.run_id, execution_record(row, {})) for row in rows]


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


# ---------------------------------------------------------------- rows and records
class Success(NamedTuple):
    """A successful result, as the cache needs it."""

    output_dir: str
    metrics: dict[str, Any]


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


# A pipeline's `run:` steps are runs of the pipeline batch (type "pipeline") whose output
# directories are PIPELINE/step-N/ID (qaflow.plan.pipeline): each is a node of the graph of its
# own, named as `qa dag` names it, "BATCH step N".
_STEP = case((RUNS.c.type == "pipeline", RUNS.c.output_dir), else_=None).label("step")
_STEP_FOLDER = re.compile(r"step-(\d+)")


def _node(batch: str, step_dir: str | None) -> str:
    if step_dir is None:
        return batch
    folder = _STEP_FOLDER.fullmatch(Path(step_dir).parent.name)
    return f"{batch} step {folder.group(1)}" if folder else f"{batch} step {Path(step_dir).name}"


def _table_order(sort: str, sqlite: bool) -> Any:
    if sort.startswith("metric:"):
        value = RUNS.c.metrics[sort.removeprefix("metric:")]
        if sqlite:  # SQLite's CAST never fails; PostgreSQL's fails on a string that is no number
            return value.as_float()
        return case((func.json_typeof(value) == "number", value.as_float()))
    columns = {
        "batch": RUNS.c.batch,
        "input": RUNS.c.rel_input_path,
        "status": RUNS.c.status,
        "duration": RUNS.c.ended_at - RUNS.c.started_at,
    }
    return columns.get(sort, RUNS.c.id)


def _path_forms(ref: str) -> list[str]:
    """A path as given, made absolute, and with symlinks resolved: stored paths are one of them."""
    path = Path(ref).expanduser()
    return sorted({ref, os.path.normpath(path.absolute()), str(path.resolve())})


def _new_id(connection: Connection) -> str:
    while True:
        candidate = secrets.token_hex(6)
        if connection.execute(_exists(candidate)).first() is None:
            return candidate


def _exists(execution_id: str) -> Any:
    return select(EXECUTIONS.c.seq).where(EXECUTIONS.c.id == execution_id)


def _starts(column: ColumnElement[Any], prefix: str, sqlite: bool) -> ColumnElement[bool]:
    """`column` starts with `prefix`, in a form the backend's index serves (SQLite: GLOB)."""
    if sqlite:  # LIKE is case-insensitive there, so it cannot use the index; GLOB can
        return column.op("GLOB", is_comparison=True)(f"{prefix}*")
    return column.startswith(prefix, autoescape=True)


def _counts(connection: Connection, ids: list[str]) -> dict[str, dict[str, int]]:
    if not ids:
        return {}
    query = (
        select(RUNS.c.execution_id, RUNS.c.status, func.count())
        .where(RUNS.c.execution_id.in_(ids))
        .group_by(RUNS.c.execution_id, RUNS.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for execution_id, status, count in connection.execute(query):
        counts.setdefault(execution_id, {})[status] = int(count)
    return counts


def _retrying_locks(action: Callable[[], None], *, seconds: float = 30.0) -> None:
    """Run action, again while SQLite says "database is locked", for up to `seconds`.

    Two processes opening a new SQLite file at once both switch it to WAL mode, which needs
    the file to themselves: SQLite then reports the lock at once instead of waiting on the
    busy timeout. Waiting a little and trying again is all it takes.
    """
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        try:
            action()
            return
        except OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
