"""The tables of the run store, as SQLAlchemy Core tables (the migrations must match them).

Core, not ORM models: the store reads and writes rows with Core statements only, and
importing `sqlalchemy.orm` would cost every `qa` command tens of milliseconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _required(name: str, *kind_and_constraints: Any, **options: Any) -> Column[Any]:
    return Column(name, *kind_and_constraints, nullable=False, **options)


# One execution of `qa batch`/`qa run`. `seq` orders executions by creation.
EXECUTIONS = Table(
    "executions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    _required("id", String(12), unique=True),
    _required("label", Text, index=True),
    _required("project", Text),
    _required("argv", JSON),
    Column("git_commit", Text),
    Column("git_branch", Text),
    Column("git_dirty", Boolean),
    _required("status", String(16)),
    _required("started_at", Float),
    Column("ended_at", Float),
    Column("pid", Integer),
    Column("host", Text),
    Column("heartbeat_at", Float),
)

# One run of an execution. `id` grows with insertion: plan order, then newer executions.
RUNS = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _required("execution_id", String(12), ForeignKey("executions.id", ondelete="CASCADE")),
    _required("key", Text, index=True),
    Column("fingerprint", Text),
    _required("batch", Text),
    Column("input_path", Text),
    Column("rel_input_path", Text),
    _required("configurations", JSON),
    _required("params", JSON),
    _required("platform", Text),
    _required("type", Text),
    _required("output_dir", Text),
    _required("status", String(16)),
    _required("metrics", JSON),
    Column("error", Text),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("host", Text),
    _required("attempt", Integer),
    _required("spec", JSON),
    Index("uq_runs_execution_key", "execution_id", "key", unique=True),
    Index("ix_runs_execution_status", "execution_id", "status"),
    Index("ix_runs_fingerprint_status", "fingerprint", "status"),
)
