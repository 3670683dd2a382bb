"""Reuse look-ups by (fingerprint, status); no index on status alone, nor on output_dir.

The cache asks, for every planned run, for the newest successful run of its fingerprint.
With a fingerprint index alone, that reads every run of the fingerprint from the table (a
run re-used by 40 executions has 40 rows); (fingerprint, status) answers from the index.
An index on status alone served no query, and one on output_dir (long, scattered keys)
served only `qa logs DIR`: both cost every insert, and an execution inserts every planned
run, cached ones too (a fourth of the time of a fully cached re-run of 10,000 runs).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_fingerprint_status", "runs", ["fingerprint", "status"])
    op.drop_index("ix_runs_fingerprint", table_name="runs")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_output_dir", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_output_dir", "runs", ["output_dir"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_fingerprint", "runs", ["fingerprint"])
    op.drop_index("ix_runs_fingerprint_status", table_name="runs")
