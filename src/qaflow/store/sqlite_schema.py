"""The head schema as SQLite statements, without SQLAlchemy: what `DirectStore.create` runs
to make a new default store. `Store` creates the same schema from the models (`models.py`,
`engine._create`); tests/store/test_direct_create.py keeps the two equal, table by table and
index by index, as SQLite records them (`sqlite_master`)."""

from __future__ import annotations

from qaflow.store.codec import SCHEMA_REVISION

STATEMENTS = (
    """CREATE TABLE executions (
        seq INTEGER NOT NULL,
        id VARCHAR(12) NOT NULL,
        label TEXT NOT NULL,
        project TEXT NOT NULL,
        argv JSON NOT NULL,
        git_commit TEXT,
        git_branch TEXT,
        git_dirty BOOLEAN,
        status VARCHAR(16) NOT NULL,
        started_at FLOAT NOT NULL,
        ended_at FLOAT,
        pid INTEGER,
        host TEXT,
        heartbeat_at FLOAT,
        CONSTRAINT pk_executions PRIMARY KEY (seq),
        CONSTRAINT uq_executions_id UNIQUE (id)
    )""",
    "CREATE INDEX ix_executions_label ON executions (label)",
    """CREATE TABLE runs (
        id INTEGER NOT NULL,
        execution_id VARCHAR(12) NOT NULL,
        "key" TEXT NOT NULL,
        fingerprint TEXT,
        batch TEXT NOT NULL,
        input_path TEXT,
        rel_input_path TEXT,
        configurations JSON NOT NULL,
        params JSON NOT NULL,
        platform TEXT NOT NULL,
        type TEXT NOT NULL,
        output_dir TEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        metrics JSON NOT NULL,
        error TEXT,
        started_at FLOAT,
        ended_at FLOAT,
        host TEXT,
        attempt INTEGER NOT NULL,
        spec JSON NOT NULL,
        CONSTRAINT pk_runs PRIMARY KEY (id),
        CONSTRAINT fk_runs_execution_id_executions FOREIGN KEY(execution_id)
            REFERENCES executions (id) ON DELETE CASCADE
    )""",
    "CREATE INDEX ix_runs_fingerprint_status ON runs (fingerprint, status)",
    'CREATE UNIQUE INDEX uq_runs_execution_key ON runs (execution_id, "key")',
    "CREATE INDEX ix_runs_execution_status ON runs (execution_id, status)",
    'CREATE INDEX ix_runs_key ON runs ("key")',
    # Alembic's version table, as Alembic makes it, stamped at the head
    """CREATE TABLE alembic_version (
        version_num VARCHAR(32) NOT NULL,
        CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
    )""",
    f"INSERT INTO alembic_version (version_num) VALUES ('{SCHEMA_REVISION}')",
)
