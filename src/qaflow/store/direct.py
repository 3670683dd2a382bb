"""The run store's SQLite file through Python's sqlite3, without SQLAlchemy: the calls of a
no-op re-run, where importing SQLAlchemy (~150 ms) was most of the process's time.

Policy
- `DirectStore.open` opens only the default SQLite file of the storage folder, and only when
  it exists at SCHEMA_REVISION; otherwise it answers None and the caller opens `Store`,
  which creates, migrates or refuses the database and names what is wrong.
- It answers and writes exactly what `Store` would: `lookups.succeeded` is the same query
  (served by the (fingerprint, status) index); `writes.create_settled_execution` inserts
  the same rows (`records.execution_row`, `records.run_rows`, JSON by `codec.dumps`) in one
  transaction. Same SQLite settings (`codec.SQLITE_PRAGMAS`) and locking: reads in BEGIN,
  writes in BEGIN IMMEDIATE, so concurrent writers wait on the busy timeout.
- Errors leave as StoreErrors worded as `Store`'s ("Could not … in the run store at …").
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store.codec import CHUNK, SCHEMA_REVISION, SQLITE_PRAGMAS, dumps
from qaflow.store.records import OK, run_rows, settled_execution_row
from qaflow.worker.model import RunResult

# the JSON columns of models.EXECUTIONS and models.RUNS (a test keeps them equal)
EXECUTION_JSON = frozenset({"argv"})
RUN_JSON = frozenset({"configurations", "params", "metrics", "spec"})


class DirectStore:
    """The default SQLite store, opened with sqlite3 for a no-op re-run. It offers the part of
    `Store`'s interface that such a run uses: `lookups.succeeded`,
    `writes.create_settled_execution`, `sqlite`, `shown_url`, `close`."""

    sqlite = True

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self.shown_url = f"sqlite:///{path}"  # as SQLAlchemy renders the file's URL
        self.lookups = self
        self.writes = self

    @classmethod
    def open(cls, database_url: str | None, storage: Path) -> Self | None:
        """The store of the default file `storage/qaflow.db` when it exists at the schema
        revision this code needs; None otherwise (the caller opens `Store`)."""
        path = storage / "qaflow.db"
        if database_url is not None or not path.is_file():
            return None
        try:
            connection = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error:
            return None
        try:  # the revision first: a file that is no store is left as it is, to Store
            connection.execute(SQLITE_PRAGMAS[0])  # busy_timeout: wait for a writer
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            if ",".join(sorted(str(row[0]) for row in rows)) != SCHEMA_REVISION:
                connection.close()
                return None
            for pragma in SQLITE_PRAGMAS[1:]:
                connection.execute(pragma)
        except sqlite3.Error:
            connection.close()
            return None
        return cls(connection, path)

    def close(self) -> None:
        self._connection.close()

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
        found: set[str] = set()
        with self._transaction("look up cached runs", write=False) as connection:
            for start in range(0, len(unique), CHUNK):
                chunk = unique[start : start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT DISTINCT fingerprint FROM runs WHERE fingerprint IN ({marks}) "
                    "AND status IN (?, ?)",
                    (*chunk, *OK),
                )
                found.update(row[0] for row in rows)
        return found

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
        candidate = secrets.token_hex(6)
        taken = connection.execute("SELECT 1 FROM executions WHERE id = ?", (candidate,))
        if taken.fetchone() is None:
            return candidate


def _reason(error: sqlite3.Error) -> str:
    """What went wrong, and what to do, as `engine` words SQLite's errors."""
    lines = str(error).strip().splitlines()
    message = lines[0].rstrip(".") if lines else type(error).__name__
    if not isinstance(error, sqlite3.OperationalError):
        return f"{message}."
    if "locked" in message or "busy" in message:
        return f"{message}. Another process kept the database locked for 30 s; try again."
    return f"{message}. Check that the file's folder exists and that you may write to it."
