"""Alembic's environment: migrate on the connection qaflow passes in `config.attributes`."""

from __future__ import annotations

from alembic import context

from qaflow.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("qaflow runs its migrations itself (qaflow.store.engine.upgrade).")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
