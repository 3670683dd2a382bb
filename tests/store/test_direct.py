"""The direct SQLite path of a no-op re-run (`store/direct.py`) against `Store` on real SQLite
files: it opens only what it can serve, answers and writes exactly what `Store` would."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON
from store_helpers import GIT, make_spec, new_execution

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store import Store
from qaflow.store.direct import EXECUTION_JSON, RUN_JSON, DirectStore
from qaflow.store.models import EXECUTIONS, RUNS
from qaflow.worker.model import RunResult, RunStatus


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """A storage folder whose default store exists at the current revision."""
    folder = tmp_path / "output"
    Store.open(None, storage=folder).close()
    return folder


def settled(store: Store | DirectStore, count: int, **overrides: object) -> str:
    """A no-op re-run of `count` runs recorded by `store`, with awkward values on purpose."""
    specs = [make_spec(i) for i in range(count)]
    started = time.time()
    results = {
        str(spec["id"]): RunResult(
            str(spec["id"]),
            RunStatus.CACHED,
            metrics={"psnr": 30.0 + i, "nan": float("nan"), "big": 2**70, "name": "é\u2028"},
            started_at=started - 2,
            ended_at=started - 1,
            host="build-02",
            attempt=i % 3,
        )
        for i, spec in enumerate(specs)
    }
    arguments: dict[str, object] = {
        "label": "again",
        "project": "acme/vision",
        "argv": ["qa", "batch", "sweep", "--label", "again"],
        "git": GIT,
        "pid": 4242,
        "host": "build-01",
        "specs": specs,
        "fingerprints": [f"fp{i:04d}" for i in range(count)],
        "results": results,
        "status": "succeeded",
        "started_at": started,
        "ended_at": started + 0.5,
    }
    return store.writes.create_settled_execution(**(arguments | overrides))  # type: ignore[arg-type]


def test_the_json_columns_are_the_tables_json_columns() -> None:
    assert {c.name for c in EXECUTIONS.columns if isinstance(c.type, JSON)} == EXECUTION_JSON
    assert {c.name for c in RUNS.columns if isinstance(c.type, JSON)} == RUN_JSON


@pytest.mark.parametrize("git", [GIT, GitInfo(), GitInfo(commit="ab" * 20, dirty=False)])
def test_a_settled_execution_is_recorded_exactly_as_the_store_records_it(
    storage: Path, git: GitInfo
) -> None:
    direct = DirectStore.open(None, storage)
    assert direct is not None
    with direct:
        by_direct = settled(direct, 30, git=git)
    with Store.open(None, storage=storage) as store:
        by_store = settled(store, 30, git=git)
        execution_direct = store.lookups.execution(by_direct)
        execution_store = store.lookups.execution(by_store)
        runs_direct = store.lookups.runs(by_direct)
        runs_store = store.lookups.runs(by_store)
        assert execution_direct.git == git and execution_direct.counts == {"cached": 30}
        assert dataclasses.replace(
            execution_direct, id=by_store, started_at=0, ended_at=0, heartbeat_at=0
        ) == dataclasses.replace(execution_store, started_at=0, ended_at=0, heartbeat_at=0)
        assert len(runs_direct) == len(runs_store) == 30
        for mine, theirs in zip(runs_direct, runs_store, strict=True):
            assert mine.metrics["big"] == 2**70 and mine.metrics["nan"] is None
            assert dataclasses.replace(
                mine, id=0, execution_id="", started_at=0, ended_at=0
            ) == dataclasses.replace(theirs, id=0, execution_id="", started_at=0, ended_at=0)
        assert store.lookups.succeeded([f"fp{i:04d}" for i in range(40)]) == {
            f"fp{i:04d}" for i in range(30)
        }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", ""]), st.sampled_from(list(RunStatus))),
        max_size=12,
    ),
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", ""]), max_size=8),
)
def test_succeeded_answers_as_the_store_does(
    tmp_path_factory: pytest.TempPathFactory,
    runs: list[tuple[str, RunStatus]],
    asked: list[str],
) -> None:
    folder = tmp_path_factory.mktemp("store")
    with Store.open(None, storage=folder) as store:
        execution_id = new_execution(store)
        specs = [make_spec(i) for i in range(len(runs))]
        results = {
            str(spec["id"]): RunResult(str(spec["id"]), status)
            for spec, (_, status) in zip(specs, runs, strict=True)
        }
        if specs:
            fingerprints = [f or None for f, _ in runs]
            store.writes.add_runs(execution_id, specs, fingerprints=fingerprints, results=results)
        expected = store.lookups.succeeded(asked)
    ok = {RunStatus.SUCCEEDED, RunStatus.CACHED}
    assert expected == {f for f, status in runs if f and status in ok} & set(asked)
    direct = DirectStore.open(None, folder)
    assert direct is not None
    with direct:
        assert direct.lookups.succeeded(asked) == expected


def test_it_opens_only_the_default_file_at_the_current_revision(tmp_path: Path) -> None:
    folder = tmp_path / "output"
    assert DirectStore.open(None, folder) is None  # no store yet: Store creates it
    assert not folder.exists()
    Store.open(None, storage=folder).close()
    assert DirectStore.open(f"sqlite:///{folder / 'qaflow.db'}", folder) is None  # a URL: Store
    opened = DirectStore.open(None, folder)
    assert opened is not None
    opened.close()
    with sqlite3.connect(folder / "qaflow.db") as raw:
        raw.execute("UPDATE alembic_version SET version_num = '0001'")
    assert DirectStore.open(None, folder) is None  # older: Store migrates it


@pytest.mark.parametrize("content", [b"", b"not a database, just bytes" * 100])
def test_a_file_that_is_no_store_is_left_to_the_store(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "qaflow.db").write_bytes(content)
    assert DirectStore.open(None, tmp_path) is None
    assert (tmp_path / "qaflow.db").read_bytes() == content


def test_its_errors_are_store_errors_naming_what_failed(storage: Path) -> None:
    direct = DirectStore.open(None, storage)
    assert direct is not None
    with sqlite3.connect(storage / "qaflow.db") as raw:
        raw.execute("DROP TABLE runs")
    with direct, pytest.raises(StoreError) as caught:
        settled(direct, 2)
    message = str(caught.value)
    assert message.startswith(
        f"Could not record an execution in the run store at sqlite:///{storage}"
    )
    assert "no such table: runs" in message
    with sqlite3.connect(storage / "qaflow.db") as raw:  # the transaction was rolled back
        assert raw.execute("SELECT count(*) FROM executions").fetchone() == (0,)


def test_a_running_status_is_refused(storage: Path) -> None:
    direct = DirectStore.open(None, storage)
    assert direct is not None
    with direct, pytest.raises(ValueError, match="invalid status 'running'"):
        settled(direct, 1, status="running")
