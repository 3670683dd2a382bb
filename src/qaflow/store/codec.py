"""What the store's database holds, independent of how it is reached: JSON values as both
backends store them (`dumps`, `loads`), the schema revision this code needs, and SQLite's
settings (with `retrying_locks`, for its one lock that does not wait). No SQLAlchemy here:
the direct SQLite path (`direct.py`) shares these with the engines of `engine.py`."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

SCHEMA_REVISION = "0002"  # the head of migrations/versions; a test keeps the two equal
KNOWN_REVISIONS = ("0001", "0002")  # every revision of migrations/versions, oldest first
CHUNK = 500  # keys per IN (…) list: well under every backend's limit on parameters


def sqlite_succeeded(
    execute: Callable[[str, tuple[str, ...]], Iterable[Sequence[Any]]],
    fingerprints: Sequence[str],
    ok: tuple[str, ...],
) -> set[str]:
    """Which of these (distinct) fingerprints have a run of an `ok` status, on SQLite, through
    `execute(sql, parameters)` (sqlite3's, or SQLAlchemy's `exec_driver_sql`): per CHUNK of
    them, one indexed probe each that stops at the first row found (EXISTS), so its cost does
    not grow with the store's history. A `DISTINCT … IN (…)` visits every run of each
    fingerprint: one per execution that planned it, 450,000 rows for a 10,000-run project
    after 45 executions (113 ms against 40 ms here)."""
    statuses = ", ".join("?" * len(ok))
    found: set[str] = set()
    for start in range(0, len(fingerprints), CHUNK):
        chunk = tuple(fingerprints[start : start + CHUNK])
        rows = ", ".join(["(?)"] * len(chunk))
        sql = (
            f"SELECT column1 FROM (VALUES {rows}) WHERE EXISTS "
            f"(SELECT 1 FROM runs WHERE fingerprint = column1 AND status IN ({statuses}))"
        )
        found.update(row[0] for row in execute(sql, (*chunk, *ok)))
    return found


SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",  # first: switching to WAL may wait for another process
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    # 64 MB of page cache (the default is 2 MB): inserting 10,000 runs into a store of
    # 400,000 updates indexes all over their B-trees, and a small cache re-reads pages
    "PRAGMA cache_size=-65536",
)


def retrying_locks(
    action: Callable[[], object], error: type[Exception], *, seconds: float = 30.0
) -> None:
    """Run action, again while it raises `error` saying "database is locked", for up to
    `seconds` (`error`: the OperationalError of the caller's driver or SQLAlchemy).

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
        except error as raised:
            if "locked" not in str(raised) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


_ENCODE = json.JSONEncoder(allow_nan=False, default=str).encode
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # keys as json.dumps writes them: 1 -> "1"


def dumps(value: Any) -> str:
    """JSON for both backends: NaN and ±infinity (invalid JSON, refused by PostgreSQL) become null.

    orjson writes them as null itself, and is several times faster than json.dumps (an
    execution stores four JSON values per run, 10,000 runs included when all are cached);
    what it refuses (an integer beyond 64 bits) goes through json, exactly."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        pass
    try:
        return _ENCODE(value)
    except ValueError:
        return _ENCODE(_finite(value))


_LONG_INTEGER = re.compile(r"(?<![.\d])\d{19}(?![.eE])")  # 19 digits, not a float's
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # digit: "0", else " "
_RUN = b"0" * 19


def loads(text: str | bytes) -> Any:
    """The value `dumps` wrote. orjson reads it several times faster than json.loads (the
    cache reads the metrics of every planned run), but reads integers beyond 64 bits as
    floats: text with such a number goes through json, exactly.

    Only text with a run of 19 ASCII digits is searched for such an integer: a byte
    translation finds those runs some 20 times faster than the search (which would cost
    4 times orjson's decoding of the metrics of 10,000 runs)."""
    raw = text.encode() if isinstance(text, str) else text
    if _RUN in raw.translate(_DIGITS) and _LONG_INTEGER.search(
        text if isinstance(text, str) else text.decode()
    ):
        return json.loads(text)
    return orjson.loads(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
