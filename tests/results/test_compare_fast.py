"""The fast path of a comparison (the store's narrow read decoding JSON once, configurations
named once per distinct list, the common case of `delta`, the summaries in one pass, the
collector paused) gives exactly what the plain path gives: runs read as whole records, each
value decoded on its own, every cell through `delta`'s general case."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qaflow.results.compare import CompareRun, Comparison, ExecutionSide, compare, delta
from qaflow.results.metrics import Metrics, MetricSpec, Tolerance
from qaflow.results.refs import compare_refs
from qaflow.store import Store
from qaflow.worker.model import RunStatus
from results_helpers import Run, record

METRICS = Metrics(
    available={
        "loss": MetricSpec("loss", "Loss", "Loss", True, tolerance=Tolerance(0.01)),
        "psnr": MetricSpec("psnr", "PSNR", "PSNR", False, tolerance=Tolerance(5, True)),
        "miss": MetricSpec("miss", "Miss", "Miss", True, target=0.5, target_passfail=True),
        "plain": MetricSpec("plain", "Plain", "Plain", True),
    }
)
SPECS = [*METRICS.available.values(), MetricSpec.neutral("score")]


class Float(float):
    """A float that `delta` cannot take for a plain float: its general case, as before."""


def general(value: Any) -> Any:
    return Float(value) if type(value) is float else value


values = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.booleans()
    | st.none()
    | st.sampled_from(["", "ok", "1.5"])
    | st.builds(lambda text: {"text": text}, st.sampled_from(["a", "b"]))
)
small_floats = st.floats(min_value=-5, max_value=5, allow_nan=False).map(lambda v: round(v, 2))


@given(st.sampled_from(SPECS), values | small_floats, values | small_floats)
def test_delta_of_two_floats_is_its_general_case(spec: MetricSpec, ref: Any, new: Any) -> None:
    fast, plain = delta(spec, ref, new), delta(spec, general(ref), general(new))
    assert repr(fast) == repr(plain)  # repr: 1 and 1.0, nan and nan told apart as they are


# ---------------------------------------------------------------- a varied store
runs = st.builds(
    Run,
    input=st.sampled_from(["x.raw", "y.raw", "z.raw", None]),
    metrics=st.dictionaries(
        st.sampled_from(["loss", "psnr", "miss", "plain", "score", "compute_time"]),
        values | small_floats,
        max_size=5,
    ),
    batch=st.sampled_from(["a", "b"]),
    configurations=st.sampled_from(
        [("base",), ("base", {"k": 1}), ("base", {"z": [1, 2], "k": 2}), ("other",)]
    ),
    matrix=st.sampled_from([{}, {"p": 1}, {"p": 2, "q": "s"}]),
    status=st.sampled_from(
        [RunStatus.SUCCEEDED, RunStatus.CACHED, RunStatus.FAILED, RunStatus.SKIPPED]
    ),
    platform=st.sampled_from(["linux", "win"]),
)


def identity(run: Run) -> str:
    return f"{run.batch}/{run.input}/{run.configurations}/{run.matrix}/{run.platform}"


executions = st.lists(runs, max_size=12, unique_by=identity)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ref_runs=executions, new_runs=executions, batch=st.sampled_from([None, "a"]))
def test_the_fast_comparison_is_the_plain_one(
    store: Store, tmp_path: Path, ref_runs: list[Run], new_runs: list[Run], batch: str | None
) -> None:
    anchors = [Run("anchor", {"loss": 1.0}, batch="a"), Run("anchor", {"loss": 2.0})]
    ref = record(store, [*ref_runs, *anchors], output_root=tmp_path)
    new = record(store, [*new_runs, *anchors[::-1]], output_root=tmp_path)
    whole = {side: whole_records(store, side) for side in (ref, new)}
    for side in (ref, new):  # the narrow read: the same values, of the same types
        narrow = [CompareRun.from_row(row) for row in store.history.compare_runs(side)]
        assert [repr(run) for run in narrow] == [repr(run) for run in whole[side]]

    fast = compare_refs(store, ref, new, metrics=METRICS, batch=batch).comparison
    plain = compare(
        whole[ref],
        whole[new],
        metrics=METRICS,
        ref=fast.ref,
        new=fast.new,
        batch=batch,
    )
    assert repr(fast.to_dict()) == repr(plain.to_dict())
    assert_as_defined(fast)


def whole_records(store: Store, execution_id: str) -> list[CompareRun]:
    """The runs as before: whole records, every JSON value decoded on its own."""
    return [CompareRun.from_record(run) for run in store.lookups.runs(execution_id)]


def assert_as_defined(comparison: Comparison) -> None:
    """Each row's configuration, cells and the summaries, worked out here the plain way."""
    rows = list(comparison.rows)
    for row in rows:
        assert row.configuration == ":".join(
            c if isinstance(c, str) else json.dumps(c, sort_keys=True)
            for c in row.new.configurations
        )
        for spec, cell in zip(comparison.metrics, row.metrics, strict=True):
            a, b = row.ref.metrics.get(spec.key), row.new.metrics.get(spec.key)
            assert repr(cell) == repr(delta(spec, general(a), general(b)))
    for index, summary in enumerate(comparison.summaries):
        cells = [row.metrics[index] for row in rows]
        numeric = [c for c in cells if c.delta is not None]
        deltas = [c.delta for c in numeric]
        pcts = [c.delta_pct for c in numeric if c.delta_pct is not None]
        expected = {
            "compared": len(numeric),
            "mean_delta": statistics.fmean(deltas) if deltas else None,
            "median_delta": statistics.median(deltas) if deltas else None,
            "mean_delta_pct": statistics.fmean(pcts) if pcts else None,
            "ref_mean": statistics.fmean(c.ref for c in numeric) if numeric else None,
            "new_mean": statistics.fmean(c.new for c in numeric) if numeric else None,
            "better": len([c for c in numeric if c.direction == "better"]),
            "worse": len([c for c in numeric if c.direction == "worse"]),
            "same": len([c for c in numeric if c.direction == "same"]),
            "regressions": len([c for c in cells if c.regression]),
        }
        found = {name: getattr(summary, name) for name in expected}
        assert repr(found) == repr(expected)
        assert all(math.isfinite(d) for d in deltas)


def test_runs_read_share_the_value_of_equal_json_texts(store: Store, tmp_path: Path) -> None:
    same = ("base", {"k": 1})
    execution_id = record(
        store,
        [Run("a", {"loss": 1.0}, configurations=same), Run("b", {}, configurations=same)],
        output_root=tmp_path,
    )
    first, second = store.history.compare_runs(execution_id)
    assert first.configurations == ["base", {"k": 1}]
    assert first.configurations is second.configurations  # decoded once
    side = ExecutionSide(id="x", label="x")
    comparison = compare([first, second], [first, second], ref=side, new=side)
    assert [row.configuration for row in comparison.rows] == ['base:{"k": 1}'] * 2
