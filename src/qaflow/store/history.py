"""What compare and history read: an execution's runs with only the columns a comparison
needs (plain `CompareRow`s; the results layer builds its `CompareRun`s from them), and the
values of a metric over the last executions of a batch.

Consumers: `qa compare` (cli/commands/compare.py), the board's compare page
(web/comparison.py) and `qa history` (cli/commands/history.py). Read-only transactions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, select

from qaflow.store.base import Database
from qaflow.store.engine import loads
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.store.queries import status_counts
from qaflow.store.records import CompareRow, ExecutionRecord, execution_record
from qaflow.store.rows import OK


class History:
    """The reads across executions, one read transaction per call: `store.history`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def compare_runs(self, execution_id: str, *, batch: str | None = None) -> list[CompareRow]:
        """The execution's runs in plan order, only the columns a comparison needs (no spec
        but its matrix): what `qa compare` and the board read of 10,000 runs.

        The JSON columns are read as text and decoded here, not row by row by the driver:
        the metrics of every run in one decode, and each distinct configuration list and
        matrix once (runs with the same text share the decoded value: read-only)."""
        query = (
            select(
                RUNS.c.key,
                RUNS.c.batch,
                RUNS.c.rel_input_path,
                RUNS.c.platform,
                cast(RUNS.c.configurations, Text),
                cast(RUNS.c.spec["matrix"], Text),
                RUNS.c.status,
                cast(RUNS.c.metrics, Text),
                RUNS.c.output_dir,
            )
            .where(RUNS.c.execution_id == execution_id)
            .order_by(RUNS.c.id)
        )
        if batch is not None:
            query = query.where(RUNS.c.batch == batch)
        with self._db.transaction("read runs", write=False) as connection:
            rows = connection.execute(query).all()
        metrics = loads(f"[{','.join(row[7] or 'null' for row in rows)}]")
        shared: dict[str | None, Any] = {}
        return [
            CompareRow(
                k,
                b,
                i,
                p,
                _decoded(shared, c) or [],
                _decoded(shared, m) or {},
                s,
                ms or {},
                o,
            )
            for (k, b, i, p, c, m, s, _, o), ms in zip(rows, metrics, strict=True)
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
        with self._db.transaction("read the history of a metric", write=False) as connection:
            rows = connection.execute(query).all()[::-1]
            ids = [row.id for row in rows]
            runs = select(RUNS.c.execution_id, RUNS.c.metrics[metric]).where(
                RUNS.c.execution_id.in_(ids), RUNS.c.batch == batch, RUNS.c.status.in_(OK)
            )
            for execution_id, value in connection.execute(runs.order_by(RUNS.c.id)):
                values.setdefault(execution_id, []).append(value)
            counts = status_counts(connection, ids)
        return [
            (execution_record(row, counts.get(row.id, {})), values.get(row.id, [])) for row in rows
        ]


def _decoded(shared: dict[str | None, Any], text: str | None) -> Any:
    """The value of a JSON text, decoded once per distinct text (SQL NULL: None)."""
    try:
        return shared[text]
    except KeyError:
        value = shared[text] = None if text is None else loads(text)
        return value
