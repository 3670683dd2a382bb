"""The store split by consumer: each query module runs over a bare `Database`, so a consumer
can be handed only its part, and every part hands out plain records."""

from __future__ import annotations

from pathlib import Path

from store_helpers import GIT, make_spec

from qaflow.store import Store
from qaflow.store.base import Database
from qaflow.store.board import BoardReads
from qaflow.store.history import History
from qaflow.store.lookups import Lookups
from qaflow.store.records import CompareRow, RunSummary
from qaflow.store.writes import Writes
from qaflow.worker.model import RunResult, RunStatus


def test_each_part_works_over_a_bare_database(store_url: str, tmp_path: Path) -> None:
    with Database.open(store_url, storage=tmp_path) as database:
        writes = Writes(database)
        execution_id = writes.create_execution(
            label="l", project="p", argv=["qa"], git=GIT, pid=None, host=None
        )
        specs = [make_spec(i) for i in range(3)]
        writes.add_runs(execution_id, specs, fingerprints=["fa", "fb", "fc"])
        writes.record(execution_id, finished=[RunResult(key=specs[0]["id"], status="succeeded")])
        lookups = Lookups(database)
        assert [r.key for r in lookups.runs(execution_id)] == [s["id"] for s in specs]
        assert lookups.succeeded(["fa", "fb"]) == {"fa"}
        board = BoardReads(database)
        assert board.batch_counts(execution_id) == {"sweep": {"succeeded": 1, "pending": 2}}
        total, rows = board.run_table(execution_id, statuses=["succeeded"])
        assert total == 1 and type(rows[0]) is RunSummary
        [first, *_] = History(database).compare_runs(execution_id)
        assert type(first) is CompareRow and (first.key, first.status) == (
            specs[0]["id"],
            "succeeded",
        )


def test_a_store_carries_its_parts_over_one_engine(store: Store) -> None:
    parts = (store.writes, store.lookups, store.board, store.history)
    assert [type(p) for p in parts] == [Writes, Lookups, BoardReads, History]
    execution_id = store.writes.create_execution(
        label="l", project="p", argv=["qa"], git=GIT, pid=None, host=None
    )
    store.writes.add_runs(execution_id, [make_spec(0)])
    store.writes.set_status(execution_id, [make_spec(0)["id"]], RunStatus.CANCELLED)
    assert store.lookups.execution(execution_id).counts == {"cancelled": 1}
    assert store.board.find_executions(label="l")[0].id == execution_id


def test_succeeded_sees_any_success_in_the_history_over_several_chunks(
    store_url: str, tmp_path: Path
) -> None:
    """A fingerprint counts once some run of it, in any execution, succeeded or was cached;
    failures and runs not finished do not count. 1,200 fingerprints: three chunks of the
    lookup, each probed through a history of three executions."""
    count = 1200
    prints = [f"fp{i:05d}" for i in range(count)]
    # what the n-th execution made of fingerprint i (None: not finished)
    statuses = [
        lambda i: "failed" if i % 3 == 0 else None,
        lambda i: "succeeded" if i % 3 == 1 else "failed",
        lambda i: "cached" if i % 5 == 2 else "cancelled",
    ]
    with Database.open(store_url, storage=tmp_path) as database:
        writes = Writes(database)
        for status_of in statuses:
            execution_id = writes.create_execution(
                label="l", project="p", argv=["qa"], git=GIT, pid=None, host=None
            )
            specs = [make_spec(i) for i in range(count)]
            writes.add_runs(execution_id, specs, fingerprints=prints)
            finished = [
                RunResult(key=spec["id"], status=status)
                for i, spec in enumerate(specs)
                if (status := status_of(i)) is not None
            ]
            writes.record(execution_id, finished=finished)
        asked = [*prints, "unknown", "", prints[1]]
        found = Lookups(database).succeeded(asked)
    assert found == {p for i, p in enumerate(prints) if i % 3 == 1 or i % 5 == 2}
