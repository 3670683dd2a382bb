"""Query pieces the store's query modules share: id and prefix patterns, run counts per
execution, prefix matches. (The statuses that count as a success, `records.OK`, and the size
of IN (…) lists, `codec.CHUNK`, are defined where the direct SQLite path can use them too.)"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from qaflow.store.models import EXECUTIONS, RUNS

HEX = re.compile(r"[0-9a-f]+")
PREFIX = re.compile(r"[0-9A-Za-z_.:+=-]+")
MIN_PREFIX = 4  # characters of a run key or fingerprint prefix in find_runs


def exists(execution_id: str) -> Any:
    return select(EXECUTIONS.c.seq).where(EXECUTIONS.c.id == execution_id)


def starts(column: ColumnElement[Any], prefix: str, sqlite: bool) -> ColumnElement[bool]:
    """`column` starts with `prefix`, in a form the backend's index serves (SQLite: GLOB)."""
    if sqlite:  # LIKE is case-insensitive there, so it cannot use the index; GLOB can
        return column.op("GLOB", is_comparison=True)(f"{prefix}*")
    return column.startswith(prefix, autoescape=True)


def status_counts(connection: Connection, ids: list[str]) -> dict[str, dict[str, int]]:
    """Execution id -> run status -> number of its runs, for these executions."""
    if not ids:
        return {}
    query = (
        select(RUNS.c.execution_id, RUNS.c.status, func.count())
        .where(RUNS.c.execution_id.in_(ids))
        .group_by(RUNS.c.execution_id, RUNS.c.status)
    )
    found: dict[str, dict[str, int]] = {}
    for execution_id, status, count in connection.execute(query):
        found.setdefault(execution_id, {})[status] = int(count)
    return found
