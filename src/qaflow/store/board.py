"""What the board reads: executions filtered for its lists and the values of their filters,
recent names for hints, an execution's nodes (batches, pipeline steps) with their run counts
and edges, pages of runs filtered and sorted, and the runs a run is compared with.

Consumers: the board (web/pages.py, web/live.py, web/app.py, web/comparison.py) and the
did-you-mean hints of `qa compare` (`names`). Read-only transactions, narrow columns: a page
of a 10,000-run execution reads the runs it shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Text, case, cast, func, select

from qaflow.store.base import Database
from qaflow.store.lookups import Lookups
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.store.queries import status_counts
from qaflow.store.records import (
    ExecutionRecord,
    RunRecord,
    RunSummary,
    execution_record,
    run_record,
)


class BoardReads:
    """The board's reads, one read transaction per call: `store.board`."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._lookups = Lookups(database)

    # ------------------------------------------------------------ executions
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
        with self._db.transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
            counts = status_counts(connection, [row.id for row in rows])
        return [execution_record(row, counts.get(row.id, {})) for row in rows]

    def execution_values(self, *names: str, limit: int = 200) -> dict[str, list[str]]:
        """The distinct values of these execution columns, most recent first: filter choices."""
        found: dict[str, list[str]] = {}
        with self._db.transaction("list execution values", write=False) as connection:
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

    def names(self, *, limit: int = 200) -> dict[str, list[str]]:
        """Recent labels, branches and execution ids, newest first: for did-you-mean hints."""
        query = (
            select(EXECUTIONS.c.id, EXECUTIONS.c.label, EXECUTIONS.c.git_branch)
            .order_by(EXECUTIONS.c.seq.desc())
            .limit(limit)
        )
        with self._db.transaction("list executions", write=False) as connection:
            rows = connection.execute(query).all()
        return {
            "labels": list(dict.fromkeys(row.label for row in rows)),
            "branches": list(dict.fromkeys(row.git_branch for row in rows if row.git_branch)),
            "ids": [row.id for row in rows],
        }

    # ------------------------------------------------------------ an execution's graph
    def batch_counts(self, execution_id: str) -> dict[str, dict[str, int]]:
        """Node -> run status -> number of runs, nodes in plan order (of their first run). A
        node is a batch, or one `run:` step of a pipeline (see `_node`)."""
        query = (
            select(RUNS.c.batch, _STEP, RUNS.c.status, func.count(), func.min(RUNS.c.id))
            .where(RUNS.c.execution_id == execution_id)
            .group_by(RUNS.c.batch, _STEP, RUNS.c.status)
        )
        with self._db.transaction("count runs per batch", write=False) as connection:
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
        with self._db.transaction("list the batches of an execution", write=False) as connection:
            return list(connection.execute(query).scalars())

    def batches_of(self, execution_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each execution's batches, in plan order (of their first run): one query for a
        list of executions."""
        query = (
            select(RUNS.c.execution_id, RUNS.c.batch)
            .where(RUNS.c.execution_id.in_(list(execution_ids)))
            .group_by(RUNS.c.execution_id, RUNS.c.batch)
            .order_by(func.min(RUNS.c.id))
        )
        found: dict[str, list[str]] = {i: [] for i in execution_ids}
        with self._db.transaction("list the batches of executions", write=False) as connection:
            for execution_id, batch in connection.execute(query):
                found[execution_id].append(batch)
        return found

    def batch_edges(self, execution_id: str) -> list[tuple[str, str]]:
        """(upstream node, downstream node) pairs (nodes as in `batch_counts`), from the run
        keys each run's spec needs, in plan order (of the first run needing each pair): a
        query without ORDER BY has no order on PostgreSQL (a test saw it change)."""
        with self._db.transaction("read the graph of batches", write=False) as connection:
            keys = select(RUNS.c.key, RUNS.c.batch, _STEP).where(
                RUNS.c.execution_id == execution_id
            )
            node_of = {row.key: _node(row.batch, row.step) for row in connection.execute(keys)}
            query = (
                select(RUNS.c.key, RUNS.c.spec["needs"])
                .where(RUNS.c.execution_id == execution_id)
                .order_by(RUNS.c.id)
            )
            edges: dict[tuple[str, str], None] = {}
            for key, needs in connection.execute(query):
                for upstream in needs or ():
                    if upstream in node_of and node_of[upstream] != node_of[key]:
                        edges[(node_of[upstream], node_of[key])] = None
        return list(edges)

    # ------------------------------------------------------------ runs
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
        order = _table_order(sort, self._db.sqlite)
        order = order.desc().nulls_last() if descending else order.asc().nulls_last()
        columns = [RUNS.c[name] for name in RunSummary._fields]
        query = (
            select(*columns)
            .where(*where)
            .order_by(order, RUNS.c.id)
            .offset(max(0, offset))
            .limit(limit)
        )
        with self._db.transaction("read a table of runs", write=False) as connection:
            total = connection.execute(select(func.count()).where(*where)).scalar_one()
            rows = [RunSummary(*row) for row in connection.execute(query)]
        return int(total), rows

    def matching_run(self, execution_id: str, run: RunRecord) -> RunRecord | None:
        """The execution's run with the run's key, else its first run of the same batch and
        input (a run whose configuration changed): what the run is compared with."""
        same = self._lookups.run_by_key(execution_id, run.key)
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
        with self._db.transaction("read a run", write=False) as connection:
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
        with self._db.transaction("find the same run elsewhere", write=False) as connection:
            rows = connection.execute(query).all()
        return [(row.run_id, execution_record(row, {})) for row in rows]


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
