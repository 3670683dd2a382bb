"""A new default store created by `DirectStore` (sqlite3, `store/sqlite_schema.py`) is the
store `Store` creates from the models: same tables, indexes, revision and settings; and
processes creating it at once end with one store that all of them write to."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
from pathlib import Path

import pytest
from store_helpers import GIT

from qaflow.store import Store
from qaflow.store.codec import SCHEMA_REVISION
from qaflow.store.direct import DirectStore


def schema(path: Path) -> list[tuple[str, str, str, str | None]]:
    """What SQLite records of the schema, whitespace aside (the statements' layout differs)."""
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return sorted(
        (kind, name, table, None if sql is None else re.sub(r"\s+", " ", sql).replace("( ", "("))
        for kind, name, table, sql in rows
    )


def test_it_creates_the_schema_store_creates(tmp_path: Path) -> None:
    Store.open(None, storage=tmp_path / "by-store").close()
    created = DirectStore.open(None, tmp_path / "by-direct", create=True)
    assert created is not None
    created.close()
    theirs, mine = tmp_path / "by-store" / "qaflow.db", tmp_path / "by-direct" / "qaflow.db"
    assert schema(mine) == schema(theirs)
    assert {row[1] for row in schema(mine)} >= {"executions", "runs", "alembic_version"}
    with sqlite3.connect(mine) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (SCHEMA_REVISION,)
        ]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_store_opens_what_it_created_and_both_write_there(tmp_path: Path) -> None:
    created = DirectStore.open(None, tmp_path, create=True)
    assert created is not None
    with created:
        first = created.writes.create_execution(
            label="a", project="p", argv=["qa"], git=GIT, pid=1, host="h"
        )
    with Store.open(None, storage=tmp_path) as store:  # no migration: it is at the head
        second = store.writes.create_execution(
            label="b", project="p", argv=["qa"], git=GIT, pid=1, host="h"
        )
        assert [e.id for e in store.lookups.executions()] == [second, first]
    again = DirectStore.open(None, tmp_path)  # an existing store: opened, not created
    assert again is not None
    again.close()


def test_it_does_not_create_unless_asked_nor_over_a_file_that_is_no_store(tmp_path: Path) -> None:
    assert DirectStore.open(None, tmp_path / "none") is None
    assert not (tmp_path / "none").exists()
    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / "qaflow.db") as raw:
        raw.execute("CREATE TABLE mine (x)")
    before = (tmp_path / "other" / "qaflow.db").read_bytes()
    assert DirectStore.open(None, tmp_path / "other", create=True) is None
    assert (tmp_path / "other" / "qaflow.db").read_bytes() == before
    (tmp_path / "a-file").write_text("x")
    assert DirectStore.open(None, tmp_path / "a-file", create=True) is None  # not a folder
    assert DirectStore.open("sqlite:///elsewhere.db", tmp_path / "url", create=True) is None
    assert not (tmp_path / "url").exists()


def _create_and_write(storage: str, start: multiprocessing.synchronize.Barrier) -> str:
    start.wait()
    opened = DirectStore.open(None, Path(storage), create=True)
    store = opened if opened is not None else Store.open(None, storage=Path(storage))
    with store:
        return store.writes.create_execution(
            label="racer", project="p", argv=[], git=GIT, pid=None, host=None
        )


@pytest.mark.parametrize("processes", [2, 6])
def test_processes_creating_it_at_once_end_with_one_store(tmp_path: Path, processes: int) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Barrier(processes)
    with context.Pool(processes) as pool:
        ids = pool.starmap(_create_and_write, [(str(tmp_path), start)] * processes)
    assert len(set(ids)) == processes
    with Store.open(None, storage=tmp_path) as store:
        assert {e.id for e in store.lookups.executions(label="racer")} == set(ids)
    with sqlite3.connect(tmp_path / "qaflow.db") as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (SCHEMA_REVISION,)
        ]
