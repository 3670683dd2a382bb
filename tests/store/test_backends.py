"""The store on each backend: SQLite's file and WAL, two writing processes, connection errors."""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from store_helpers import with_runs

from qaflow.errors import ConfigError, StoreError, StoreUnreachableError, UsageError
from qaflow.store import Store
from qaflow.worker.model import RunResult, RunStatus


# ---------------------------------------------------------------- SQLite specifics
def test_sqlite_default_location_and_wal_mode(tmp_path: Path) -> None:
    storage = tmp_path / "does" / "not" / "exist"
    with Store.open(storage=storage) as store:
        execution_id, _ = with_runs(store, 2)
        assert store.lookups.execution(execution_id).counts == {"pending": 2}
    connection = sqlite3.connect(storage / "qaflow.db")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


def test_add_runs_inserts_ten_thousand_runs(tmp_path: Path) -> None:
    with Store.open(storage=tmp_path) as store:
        execution_id, specs = with_runs(store, 10_000)
        runs = store.lookups.runs(execution_id)
        assert [run.key for run in runs] == [spec["id"] for spec in specs]
        assert runs[9_999].spec == specs[9_999]
        assert store.lookups.execution(execution_id).counts == {"pending": 10_000}


# ---------------------------------------------------------------- concurrency
def _writer(url: str, storage: str, label: str, count: int, go: Any, errors: Any) -> None:
    """One process of the concurrency test: open the (new) store, record an execution."""
    try:
        go.wait(60)
        with Store.open(url, storage=Path(storage)) as store:
            execution_id, specs = with_runs(store, count, batch=label, label=label)
            for spec in specs:
                store.writes.run_started(
                    execution_id, spec["id"], started_at=time.time(), host=label
                )
                store.writes.heartbeat(execution_id)
                result = RunResult(
                    key=spec["id"], status=RunStatus.SUCCEEDED, metrics={"by": label}
                )
                store.writes.run_finished(execution_id, result)
            store.writes.finish_execution(execution_id, "succeeded")
    except BaseException as error:
        errors.put(f"{label}: {type(error).__name__}: {error}")
        raise SystemExit(1) from None


def test_two_processes_write_at_the_same_time(store_url: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    go, errors = context.Event(), context.Queue()
    count = 150
    writers = [
        context.Process(target=_writer, args=(store_url, str(tmp_path), label, count, go, errors))
        for label in ("left", "right")
    ]
    for writer in writers:
        writer.start()
    go.set()  # both open the new database and write at once
    for writer in writers:
        writer.join(120)
    failures = [errors.get(timeout=5) for writer in writers if writer.exitcode != 0]
    assert failures == []
    with Store.open(store_url, storage=tmp_path) as store:
        executions = store.lookups.executions()
        assert sorted(e.label for e in executions) == ["left", "right"]
        for execution in executions:
            assert (execution.status, execution.counts) == ("succeeded", {"succeeded": count})
            runs = store.lookups.runs(execution.id)
            assert {(run.host, run.metrics["by"]) for run in runs} == {
                (execution.label, execution.label)
            }


# ---------------------------------------------------------------- opening errors
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nobody listens there


def test_an_unreachable_postgres_server_is_a_quick_one_paragraph_store_error(
    tmp_path: Path,
) -> None:
    url = f"postgresql://qaflow:s3cret@127.0.0.1:{_free_port()}/qaflow"
    with pytest.raises(StoreUnreachableError) as raised:
        Store.open(url, storage=tmp_path)
    # the user's setting to fix: a usage error (exit 2), still a StoreError for callers
    assert isinstance(raised.value, UsageError) and isinstance(raised.value, StoreError)
    assert raised.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    message = str(raised.value)
    assert "open the database" in message and "127.0.0.1" in message
    assert "s3cret" not in message and "***" in message
    assert "Is the database server running" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "expected", "error"),
    [
        # the URL itself is wrong: a configuration error (exit 2)
        ("mysql://u:p@host/db", "does not support", ConfigError),
        ("not a url", "is not valid", ConfigError),
        # the URL is right, the environment lacks something: a store error (exit 1)
        ("postgresql+psycopg2://u:pw@127.0.0.1/db", "driver is not installed", StoreError),
    ],
)
def test_unusable_urls_are_refused_without_their_password(
    url: str, expected: str, error: type[Exception], tmp_path: Path
) -> None:
    with pytest.raises(error, match=expected) as raised:
        Store.open(url, storage=tmp_path)
    assert ":pw@" not in str(raised.value) and ":p@" not in str(raised.value)


def test_a_sqlite_file_in_a_missing_folder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError, match=r"Could not open the database .*unable to open database file"
    ):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'qaflow.db'}", storage=tmp_path)
