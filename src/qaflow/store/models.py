"""The tables of the run store, as SQLAlchemy typed models (the migrations must match them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExecutionRow(Base):
    """One execution of `qa batch`/`qa run`. `seq` orders executions by creation."""

    __tablename__ = "executions"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(12), unique=True)
    label: Mapped[str] = mapped_column(Text, index=True)
    project: Mapped[str] = mapped_column(Text)
    argv: Mapped[list[str]] = mapped_column(JSON)
    git_commit: Mapped[str | None] = mapped_column(Text)
    git_branch: Mapped[str | None] = mapped_column(Text)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)


class RunRow(Base):
    """One run of an execution. `id` grows with insertion: plan order, then newer executions."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("uq_runs_execution_key", "execution_id", "key", unique=True),
        Index("ix_runs_execution_status", "execution_id", "status"),
        Index("ix_runs_fingerprint_status", "fingerprint", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(
        String(12), ForeignKey("executions.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(Text, index=True)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    batch: Mapped[str] = mapped_column(Text)
    input_path: Mapped[str | None] = mapped_column(Text)
    rel_input_path: Mapped[str | None] = mapped_column(Text)
    configurations: Mapped[list[Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    platform: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    output_dir: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    host: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
