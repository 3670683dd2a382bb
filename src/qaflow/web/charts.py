"""The board's plots, as plotly.js figures (data and layout) built here and drawn in the
page by static/plots.js with the bundled plotly.js.

Per compared metric: the distribution of the change across matched runs (a histogram,
stacked by verdict: regression, worse, same, better) and a scatter of reference against new
values (one point per run, hover naming the input, a click opening the run with its
reference). A metric that changed in no run gets no figures (a histogram of zeros is one
grey block): the page says it is unchanged. Values are shown as metrics.yaml says:
multiplied by `scale`, with `suffix` as the unit in the axis titles. And a batch's
history: a metric's mean over the last executions that ran the batch, as `qa history`
prints it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qaflow.results.compare import Comparison, MetricDelta, MetricSummary, Row
from qaflow.results.metrics import MetricSpec

MAX_POINTS = 3000  # points of a scatter: regressions all kept, the others sampled evenly
KINDS = {  # verdict -> (legend, colour), in stacking order
    "regression": ("regression", "#d64545"),
    "worse": ("worse", "#e39a3b"),
    "same": ("same", "#9aa3b1"),
    "neutral": ("no direction", "#7d8aa0"),
    "better": ("better", "#2e9d57"),
}
FONT = {"family": "system-ui, sans-serif", "size": 12}


@dataclass(frozen=True)
class MetricCharts:
    """The two figures of one metric, and its summary line; no figures (None) when the
    metric is the same in every run compared."""

    spec: MetricSpec
    summary: MetricSummary
    histogram: dict[str, Any] | None
    scatter: dict[str, Any] | None

    @property
    def unchanged(self) -> bool:
        return self.histogram is None


def unit(spec: MetricSpec) -> str:
    """The unit an axis title names: the suffix, without its spaces (` dB` -> `dB`)."""
    return spec.suffix.strip()


def axis_title(text: str, spec: MetricSpec) -> str:
    return plain(f"{text} ({unit(spec)})" if unit(spec) else text)


def compare_charts(comparison: Comparison, link: Callable[[Row], str]) -> list[MetricCharts]:
    """Per compared metric with numbers on both sides somewhere: its two figures. `link`:
    the URL of a row's run, with its reference. Figures only for a metric that changed
    somewhere."""
    rows = list(comparison.rows)
    out = []
    for index, (spec, summary) in enumerate(
        zip(comparison.metrics, comparison.summaries, strict=True)
    ):
        cells = [(row, row.metrics[index]) for row in rows if row.metrics[index].delta is not None]
        if not cells:
            continue
        if all(cell.direction == "same" for _, cell in cells):
            out.append(MetricCharts(spec, summary, None, None))
        else:
            out.append(
                MetricCharts(spec, summary, _histogram(spec, cells), _scatter(spec, cells, link))
            )
    return out


def any_figure(found: Sequence[MetricCharts]) -> bool:
    return any(not c.unchanged for c in found)


def kind_of(cell: MetricDelta) -> str:
    return "regression" if cell.regression else cell.direction or "neutral"


def _histogram(spec: MetricSpec, cells: list[tuple[Row, MetricDelta]]) -> dict[str, Any]:
    traces = []
    groups = _by_kind(cells)
    for kind, (name, colour) in KINDS.items():
        changes = [c.delta * spec.scale for _, c in groups.get(kind, ()) if c.delta is not None]
        if changes:
            traces.append(
                {
                    "type": "histogram",
                    "x": changes,
                    "name": name,
                    "bingroup": "change",
                    "marker": {"color": colour},
                    "hovertemplate": "change %{x}<br>%{y} runs<extra>" + name + "</extra>",
                }
            )
    layout = _layout(
        plain(f"Change of {spec.label} per run"),
        axis_title(f"change of {spec.label}, new − reference", spec),
        "runs",
    )
    layout["barmode"] = "stack"
    layout["shapes"] = [_vertical_zero()]
    return {"data": traces, "layout": layout}


def _scatter(
    spec: MetricSpec, cells: list[tuple[Row, MetricDelta]], link: Callable[[Row], str]
) -> dict[str, Any]:
    shown = _sample(cells)
    traces = []
    low = high = None
    groups = _by_kind(shown)
    for kind, (name, colour) in KINDS.items():
        points = groups.get(kind, [])
        if not points:
            continue
        xs = [float(c.ref) * spec.scale for _, c in points]
        ys = [float(c.new) * spec.scale for _, c in points]
        low = min([*xs, *ys, *([low] if low is not None else [])])
        high = max([*xs, *ys, *([high] if high is not None else [])])
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": xs,
                "y": ys,
                "text": [_input_text(row) for row, _ in points],
                "customdata": [link(row) for row, _ in points],
                "marker": {"color": colour, "size": 7, "opacity": 0.8},
                "hovertemplate": "%{text}<br>reference %{x}<br>new %{y}<extra>" + name + "</extra>",
            }
        )
    layout = _layout(
        plain(f"{spec.label}: new against reference"),
        axis_title(f"{spec.label} in the reference", spec),
        axis_title(f"{spec.label} in the new execution", spec),
    )
    if low is not None and high is not None:  # y = x: on it, unchanged
        layout["shapes"] = [
            {"type": "line", "x0": low, "y0": low, "x1": high, "y1": high,
             "line": {"color": "#5b6472", "width": 1, "dash": "dot"}}
        ]  # fmt: skip
    return {"data": traces, "layout": layout}


def history_chart(
    spec: MetricSpec, batch: str, points: Sequence[tuple[str, str, float | None, int]]
) -> dict[str, Any]:
    """A metric's summary over executions, oldest first: (execution id, its label, value,
    runs counted) per point."""
    kept = [(i, label, v * spec.scale, n) for i, label, v, n in points if v is not None]
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": plain(spec.label),
        "x": [plain(f"{label} {i[:6]}") for i, label, _, _ in kept],
        "y": [v for _, _, v, _ in kept],
        "customdata": [n for *_, n in kept],
        "marker": {"color": "#2f6fde", "size": 8},
        "hovertemplate": "%{x}<br>%{y} (mean of %{customdata} runs)<extra></extra>",
    }
    layout = _layout(
        plain(f"{spec.label} over the last executions of {batch}"),
        "execution, oldest → newest",
        axis_title(f"mean {spec.label}", spec),
    )
    layout["xaxis"]["type"] = "category"
    return {"data": [trace], "layout": layout}


def _layout(title: str, x: str, y: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 13}},
        "xaxis": {"title": {"text": x}, "zeroline": True, "automargin": True},
        "yaxis": {"title": {"text": y}, "zeroline": True, "automargin": True},
        "margin": {"l": 60, "r": 16, "t": 36, "b": 60},
        "height": 300,
        "font": FONT,
        "legend": {"orientation": "h", "y": -0.28},
        "hovermode": "closest",
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fafbfc",
    }


def _vertical_zero() -> dict[str, Any]:
    return {
        "type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
        "line": {"color": "#5b6472", "width": 1},
    }  # fmt: skip


def _by_kind(cells: list[tuple[Row, MetricDelta]]) -> dict[str, list[tuple[Row, MetricDelta]]]:
    groups: dict[str, list[tuple[Row, MetricDelta]]] = {}
    for cell in cells:
        groups.setdefault(kind_of(cell[1]), []).append(cell)
    return groups


def _sample(cells: list[tuple[Row, MetricDelta]]) -> list[tuple[Row, MetricDelta]]:
    if len(cells) <= MAX_POINTS:
        return cells
    flagged = [cell for cell in cells if cell[1].regression]
    others = [cell for cell in cells if not cell[1].regression]
    room = max(0, MAX_POINTS - len(flagged))
    step = len(others) / room if room else 0
    return flagged + [others[int(i * step)] for i in range(room)]


def _input_text(row: Row) -> str:
    name = row.input or "(no input)"
    shown = row.configuration if len(row.configuration) <= 60 else row.configuration[:59] + "…"
    return plain(f"{row.batch} · {name}" + (f" · {shown}" if shown else ""))


def plain(text: str) -> str:
    """Text for plotly, which reads a few HTML tags in labels: entities show `<` as is."""
    return html.escape(text, quote=False)
