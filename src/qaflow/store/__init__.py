"""The run store: where executions and their runs are recorded (SQLite by default, or PostgreSQL).

Layout, by consumer (each query module returns the plain records of `records.py`; the
writes make their table rows with `rows.py`)
- `base.py`: `Database`, the engine and one transaction per call; opening checks the schema.
- `store.py`: `Store`, a Database carrying the query modules as attributes.
- `writes.py` (`store.writes`): what drivers write — execution/recorder, execution/driver, execution/background.
- `lookups.py` (`store.lookups`): what reuse and the CLI look up — executions by reference,
  runs, the newest successes by fingerprint (the cache), fingerprint parts (`qa why`).
- `board.py` (`store.board`): what the board reads — filtered lists, counts and graphs of
  batches, pages of runs, the run a run is compared with; names for did-you-mean hints.
- `history.py` (`store.history`): what compare and history read across executions.
- `queries.py`: the query pieces they share; `models.py`: the tables; `engine.py`: URLs,
  engines, errors, schema upgrades; `codec.py`: JSON values, the schema revision, SQLite
  settings (no SQLAlchemy); `migrations/`: Alembic.
- `direct.py`: `DirectStore`, the default SQLite file through sqlite3 for a driver: the
  lookup of reusable results and the driver's and recorder's writes, without SQLAlchemy;
  it creates a new store from `sqlite_schema.py` (the head schema as SQLite statements).
The store imports only lower phases (config, worker): never run, results, web or cli.

Policy
- One public call is one transaction, committed before it returns: if the process is killed
  between two calls, the store holds exactly what the calls before it wrote.
- The hot paths (run_started, run_finished, record, heartbeat) are single Core UPDATEs found
  by (execution_id, key) through the unique index: no ORM loads, no reads before writing.
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

State
- Two tables (`models.py`): executions (one per `qa batch`/`qa run`: label, project, argv,
  git state, status, driver pid/host/heartbeat) and runs (one per planned run: key,
  fingerprint, the columns queries filter on, the compacted spec, status, metrics, times).
- A Store holds its engine and nothing else: no cache of rows, so every read sees what other
  processes committed. The query objects are stateless views over it.

Invariants
- An execution id is 12 lowercase hex characters, unique; `lookups.execution()` also takes
  a prefix.
- A run is unique by (execution_id, key); `writes.add_runs` inserts runs PENDING with
  attempt 0, and run ids grow with insertion, so an execution's runs in id order are in plan
  order.
- `spec` is exactly the dict given to add_runs (after a JSON round trip).
- `counts` adds up to the number of runs of the execution, by status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qaflow.config.git import GitInfo

if TYPE_CHECKING:
    from qaflow.store.engine import SCHEMA_REVISION
    from qaflow.store.records import ExecutionRecord, RunRecord
    from qaflow.store.store import Store

__all__ = ["SCHEMA_REVISION", "ExecutionRecord", "GitInfo", "RunRecord", "Store"]


def __getattr__(name: str) -> Any:
    """`Store` and `SCHEMA_REVISION` import SQLAlchemy (~150 ms): only when asked for, so
    importing the records stays cheap for commands that never open the store. The records
    too: a driver on the direct SQLite path (`direct`) only writes rows, never reads them."""
    if name in ("ExecutionRecord", "RunRecord"):
        from qaflow.store import records

        return getattr(records, name)
    if name == "Store":
        from qaflow.store.store import Store

        return Store
    if name == "SCHEMA_REVISION":
        from qaflow.store.engine import SCHEMA_REVISION

        return SCHEMA_REVISION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
