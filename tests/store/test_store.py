"""The run store on SQLite and PostgreSQL: executions, runs, statuses and lookups."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from store_helpers import GIT, make_spec, new_execution, with_runs

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store import ExecutionRecord, Store
from qaflow.worker.model import RunResult, RunStatus


# ---------------------------------------------------------------- executions and runs
def test_an_execution_is_created_running_with_what_it_was_given(store: Store) -> None:
    before = time.time()
    execution_id = new_execution(store, label="nightly")
    record = store.lookups.execution(execution_id)
    assert len(execution_id) == 12 and int(execution_id, 16) >= 0
    assert record == ExecutionRecord(
        id=execution_id,
        label="nightly",
        project="acme/vision",
        argv=["qa", "batch", "sweep", "--label", "nightly"],
        git=GIT,
        status="running",
        started_at=record.started_at,
        ended_at=None,
        pid=4242,
        host="build-01",
        heartbeat_at=record.started_at,
        counts={},
    )
    assert before <= record.started_at <= time.time()
    other = new_execution(store, git=GitInfo(), pid=None, host=None)
    assert other != execution_id
    assert store.lookups.execution(other).git == GitInfo(None, None, None)
    assert (store.lookups.execution(other).pid, store.lookups.execution(other).host) == (None, None)


def test_added_runs_are_pending_in_plan_order_with_their_whole_spec(store: Store) -> None:
    execution_id = new_execution(store)
    specs = [make_spec(i) for i in (3, 1, 2)]
    store.writes.add_runs(execution_id, specs, fingerprints=["fp-a", None, "fp-c"])
    runs = store.lookups.runs(execution_id)
    assert [run.key for run in runs] == [spec["id"] for spec in specs]
    assert [run.spec for run in runs] == specs
    assert [run.fingerprint for run in runs] == ["fp-a", None, "fp-c"]
    first = runs[0]
    assert (first.batch, first.type, first.platform) == ("sweep", "image", "linux")
    assert first.input_path == "/data/images/img00003.raw"
    assert first.rel_input_path == "images/img00003.raw"
    assert first.configurations == ["base", {"threshold": 3, "mode": "fast"}]
    assert first.params == {"threshold": 3, "mode": "fast"}
    assert first.output_dir == specs[0]["output_dir"]
    assert (first.status, first.metrics, first.error, first.attempt) == (
        RunStatus.PENDING,
        {},
        None,
        0,
    )
    assert (first.started_at, first.ended_at, first.host) == (None, None, None)
    assert first.execution_id == execution_id
    accented = {**make_spec(9), "input_path": "/data/été/日本.raw", "output_dir": "/out/été/日本"}
    store.writes.add_runs(execution_id, [accented])
    assert [run.spec for run in store.lookups.find_runs("/out/été/日本")] == [accented]
    assert runs[0].id < runs[1].id < runs[2].id
    assert store.lookups.execution(execution_id).counts == {"pending": 4}


def test_runs_settled_up_front_are_inserted_finished_and_specs_are_stored_once(
    store: Store,
) -> None:
    execution_id = new_execution(store)
    specs = [make_spec(i) for i in (1, 2)]
    reused = RunResult(
        key=specs[1]["id"],
        status=RunStatus.CACHED,
        metrics={"loss": 0.5},
        started_at=100.0,
        ended_at=100.0,
    )
    store.writes.add_runs(
        execution_id, specs, fingerprints=["fp1", "fp2"], results={reused.key: reused}
    )
    pending, cached = store.lookups.runs(execution_id)
    assert (pending.status, pending.metrics, pending.attempt) == (RunStatus.PENDING, {}, 0)
    assert (cached.status, cached.metrics, cached.attempt) == (RunStatus.CACHED, {"loss": 0.5}, 1)
    assert (cached.started_at, cached.ended_at, cached.error) == (100.0, 100.0, None)
    assert [run.spec for run in (pending, cached)] == specs
    assert store.lookups.execution(execution_id).counts == {"pending": 1, "cached": 1}
    with store.transaction("read", write=False) as connection:  # what the table holds
        raw = connection.exec_driver_sql("SELECT spec FROM runs ORDER BY id").scalars().all()
    stored = raw[0] if isinstance(raw[0], dict) else json.loads(raw[0])
    assert "output_dir" not in stored and "params" not in stored  # kept in their columns only


def test_specs_stored_by_an_earlier_qaflow_read_whole(store: Store) -> None:
    """Rows written before `_in_columns` became bits name the fields it left out."""
    execution_id = new_execution(store)
    spec = make_spec(1)
    store.writes.add_runs(execution_id, [spec])
    old = {k: v for k, v in spec.items() if k not in ("output_dir", "params", "id")}
    old["_in_columns"] = ["output_dir", "params", "id"]
    with store.transaction("write") as connection:
        connection.exec_driver_sql(f"UPDATE runs SET spec = '{json.dumps(old)}'")
    assert store.lookups.runs(execution_id)[0].spec == spec


def test_add_runs_refuses_mismatched_fingerprints_and_unknown_executions(store: Store) -> None:
    execution_id = new_execution(store)
    with pytest.raises(ValueError, match="2 specs but 1 fingerprints"):
        store.writes.add_runs(execution_id, [make_spec(1), make_spec(2)], fingerprints=["x"])
    with pytest.raises(StoreError, match="no execution 'feedfeedfeed'"):
        store.writes.add_runs("feedfeedfeed", [make_spec(1)])
    with pytest.raises(StoreError, match="no execution 'feedfeedfeed'"):
        store.lookups.runs("feedfeedfeed")
    store.writes.add_runs(execution_id, [make_spec(1)])
    with pytest.raises(StoreError, match=r"UNIQUE|unique|duplicate"):
        store.writes.add_runs(execution_id, [make_spec(2), make_spec(1)])
    assert [run.key for run in store.lookups.runs(execution_id)] == [
        make_spec(1)["id"]
    ]  # rolled back


METRICS = {
    "psnr": 31.415926535897931,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "negative": -0.1,
    "count": 2**53 + 1,
    "ok": True,
    "missing": None,
    "nested": {"per_channel": [0.25, 0.5, {"alpha": [1, 2.5, "three"]}], "empty": {}},
    "label": "déjà vu — 日本語 ✓ 🚀",
    "unicode_key_é": ["\u0000 nul", "tab\there", 'quote"s'],
}


def test_a_run_round_trips_start_and_result(store: Store) -> None:
    execution_id, specs = with_runs(store, 2)
    key = specs[0]["id"]
    started = time.time()
    store.writes.run_started(execution_id, key, started_at=started, host="worker-7", attempt=1)
    running = store.lookups.runs(execution_id)[0]
    assert (running.status, running.started_at, running.host, running.attempt) == (
        RunStatus.RUNNING,
        started,  # the exact float: epoch seconds keep their microseconds
        "worker-7",
        1,
    )
    assert store.lookups.execution(execution_id).counts == {"pending": 1, "running": 1}
    result = RunResult(
        key=key,
        status=RunStatus.SUCCEEDED,
        metrics=METRICS,
        started_at=started,
        ended_at=started + 1.25,
        host="worker-7",
        attempt=1,
    )
    store.writes.run_finished(execution_id, result)
    done = store.lookups.runs(execution_id)[0]
    assert done.status is RunStatus.SUCCEEDED
    assert done.metrics == METRICS
    assert (done.started_at, done.ended_at, done.error) == (started, started + 1.25, None)
    assert store.lookups.runs(execution_id)[1].status is RunStatus.PENDING
    assert store.lookups.execution(execution_id).counts == {"pending": 1, "succeeded": 1}


def test_a_retry_clears_the_last_error_and_a_result_keeps_the_known_start(store: Store) -> None:
    execution_id, specs = with_runs(store, 1)
    key = specs[0]["id"]
    store.writes.run_started(execution_id, key, started_at=100.5, host="a")
    store.writes.run_finished(
        execution_id,
        RunResult(key=key, status=RunStatus.FAILED, error="boom\nTraceback…", ended_at=101.0),
    )
    failed = store.lookups.runs(execution_id)[0]
    assert (failed.status, failed.error, failed.started_at, failed.host) == (
        RunStatus.FAILED,
        "boom\nTraceback…",
        100.5,  # RunResult.started_at 0.0 means "not known": the recorded start stays
        "a",
    )
    store.writes.run_started(execution_id, key, started_at=200.0, host="b", attempt=2)
    retried = store.lookups.runs(execution_id)[0]
    assert (retried.status, retried.error, retried.ended_at, retried.attempt) == (
        RunStatus.RUNNING,
        None,
        None,
        2,
    )


def test_non_finite_metrics_are_stored_as_null(store: Store) -> None:
    execution_id, specs = with_runs(store, 1)
    metrics = {"nan": float("nan"), "inf": [float("inf"), -float("inf"), 1.5]}
    store.writes.run_finished(
        execution_id, RunResult(key=specs[0]["id"], status=RunStatus.FAILED, metrics=metrics)
    )
    run = store.lookups.runs(execution_id)[0]
    assert run.metrics == {"nan": None, "inf": [None, None, 1.5]}
    assert run.ended_at is not None and run.ended_at > 0


def test_metrics_come_back_exactly_big_integers_and_odd_keys_included(store: Store) -> None:
    """JSON goes through orjson, with json for what orjson would not keep exactly."""
    execution_id, specs = with_runs(store, 1)
    metrics = {
        "huge": 2**70,
        "negative": -(2**63),
        "tiny": 1.1156998880323954e-05,
        "precise": 0.1 + 0.2,
        "text": "12345678901234567890123 é \u2603",
        "nested": {"1": [True, None, 1e300]},
    }
    store.writes.run_finished(
        execution_id, RunResult(key=specs[0]["id"], status=RunStatus.SUCCEEDED, metrics=metrics)
    )
    assert store.lookups.runs(execution_id)[0].metrics == metrics


def test_writing_an_unknown_run_or_execution_is_a_store_error(store: Store) -> None:
    execution_id, _ = with_runs(store, 1)
    with pytest.raises(StoreError, match="no run 'nope' in execution"):
        store.writes.run_started(execution_id, "nope", started_at=1.0, host="h")
    with pytest.raises(StoreError, match="no run 'nope' in execution"):
        store.writes.run_finished(execution_id, RunResult(key="nope", status=RunStatus.SUCCEEDED))
    with pytest.raises(StoreError, match="no execution 'abcabcabcabc'"):
        store.writes.heartbeat("abcabcabcabc")
    with pytest.raises(StoreError, match="no execution 'abcabcabcabc'"):
        store.writes.finish_execution("abcabcabcabc", "failed")


def test_set_status_changes_exactly_the_given_runs(store: Store) -> None:
    execution_id, specs = with_runs(store, 1200)  # more keys than one IN (…) list holds
    skipped = [spec["id"] for spec in specs[:1100]]
    before = time.time()
    store.writes.set_status(execution_id, skipped, RunStatus.SKIPPED, error="upstream failed")
    runs = store.lookups.runs(execution_id)
    assert {run.status for run in runs[:1100]} == {RunStatus.SKIPPED}
    assert {run.error for run in runs[:1100]} == {"upstream failed"}
    assert all(run.ended_at is not None and run.ended_at >= before for run in runs[:1100])
    assert {(run.status, run.error, run.ended_at) for run in runs[1100:]} == {
        (RunStatus.PENDING, None, None)
    }
    store.writes.set_status(execution_id, [specs[0]["id"]], RunStatus.CANCELLED)
    assert (
        store.lookups.runs(execution_id)[0].status,
        store.lookups.runs(execution_id)[0].error,
    ) == (
        RunStatus.CANCELLED,
        None,
    )
    assert store.lookups.execution(execution_id).counts == {
        "pending": 100,
        "skipped": 1099,
        "cancelled": 1,
    }


def test_set_status_with_an_unknown_key_changes_nothing(store: Store) -> None:
    execution_id, specs = with_runs(store, 3)
    with pytest.raises(StoreError, match="has no run missing-key"):
        store.writes.set_status(execution_id, [specs[0]["id"], "missing-key"], RunStatus.CANCELLED)
    assert store.lookups.execution(execution_id).counts == {"pending": 3}


def test_finish_execution_and_heartbeat(store: Store) -> None:
    execution_id, specs = with_runs(store, 4)
    created = store.lookups.execution(execution_id)
    time.sleep(0.01)
    store.writes.heartbeat(execution_id)
    beat = store.lookups.execution(execution_id).heartbeat_at
    assert beat is not None and beat > created.started_at
    for spec, status in zip(
        specs, [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.FAILED], strict=False
    ):
        store.writes.run_finished(execution_id, RunResult(key=spec["id"], status=status))
    store.writes.finish_execution(execution_id, "failed", ended_at=created.started_at + 60.0)
    record = store.lookups.execution(execution_id)
    assert (record.status, record.ended_at) == ("failed", created.started_at + 60.0)
    assert record.counts == {"succeeded": 1, "failed": 2, "pending": 1}
    other = new_execution(store)
    store.writes.finish_execution(other, "cancelled")
    cancelled = store.lookups.execution(other)
    assert cancelled.status == "cancelled"
    assert cancelled.ended_at is not None and cancelled.ended_at >= cancelled.started_at
    with pytest.raises(ValueError, match="invalid status 'done'"):
        store.writes.finish_execution(other, "done")


# ---------------------------------------------------------------- lookups
def test_execution_accepts_a_unique_prefix_and_refuses_ambiguous_or_unknown_ones(
    store: Store,
) -> None:
    ids = [
        new_execution(store, label=f"e{i}") for i in range(17)
    ]  # 17 ids: two share a first digit
    for execution_id in ids:
        prefix = next(
            execution_id[:n]
            for n in range(1, 13)
            if sum(i.startswith(execution_id[:n]) for i in ids) == 1
        )
        assert store.lookups.execution(prefix).id == execution_id
        assert store.lookups.execution(prefix.upper()).id == execution_id
    shared = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) > 1)
    sharing = [i for i in ids if i.startswith(shared)]
    with pytest.raises(StoreError, match="ambiguous") as ambiguous:
        store.lookups.execution(shared)
    assert all(f"{i} (e{ids.index(i)})" in str(ambiguous.value) for i in sharing)
    unused = next(f"{n:03x}" for n in range(4096) if not any(i.startswith(f"{n:03x}") for i in ids))
    for unknown in (unused, "not-an-id", ""):
        with pytest.raises(StoreError, match="There is no execution"):
            store.lookups.execution(unknown)


def test_executions_are_listed_newest_first_and_filtered_by_label(store: Store) -> None:
    first = new_execution(store, label="nightly")
    second = new_execution(store, label="manual")
    third = new_execution(store, label="nightly")
    store.writes.add_runs(third, [make_spec(1), make_spec(2)])
    assert [e.id for e in store.lookups.executions()] == [third, second, first]
    assert [e.id for e in store.lookups.executions(label="nightly")] == [third, first]
    assert [e.id for e in store.lookups.executions(limit=2)] == [third, second]
    assert store.lookups.executions(label="none") == []
    assert [e.counts for e in store.lookups.executions()] == [{"pending": 2}, {}, {}]


def test_find_runs_by_output_dir_or_by_prefix_newest_first(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, specs = with_runs(store, 3)
    new = new_execution(store)
    store.writes.add_runs(new, specs[:1], fingerprints=["3f9a77e0c1"])
    key = specs[0]["id"]
    by_dir = store.lookups.find_runs(specs[0]["output_dir"])
    assert [(run.execution_id, run.key) for run in by_dir] == [(new, key), (old, key)]
    by_key = store.lookups.find_runs(key[:4])
    assert [run.execution_id for run in by_key if run.key == key] == [new, old]
    assert all(run.key.startswith(key[:4]) for run in by_key)
    assert [(r.execution_id, r.key) for r in store.lookups.find_runs("3f9a")] == [(new, key)]
    assert store.lookups.find_runs("3F9A") == []  # keys and fingerprints are case-sensitive
    assert store.lookups.find_runs("/project/output/runs/nope") == []
    assert store.lookups.find_runs("9999999999") == []
    with pytest.raises(StoreError, match="at least 4 characters"):
        store.lookups.find_runs(key[:3])
    # a relative path is taken from the current folder
    local = tmp_path / "out" / "run1"
    third = new_execution(store)
    store.writes.add_runs(third, [{**make_spec(7), "output_dir": str(local)}])
    monkeypatch.chdir(tmp_path)
    assert [run.execution_id for run in store.lookups.find_runs("out/run1")] == [third]
    assert [run.execution_id for run in store.lookups.find_runs("./out/run1/")] == [third]


def test_latest_success_is_the_newest_succeeded_run_with_the_fingerprint(store: Store) -> None:
    assert store.lookups.latest_success("fp") is None
    finished: list[str] = []
    for status, ended_at in [
        (RunStatus.SUCCEEDED, 10.0),
        (RunStatus.SUCCEEDED, 30.0),
        (RunStatus.FAILED, 40.0),
    ]:
        execution_id = new_execution(store)
        store.writes.add_runs(execution_id, [make_spec(1)], fingerprints=["fp"])
        result = RunResult(key=make_spec(1)["id"], status=status, started_at=1.0, ended_at=ended_at)
        store.writes.run_finished(execution_id, result)
        finished.append(execution_id)
    running = new_execution(store)
    store.writes.add_runs(running, [make_spec(1)], fingerprints=["fp"])
    latest = store.lookups.latest_success("fp")
    assert latest is not None
    assert (latest.execution_id, latest.status, latest.ended_at) == (
        finished[1],
        RunStatus.SUCCEEDED,
        30.0,
    )
    assert store.lookups.latest_success("other") is None


# ---------------------------------------------------------------- read-only opening
def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "output"
    with Store.open(None, storage=storage, readonly=True) as store:
        assert store.lookups.executions() == []
        with pytest.raises(
            StoreError, match=f"no execution 'abc' .* at sqlite:///{storage}/qaflow.db"
        ):
            store.lookups.execution("abc")
    assert not storage.exists()


def test_reading_an_existing_store_sees_its_executions(tmp_path: Path) -> None:
    with Store.open(None, storage=tmp_path) as store:
        execution_id = new_execution(store)
    with Store.open(None, storage=tmp_path, readonly=True) as store:
        assert [e.id for e in store.lookups.executions()] == [execution_id]
