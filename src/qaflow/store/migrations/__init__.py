"""Alembic migrations of the run store's schema (run by qaflow.store.engine.upgrade)."""
