"""A driver's writes through `DirectStore` (sqlite3) against `Store`'s (SQLAlchemy): the same
calls on two real SQLite files leave the same rows, and fail the same way (stateful)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from store_helpers import GIT, make_spec

from qaflow.errors import StoreError
from qaflow.store import Store
from qaflow.store.direct import DirectStore
from qaflow.worker.model import RunResult, RunStatus

# columns a call sets to the current time: compared as set or not
NOW_COLUMNS = {"executions": {"started_at", "heartbeat_at"}, "runs": set()}

statuses = st.sampled_from(list(RunStatus))
maybe_text = st.none() | st.text(max_size=8)
metrics = st.dictionaries(
    st.text(max_size=4),
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=6),
    max_size=4,
)


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both tables, the executions' random ids as their creation order."""
    with sqlite3.connect(path) as raw:
        executions = raw.execute("SELECT * FROM executions ORDER BY seq").fetchall()
        names = [d[0] for d in raw.execute("SELECT * FROM executions").description]
        runs = raw.execute("SELECT * FROM runs ORDER BY id").fetchall()
        run_names = [d[0] for d in raw.execute("SELECT * FROM runs").description]
    order = {row[names.index("id")]: i for i, row in enumerate(executions)}

    def normal(table: str, columns: list[str], row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = []
        for column, value in zip(columns, row, strict=True):
            if column in ("id", "execution_id") and value in order:
                value = order[value]
            elif column in NOW_COLUMNS[table]:
                value = value is not None
            values.append(value)
        return tuple(values)

    return {
        "executions": [normal("executions", names, row) for row in executions],
        "runs": [normal("runs", run_names, row) for row in runs],
    }


class SameWrites(RuleBasedStateMachine):
    """Each rule calls both stores alike; after each, their files hold the same rows."""

    executions = Bundle("executions")

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, list[str]] = {}  # execution (creation order) -> its run keys

    @initialize()
    def open_both(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="direct-writes-"))
        self.store = Store.open(None, storage=self.folder / "a")
        Store.open(None, storage=self.folder / "b").close()
        direct = DirectStore.open(None, self.folder / "b")
        assert direct is not None
        self.direct = direct
        self.ids: list[tuple[str, str]] = []  # (Store's id, DirectStore's id) by creation

    def both(self, call: str, index: int | None, *args: Any, **kwargs: Any) -> None:
        """`call` on both, the execution `index` (None: one neither has); same outcome."""
        outcomes = []
        for side, store in enumerate((self.store, self.direct)):
            ref = "nosuchid0000" if index is None else self.ids[index][side]
            try:
                getattr(store.writes, call)(ref, *args, **kwargs)
                outcomes.append(None)
            except StoreError as error:
                outcomes.append(str(error).replace(str(self.folder / "ab"[side]), "…"))
        assert outcomes[0] == outcomes[1]

    @rule(target=executions, label=st.text(max_size=6), pid=st.none() | st.integers(0, 99))
    def create_execution(self, label: str, pid: int | None) -> int:
        arguments: dict[str, Any] = {
            "label": label,
            "project": "p",
            "argv": ["qa", "batch", label],
            "git": GIT,
            "pid": pid,
            "host": "h",
        }
        self.ids.append(
            (
                self.store.writes.create_execution(**arguments),
                self.direct.writes.create_execution(**arguments),
            )
        )
        index = len(self.ids) - 1
        self.runs[index] = []
        self.add_runs(index, 3, [], None)  # most calls are about runs: give it some
        return index

    @rule(
        execution=executions,
        count=st.integers(0, 4),
        settled=st.lists(statuses, max_size=4),
        fingerprint=maybe_text,
    )
    def add_runs(
        self, execution: int, count: int, settled: list[RunStatus], fingerprint: str | None
    ) -> None:
        first = len(self.runs[execution])
        specs = [make_spec(first + i) for i in range(count)]
        keys = [str(spec["id"]) for spec in specs]
        results = {
            key: RunResult(key, status, metrics={"x": i}, started_at=1.0 + i, ended_at=2.0 + i)
            for i, (key, status) in enumerate(zip(keys, settled, strict=False))
        }
        self.both("add_runs", execution, specs, fingerprints=[fingerprint] * count, results=results)
        self.runs[execution].extend(keys)

    @rule(
        execution=executions,
        data=st.data(),
    )
    def record(self, execution: int, data: st.DataObject) -> None:
        keys = self.runs[execution] * 4 + ["unknown-key"]  # mostly its own runs
        started = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(keys),
                    st.floats(1, 1e9),
                    st.text(max_size=4),
                    st.integers(1, 3),
                ),
                max_size=3,
            )
        )
        finished = data.draw(
            st.lists(
                st.builds(
                    RunResult,
                    key=st.sampled_from(keys),
                    status=statuses,
                    metrics=metrics,
                    error=st.none() | st.text(max_size=5),
                    started_at=st.sampled_from([0.0, 5.0]),
                    ended_at=st.floats(1, 1e9),
                    host=st.sampled_from(["", "w1"]),
                    attempt=st.integers(0, 3),
                    output_dir=st.sampled_from([None, "", "/o"]),
                    fingerprint=st.sampled_from([None, "", "fp"]),
                ),
                max_size=3,
            )
        )
        parts = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(keys),
                    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
                ),
                max_size=2,
            )
        )
        self.both("record", execution, started=started, finished=finished, parts=parts)

    @rule(execution=st.none() | executions)
    def heartbeat(self, execution: int | None) -> None:
        self.both("heartbeat", execution)

    @rule(
        execution=st.none() | executions,
        status=st.sampled_from(["succeeded", "failed", "cancelled", "interrupted"]),
        ended_at=st.floats(1, 1e9),
    )
    def finish_execution(self, execution: int | None, status: str, ended_at: float) -> None:
        self.both("finish_execution", execution, status, ended_at=ended_at)

    @rule(execution=st.none() | executions, pid=st.integers(0, 99))
    def adopt_execution(self, execution: int | None, pid: int) -> None:
        self.both("adopt_execution", execution, pid=pid, host="elsewhere")

    @rule()
    def add_runs_to_no_execution(self) -> None:
        self.both("add_runs", None, [make_spec(0)])

    @invariant()
    def same_rows(self) -> None:
        if hasattr(self, "direct"):
            assert dump(self.folder / "a" / "qaflow.db") == dump(self.folder / "b" / "qaflow.db")

    def teardown(self) -> None:
        if hasattr(self, "direct"):
            self.store.close()
            self.direct.close()
            shutil.rmtree(self.folder)  # one folder per example: none left behind


SameWrites.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_the_direct_writes_leave_the_rows_the_store_leaves = SameWrites.TestCase


def test_an_invalid_final_status_is_refused_by_both(tmp_path: Path) -> None:
    with Store.open(None, storage=tmp_path) as store:
        execution_id = store.writes.create_execution(
            label="l", project="p", argv=[], git=GIT, pid=None, host=None
        )
    direct = DirectStore.open(None, tmp_path)
    assert direct is not None
    with direct:
        for status in ("running", "done"):
            with pytest.raises(ValueError, match=f"invalid status '{status}'"):
                direct.writes.finish_execution(execution_id, status)
        with direct.full() as full:
            assert full.lookups.execution(execution_id).status == "running"


def test_a_result_without_start_host_dir_or_fingerprint_keeps_the_stored_ones(
    tmp_path: Path,
) -> None:
    """The start recorded, then a result that does not know it (a crashed worker's): the
    start time, host, output dir and fingerprint stay; on both stores alike."""
    rows = []
    for name in ("store", "direct"):
        Store.open(None, storage=tmp_path / name).close()
        opened = DirectStore.open(None, tmp_path / name)
        assert opened is not None
        with opened as direct, Store.open(None, storage=tmp_path / name) as store:
            writes = store.writes if name == "store" else direct.writes
            execution_id = writes.create_execution(
                label="l", project="p", argv=["qa"], git=GIT, pid=1, host="h"
            )
            spec = make_spec(0)
            writes.add_runs(execution_id, [spec], fingerprints=["planned"])
            key = str(spec["id"])
            writes.record(execution_id, started=[(key, 5.0, "worker-7", 2)])
            lost = RunResult(key, RunStatus.FAILED, metrics={"m": 1.5}, error="died", ended_at=9.0)
            writes.record(execution_id, finished=[lost], parts=[(key, {"code": "abc"})])
            run = store.lookups.runs(execution_id)[0]
        assert (run.started_at, run.host, run.fingerprint) == (5.0, "worker-7", "planned")
        assert run.output_dir == spec["output_dir"] and run.attempt == lost.attempt
        assert (run.status, run.metrics, run.error) == (RunStatus.FAILED, {"m": 1.5}, "died")
        assert run.spec["fingerprint_parts"] == {"code": "abc"}
        rows.append(dump(tmp_path / name / "qaflow.db"))
    assert rows[0] == rows[1]
