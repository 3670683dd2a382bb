"""Comparing two executions' results: matched runs, metric deltas, regressions, targets.

Pure logic on plain data (no store, no printing), so `qa compare` and the web board render
the same `Comparison`; `Comparison.to_dict()` is its JSON form.

Matching. Runs are matched by batch and input. Where one side holds several runs of an
input (a matrix, or one input listed with several configurations), they are matched by
configuration: first on (platform, configurations, matrix point), then on (platform,
matrix point) alone, so that a matrix whose configurations changed still lines up. An
input with one run on each side is matched whatever its configuration: an experiment with
a changed configuration compares against the reference. What cannot be matched is listed
as only-in-ref / only-in-new.

Judging. A metric has a direction only when metrics.yaml describes it (or a tolerance is
given for it: QA-Board's default, smaller is better, then applies). A matched run is a
regression when a metric with a direction gets worse by more than its tolerance (absolute,
or a % of the reference value; 0 when none is set), or when its new run failed where the
reference succeeded. A `target_passfail` metric of a new run on the wrong side of its
target is a target miss. Both make `--fail-on-regression` fail.
"""

from __future__ import annotations

import difflib
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from math import isfinite
from typing import Any

from qaflow.errors import UsageError
from qaflow.results.matching import match
from qaflow.results.metrics import (
    BOOKKEEPING,
    Direction,
    Metrics,
    MetricSpec,
    Tolerance,
    as_number,
    display_text,
)
from qaflow.results.sides import OK_STATUSES, CompareRun, ExecutionSide  # re-exported
from qaflow.store.records import CompareRow


def _outcome(status: str) -> str:
    return "ok" if status in OK_STATUSES else status


FAILED_STATUSES = frozenset({"failed", "errored", "skipped", "interrupted", "cancelled"})
_EPSILON = 1e-9  # relative: 0.31 - 0.30 is not "more than" a tolerance of 0.01
_NO_TOLERANCE = Tolerance(0.0)  # a metric judged without a tolerance


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class MetricDelta:
    """One metric of one matched run: both values, the change, and the verdict."""

    metric: str
    ref: Any
    new: Any
    delta: float | None  # new - ref, when both are numbers
    delta_pct: float | None  # delta / |ref| * 100, when ref is a non-zero number
    direction: Direction | None  # None: not numbers on both sides, or no direction known
    regression: bool = False
    allowed: float | None = None  # the worsening the tolerance allows, for metrics judged

    @property
    def changed(self) -> bool:
        return self.direction != "same" and (self.ref is not None or self.new is not None)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the fields, in order: 50,000 of these in a big comparison


@dataclass(frozen=True)
class Row:
    """A matched pair of runs."""

    batch: str
    input: str | None
    configuration: str  # the new run's
    ref: CompareRun
    new: CompareRun
    metrics: tuple[MetricDelta, ...]

    @cached_property
    def failed(self) -> bool:
        """The new run failed where the reference succeeded (pending or running: not yet)."""
        return self.ref.ok and self.new.status in FAILED_STATUSES

    @cached_property
    def regression(self) -> bool:
        """Asked of every row by each page of a comparison (counts, sorting, highlighting):
        worked out once."""
        return self.failed or any(m.regression for m in self.metrics)

    @property
    def status_changed(self) -> bool:
        """Whether the outcome changed: cached on one side and executed on the other, with the
        same result, is not a change (a reused result is the result)."""
        return _outcome(self.ref.status) != _outcome(self.new.status)

    @property
    def changed(self) -> bool:
        return self.status_changed or any(m.changed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "input": self.input,
            "configuration": self.configuration,
            "ref": self.ref.brief(),
            "new": self.new.brief(),
            "failed": self.failed,
            "regression": self.regression,
            "changed": self.changed,
            "metrics": {m.metric: m.to_dict() for m in self.metrics},
        }


@dataclass(frozen=True)
class TargetMiss:
    """A target_passfail metric of a new run on the wrong side of its target."""

    batch: str
    input: str | None
    configuration: str
    metric: str
    value: Any
    target: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "input": self.input,
            "configuration": self.configuration,
            "metric": self.metric,
            "value": self.value,
            "target": self.target,
        }


@dataclass(frozen=True)
class MetricSummary:
    """One metric over many matched runs."""

    metric: str
    compared: int  # matched runs with a number on both sides
    mean_delta: float | None
    median_delta: float | None
    mean_delta_pct: float | None
    ref_mean: float | None
    new_mean: float | None
    better: int
    worse: int
    same: int
    regressions: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class BatchComparison:
    """One batch: matched rows, unmatched runs, and a summary per metric."""

    batch: str
    rows: tuple[Row, ...]
    only_ref: tuple[CompareRun, ...]
    only_new: tuple[CompareRun, ...]
    summaries: tuple[MetricSummary, ...]

    @property
    def by_configuration(self) -> bool:
        """Whether configurations tell this batch's rows apart (a column worth showing)."""
        return len({row.configuration for row in self.rows}) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "rows": [row.to_dict() for row in self.rows],
            "only_ref": [run.to_dict() for run in self.only_ref],
            "only_new": [run.to_dict() for run in self.only_new],
            "summaries": {s.metric: s.to_dict() for s in self.summaries},
        }


@dataclass(frozen=True)
class Comparison:
    """REF against NEW: per batch, per matched run, per metric."""

    ref: ExecutionSide
    new: ExecutionSide
    metrics: tuple[MetricSpec, ...]  # the metrics compared, in display order
    batches: tuple[BatchComparison, ...]
    summaries: tuple[MetricSummary, ...]  # over every batch
    target_misses: tuple[TargetMiss, ...] = ()
    tolerances: dict[str, str] = field(default_factory=dict)  # metric -> as given

    @property
    def rows(self) -> Iterable[Row]:
        return (row for batch in self.batches for row in batch.rows)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.regression]

    @property
    def failed(self) -> bool:
        """What `--fail-on-regression` exits 1 on."""
        return bool(self.target_misses) or any(row.regression for row in self.rows)

    def spec(self, metric: str) -> MetricSpec:
        return self._specs.get(metric) or MetricSpec.neutral(metric)

    @cached_property
    def _specs(self) -> dict[str, MetricSpec]:
        return {m.key: m for m in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref.to_dict(),
            "new": self.new.to_dict(),
            "metrics": {m.key: m.to_dict() for m in self.metrics},
            "batches": [batch.to_dict() for batch in self.batches],
            "summaries": {s.metric: s.to_dict() for s in self.summaries},
            "target_misses": [miss.to_dict() for miss in self.target_misses],
            "regressions": len(self.regressions),
            "failed": self.failed,
        }


# ---------------------------------------------------------------- comparing
def compare(
    ref_runs: Sequence[CompareRun | CompareRow],
    new_runs: Sequence[CompareRun | CompareRow],
    *,
    metrics: Metrics | None = None,
    ref: ExecutionSide | None = None,
    new: ExecutionSide | None = None,
    select: Sequence[str] = (),
    tolerances: Mapping[str, Tolerance] | None = None,
    batch: str | None = None,
) -> Comparison:
    """Match NEW's runs with REF's and judge every compared metric (see the module notes).

    `select` limits the metrics compared (default: metrics.yaml's main_metrics, else every
    metric the runs have but qaflow's bookkeeping ones); `tolerances` override metrics.yaml's;
    `batch` keeps only that batch. The runs are CompareRuns, or the store's CompareRows of
    `store.history.compare_runs` (made CompareRuns here)."""
    described = metrics or Metrics()
    given = dict(tolerances or {})
    refs, news = as_compare_runs(ref_runs, batch), as_compare_runs(new_runs, batch)
    _name_configurations([*refs, *news])
    specs = _specs(described, [*refs, *news], list(select), given)
    pairs, only_ref, only_new = match(refs, news)
    rows = _rows(pairs, specs)
    names = list(dict.fromkeys(run.batch for run in [*news, *refs]))
    per_batch = {
        part: _by_batch(items, names)
        for part, items in (("rows", rows), ("only_ref", only_ref), ("only_new", only_new))
    }
    batches = [
        BatchComparison(
            batch=name,
            rows=per_batch["rows"][name],
            only_ref=per_batch["only_ref"][name],
            only_new=per_batch["only_new"][name],
            summaries=summarize(per_batch["rows"][name], specs),
        )
        for name in names
    ]
    misses = [
        TargetMiss(run.batch, run.input, run.configuration, spec.key, run.metrics[spec.key], t)
        for run in news
        for spec in specs
        if (t := spec.target) is not None and spec.misses_target(run.metrics.get(spec.key))
    ]
    return Comparison(
        ref=ref or ExecutionSide(id="ref", label="ref"),
        new=new or ExecutionSide(id="new", label="new"),
        metrics=tuple(specs),
        batches=tuple(batches),
        summaries=summarize(rows, specs),
        target_misses=tuple(misses),
        tolerances={s.key: str(s.tolerance) for s in specs if s.tolerance is not None},
    )


def as_compare_runs(
    runs: Sequence[CompareRun | CompareRow], batch: str | None = None
) -> list[CompareRun]:
    """The runs (of this batch) as CompareRuns: the store's CompareRows converted."""
    return [
        run if isinstance(run, CompareRun) else CompareRun.from_row(run)
        for run in runs
        if batch is None or run.batch == batch
    ]


def _name_configurations(runs: Sequence[CompareRun]) -> None:
    """Fill in each run's `configuration`, written once per configuration list: the runs the
    store reads share one list per distinct configuration (10,000 runs, a few lists)."""
    names: dict[int, str] = {}
    for run in runs:
        known = run.__dict__
        if "configuration" not in known:
            found = names.get(id(run.configurations))
            if found is None:
                found = names[id(run.configurations)] = run.configuration
            else:
                known["configuration"] = found


def _by_batch(items: Sequence[Any], names: list[str]) -> dict[str, tuple[Any, ...]]:
    """Rows or runs grouped by batch, every batch present, order kept."""
    groups: dict[str, list[Any]] = {name: [] for name in names}
    for item in items:
        groups[item.batch].append(item)
    return {name: tuple(group) for name, group in groups.items()}


def _specs(
    metrics: Metrics,
    runs: Sequence[CompareRun],
    select: list[str],
    tolerances: dict[str, Tolerance],
) -> list[MetricSpec]:
    """The metrics to compare, in display order, each with its tolerance."""
    found = dict.fromkeys(key for run in runs for key in run.metrics)
    known = {**dict.fromkeys(metrics.available), **found}
    for name in [*select, *tolerances]:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            listed = ", ".join(list(known)[:15]) or "none"
            raise UsageError(
                f"No metric {name!r} in these runs nor in metrics.yaml.{hint} "
                f"Known metrics: {listed}."
            )
    if select:
        keys = list(dict.fromkeys(select))
    elif metrics.main_metrics:
        keys = list(metrics.main_metrics)
    else:
        described = [k for k in metrics.available if k in found]
        keys = described + sorted(k for k in found if k not in metrics.available)
        keys = [k for k in keys if k not in BOOKKEEPING or k in metrics.available]
    if not select:  # what the gate judges is always compared, shown or not
        keys += [
            k
            for k in dict.fromkeys([*metrics.available, *tolerances])
            if k in found
            and k not in keys
            and (k in tolerances or metrics.spec(k).tolerance or metrics.spec(k).target_passfail)
        ]
    return [_with_tolerance(metrics.spec(k), tolerances.get(k)) for k in keys]


def _with_tolerance(spec: MetricSpec, tolerance: Tolerance | None) -> MetricSpec:
    if tolerance is None:
        return spec
    direction = True if spec.smaller_is_better is None else spec.smaller_is_better
    return replace(spec, tolerance=tolerance, smaller_is_better=direction)


def _rows(pairs: Sequence[tuple[CompareRun, CompareRun]], specs: Sequence[MetricSpec]) -> list[Row]:
    """A row per matched pair: `delta` of each metric, as the new run's batch shows it."""
    keyed = [(spec, spec.key) for spec in specs]
    return [
        Row(
            new.batch,
            new.input,
            new.configuration,
            ref,
            new,
            tuple([delta(spec, ref.metrics.get(k), new.metrics.get(k)) for spec, k in keyed]),
        )
        for ref, new in pairs
    ]


def delta(spec: MetricSpec, ref: Any, new: Any) -> MetricDelta:
    """Both values of a metric, their difference and the verdict."""
    a: float | None
    b: float | None
    if type(ref) is float and type(new) is float and isfinite(ref) and isfinite(new):
        a, b = ref, new  # what as_number gives, without two calls (20,000 cells a page)
    else:
        a, b = as_number(ref), as_number(new)
    if a is None or b is None:
        same = ref is not None and display_text(ref) == display_text(new)
        return MetricDelta(spec.key, ref, new, None, None, "same" if same else None)
    change = b - a
    pct = change / abs(a) * 100 if a else None
    if not spec.described:
        return MetricDelta(spec.key, ref, new, change, pct, spec.direction(a, b))
    allowed = (spec.tolerance or _NO_TOLERANCE).allowed(a)
    slack = _EPSILON * max(abs(a), abs(b), 1e-300)
    regression = spec.worsening(a, b) > allowed + slack
    return MetricDelta(spec.key, ref, new, change, pct, spec.direction(a, b), regression, allowed)


def summarize(rows: Sequence[Row], specs: Sequence[MetricSpec]) -> tuple[MetricSummary, ...]:
    """Per metric: mean/median delta over the rows with numbers on both sides, and counts."""
    summaries = []
    for index, spec in enumerate(specs):
        cells = [row.metrics[index] for row in rows]
        numeric = [c for c in cells if c.delta is not None]
        deltas = [d for c in numeric if (d := c.delta) is not None]  # all of them
        pcts = [pct for c in numeric if (pct := c.delta_pct) is not None]
        directions = Counter(c.direction for c in numeric)
        summaries.append(
            MetricSummary(
                metric=spec.key,
                compared=len(numeric),
                mean_delta=statistics.fmean(deltas) if deltas else None,
                median_delta=statistics.median(deltas) if deltas else None,
                mean_delta_pct=statistics.fmean(pcts) if pcts else None,
                ref_mean=statistics.fmean([c.ref for c in numeric]) if numeric else None,
                new_mean=statistics.fmean([c.new for c in numeric]) if numeric else None,
                better=directions["better"],
                worse=directions["worse"],
                same=directions["same"],
                regressions=sum(1 for c in cells if c.regression),
            )
        )
    return tuple(summaries)
