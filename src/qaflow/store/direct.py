"""The run store's SQLite file through Python's sqlite3, without SQLAlchemy: the calls of a
`qa batch` driving its execution in the foreground, where importing SQLAlchemy (~150 ms,
more under load) was most of a no-op re-run's time and a good part of a short execution's.

Policy
- `DirectStore.open` opens only the default SQLite file of the storage folder, and only when
  it exists at SCHEMA_REVISION, or (`create`) does not exist yet: it is then created as
  `Store` creates it (`sqlite_schema`). Otherwise it answers None and the caller opens
  `Store`, which migrates or refuses the database and names what is wrong.
- It answers and writes exactly what `Store` would: `lookups.succeeded` is the same query
  as `Store`'s on SQLite (`codec.sqlite_succeeded`, served by the (fingerprint, status)
  index); its writes (`create_settled_execution`,
  `create_execution`, `adopt_execution`, `add_runs`, `record`, `heartbeat`,
  `finish_execution`: the driver's and the recorder's) are `Writes`' statements on the
  same rows and parameters (`records`: `execution_row`, `run_rows`, `start_params`,
  `finish_params`; JSON by `codec.dumps`), one transaction per call. Same SQLite settings (`codec.SQLITE_PRAGMAS`)
  and locking: reads in BEGIN, writes in BEGIN IMMEDIATE, so concurrent writers wait on
  the busy timeout.
- What else a driver may need (settling its runs after a failure) opens `Store`: `full()`.
- Errors leave as StoreErrors worded as `Store`'s ("Could not … in the run store at …").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store.codec import (
    SCHEMA_REVISION,
    SQLITE_PRAGMAS,
    dumps,
    loads,
    retrying_locks,
    sqlite_succeeded,
)
from qaflow.store.rows import (
    OK,
    execution_row,
    finish_params,
    finished_status,
    no_execution,
    run_rows,
    settled_execution_row,
    start_params,
)
from qaflow.store.sqlite_schema import STATEMENTS
from qaflow.worker.model import RunResult

# the JSON columns of models.EXECUTIONS and models.RUNS (a test keeps them equal)
EXECUTION_JSON = frozenset({"argv"})
RUN_JSON = frozenset({"configurations", "params", "metrics", "spec"})


class DirectStore:
    """The default SQLite store, opened with sqlite3 for a driver. It offers the part of
    `Store`'s interface that a driver and its recorder use: `lookups.succeeded`, `writes.*`
    (below), `sqlite`, `shown_url`, `close`; and `full()` for the rest."""

    sqlite = True

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # the driver and its recorder's thread share it
        self.path = path
        self.shown_url = f"sqlite:///{path}"  # as SQLAlchemy renders the file's URL
        self.lookups = self
        self.writes = self

    @classmethod
    def open(cls, database_url: str | None, storage: Path, *, create: bool = False) -> Self | None:
        """The store of the default file `storage/qaflow.db` when it exists at the schema
        revision this code needs, or, with `create`, when it does not exist yet (it is then
        created at that revision); None otherwise (the caller opens `Store`)."""
        path = storage / "qaflow.db"
        if database_url is not None:
            return None
        if not path.is_file():
            return cls._create(path) if create else None
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:  # the revision first: a file that is no store is left as it is, to Store
            connection.execute(SQLITE_PRAGMAS[0])  # busy_timeout: wait for a writer
            if _revision(connection) != SCHEMA_REVISION:
                connection.close()
                return None
            for pragma in SQLITE_PRAGMAS[1:]:
                connection.execute(pragma)
        except sqlite3.Error:
            connection.close()
            return None
        return cls(connection, path)

    @classmethod
    def _create(cls, path: Path) -> Self | None:
        """A new store at `path`, at the head revision (`sqlite_schema`), as `Store` creates
        one: in one transaction holding the write lock, the revision read again under it
        (another process may have created it meanwhile). None when anything is off: `Store`
        then creates it, or says what is wrong."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error):
            return None
        try:
            connection.execute(SQLITE_PRAGMAS[0])
            # SQLITE_PRAGMAS' journal mode: two new openers at once may find it locked
            retrying_locks(lambda: connection.execute(SQLITE_PRAGMAS[1]), sqlite3.OperationalError)
            for pragma in SQLITE_PRAGMAS[2:]:
                connection.execute(pragma)
            connection.execute("BEGIN IMMEDIATE")
            try:
                tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not tables.fetchall():
                    for statement in STATEMENTS:
                        connection.execute(statement)
                elif _revision(connection) != SCHEMA_REVISION:
                    raise sqlite3.DatabaseError("not a store at the head revision: left to Store")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error:
            connection.close()
            return None
        return cls(connection, path)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def full(self) -> Any:
        """`Store` on the same file, for what this class does not do (the caller closes it)."""
        from qaflow.store import Store

        return Store.open(None, storage=self.path.parent)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One unit of work, committed on leaving, rolled back on error; sqlite3's errors
        become StoreErrors naming `what`."""
        connection = self._connection
        try:
            with self._lock:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise StoreError(
                f"Could not {what} in the run store at {self.shown_url}: {_reason(error)}"
            ) from error

    # ------------------------------------------------------------ lookups
    def succeeded(self, fingerprints: Sequence[str]) -> set[str]:
        """As `Lookups.succeeded`: the fingerprints that have a successful run."""
        unique = list(dict.fromkeys(f for f in fingerprints if f))
        with self._transaction("look up cached runs", write=False) as connection:
            return sqlite_succeeded(connection.execute, unique, OK)

    # ------------------------------------------------------------ writes
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
        """As `Writes.create_settled_execution`: the execution, finished with `status`, and
        its runs with their results, in one transaction. Return its new id."""
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
        with self._transaction("record an execution", write=True) as connection:
            execution_id = _new_id(connection)
            _insert(connection, "executions", [{"id": execution_id, **row}], EXECUTION_JSON)
            runs = run_rows(execution_id, specs, fingerprints, results)
            if runs:
                _insert(connection, "runs", runs, RUN_JSON)
        return execution_id

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
        """As `Writes.create_execution`: a new execution, running; its new id."""
        row = execution_row(label, project, argv, git, pid, host, started_at=time.time())
        with self._transaction("create an execution", write=True) as connection:
            execution_id = _new_id(connection)
            _insert(connection, "executions", [{"id": execution_id, **row}], EXECUTION_JSON)
        return execution_id

    def add_runs(
        self,
        execution_id: str,
        specs: Sequence[dict[str, Any]],
        *,
        fingerprints: Sequence[str | None] | None = None,
        results: Mapping[str, RunResult] | None = None,
    ) -> None:
        """As `Writes.add_runs`: the planned runs, PENDING or settled, in one transaction."""
        rows = run_rows(execution_id, specs, fingerprints, results)
        with self._transaction(f"add runs to execution {execution_id}", write=True) as connection:
            self._known(connection, execution_id)
            if rows:
                _insert(connection, "runs", rows, RUN_JSON)

    def record(
        self,
        execution_id: str,
        *,
        started: Sequence[tuple[str, float, str, int]] = (),
        finished: Sequence[RunResult] = (),
        parts: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        """As `Writes.record`: runs started, then runs finished, then final fingerprints'
        parts, in one transaction."""
        starts = start_params(execution_id, started)
        ends = [
            {**p, "metrics": dumps(p["metrics"])} for p in finish_params(execution_id, finished)
        ]
        what = f"record {len(starts)} starts and {len(ends)} results of execution {execution_id}"
        with self._transaction(what, write=True) as connection:
            if starts:
                connection.executemany(_STARTED, starts)
            if ends:
                connection.executemany(_FINISHED, ends)
            for key, made_of in parts:
                where = {"e": execution_id, "k": key}
                row = connection.execute(_SPEC, where).fetchone()
                spec = loads(row[0]) if row is not None else None
                if isinstance(spec, dict):
                    new = dumps({**spec, "fingerprint_parts": made_of})
                    connection.execute(_SET_SPEC, {**where, "spec": new})

    def adopt_execution(self, execution_id: str, *, pid: int, host: str) -> None:
        """As `Writes.adopt_execution`: this process drives the execution from now on."""
        with self._transaction(f"adopt execution {execution_id}", write=True) as connection:
            changed = connection.execute(
                "UPDATE executions SET pid = ?, host = ?, heartbeat_at = ?, status = 'running' "
                "WHERE id = ?",
                (pid, host, time.time(), execution_id),
            ).rowcount
        if not changed:
            raise no_execution(execution_id, self.shown_url)

    def heartbeat(self, execution_id: str) -> None:
        """As `Writes.heartbeat`: the execution's driver is alive."""
        what = f"record a heartbeat of execution {execution_id}"
        with self._transaction(what, write=True) as connection:
            changed = connection.execute(
                "UPDATE executions SET heartbeat_at = ? WHERE id = ?", (time.time(), execution_id)
            ).rowcount
        if not changed:
            raise no_execution(execution_id, self.shown_url)

    def finish_execution(
        self, execution_id: str, status: str, *, ended_at: float | None = None
    ) -> None:
        """As `Writes.finish_execution`: how the execution ended."""
        value = finished_status(status)
        when = time.time() if ended_at is None else ended_at
        with self._transaction(f"finish execution {execution_id}", write=True) as connection:
            changed = connection.execute(
                "UPDATE executions SET status = ?, ended_at = ? WHERE id = ?",
                (value, when, execution_id),
            ).rowcount
        if not changed:
            raise no_execution(execution_id, self.shown_url)

    def _known(self, connection: sqlite3.Connection, execution_id: str) -> None:
        found = connection.execute("SELECT 1 FROM executions WHERE id = ?", (execution_id,))
        if found.fetchone() is None:
            raise no_execution(execution_id, self.shown_url)


_BY_KEY = "WHERE execution_id = :b_execution_id AND key = :b_key"
_STARTED = (
    "UPDATE runs SET status = :status, started_at = :started_at, host = :host, "
    f"attempt = :attempt, ended_at = :ended_at, error = :error {_BY_KEY}"
)
_FINISHED = (  # an unknown start time, host… (NULL) keeps the stored one
    "UPDATE runs SET status = :status, metrics = :metrics, error = :error, "
    "ended_at = :ended_at, attempt = :attempt, "
    "started_at = coalesce(:b_started_at, started_at), host = coalesce(:b_host, host), "
    "output_dir = coalesce(:b_output_dir, output_dir), "
    f"fingerprint = coalesce(:b_fingerprint, fingerprint) {_BY_KEY}"
)
_SPEC = "SELECT spec FROM runs WHERE execution_id = :e AND key = :k"
_SET_SPEC = "UPDATE runs SET spec = :spec WHERE execution_id = :e AND key = :k"


def _insert(
    connection: sqlite3.Connection,
    table: str,
    rows: list[dict[str, Any]],
    json_columns: frozenset[str],
) -> None:
    """Insert rows that all have the keys of the first, JSON columns encoded by `dumps`."""
    columns = list(rows[0])
    encoded = [i for i, column in enumerate(columns) if column in json_columns]
    values = []
    for row in rows:
        value = [row[column] for column in columns]
        for i in encoded:
            value[i] = dumps(value[i])
        values.append(value)
    names = ", ".join(f'"{column}"' for column in columns)
    marks = ", ".join("?" * len(columns))
    connection.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', values)


def _new_id(connection: sqlite3.Connection) -> str:
    while True:
        candidate = os.urandom(6).hex()  # as secrets.token_hex(6), without its imports
        taken = connection.execute("SELECT 1 FROM executions WHERE id = ?", (candidate,))
        if taken.fetchone() is None:
            return candidate


def _revision(connection: sqlite3.Connection) -> str:
    """The database's schema revision (sqlite3.Error without Alembic's table)."""
    rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return ",".join(sorted(str(row[0]) for row in rows))


def _reason(error: sqlite3.Error) -> str:
    """What went wrong, and what to do, as `engine` words SQLite's errors."""
    lines = str(error).strip().splitlines()
    message = lines[0].rstrip(".") if lines else type(error).__name__
    if not isinstance(error, sqlite3.OperationalError):
        return f"{message}."
    if "locked" in message or "busy" in message:
        return f"{message}. Another process kept the database locked for 30 s; try again."
    return f"{message}. Check that the file's folder exists and that you may write to it."
