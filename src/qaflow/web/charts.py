"""The compare page's summary chart per metric: every matched run's change, sorted, as bars.

Computed here and drawn by the template as SVG, so the page needs no charting script. Many
runs are summarised by quantiles: at most MAX_BARS bars, each the change at its rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from qaflow.results.compare import Comparison, MetricSummary

WIDTH, HEIGHT, MAX_BARS, MAX_BAR_WIDTH = 360, 90, 240, 28


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # better, worse, same, regression or neutral


@dataclass(frozen=True)
class Chart:
    summary: MetricSummary
    bars: list[Bar]
    zero: float  # y of the zero line
    low: float  # the smallest change shown
    high: float


def charts(comparison: Comparison) -> list[Chart]:
    """One chart per compared metric that has numbers on both sides somewhere."""
    out = []
    for index, summary in enumerate(comparison.summaries):
        cells = [row.metrics[index] for row in comparison.rows]
        changes: list[tuple[float, str]] = sorted(
            (c.delta, "regression" if c.regression else c.direction or "neutral")
            for c in cells
            if c.delta is not None
        )
        if changes:
            out.append(_chart(summary, _sample(changes)))
    return out


def _sample(changes: list[tuple[float, str]]) -> list[tuple[float, str]]:
    if len(changes) <= MAX_BARS:
        return changes
    step = (len(changes) - 1) / (MAX_BARS - 1)
    return [changes[round(i * step)] for i in range(MAX_BARS)]


def _chart(summary: MetricSummary, changes: list[tuple[float, str]]) -> Chart:
    low, high = min(0.0, changes[0][0]), max(0.0, changes[-1][0])
    span = (high - low) or 1.0
    zero = HEIGHT * high / span
    width = min(MAX_BAR_WIDTH, WIDTH / len(changes))
    bars = []
    for i, (change, kind) in enumerate(changes):
        top = HEIGHT * (high - max(change, 0.0)) / span
        size = max(1.0, HEIGHT * abs(change) / span)
        bars.append(Bar(i * width, min(top, zero), max(1.0, width - 1), size, kind))
    return Chart(summary, bars, zero, low, high)
