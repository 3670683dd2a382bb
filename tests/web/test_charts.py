"""The compare page's figures and triage order, as plain data: axis titles in the metric's
unit, values scaled, traces by verdict, regressions never sampled out, worst first."""

from __future__ import annotations

from typing import Any

from qaflow.results.compare import CompareRun, Comparison, compare
from qaflow.results.metrics import Metrics, MetricSpec
from qaflow.web import charts
from qaflow.web.comparison import worst_first


def run(name: str, status: str = "succeeded", **metrics: Any) -> CompareRun:
    return CompareRun(name, "b", name, "linux", ["base"], {}, status, metrics, f"/o/{name}")


def compared(ref: list[CompareRun], new: list[CompareRun]) -> Comparison:
    metrics = Metrics(
        available={
            "psnr": MetricSpec("psnr", "PSNR", "PSNR", smaller_is_better=False, suffix=" dB"),
            "error": MetricSpec("error", "Error", "Error", True, scale=100, suffix="%"),
        }
    )
    return compare(ref, new, metrics=metrics)


def test_figures_have_axis_titles_in_the_unit_and_scaled_values() -> None:
    comparison = compared(
        [run("a", psnr=30, error=0.1), run("b", psnr=30, error=0.2)],
        [run("a", psnr=31, error=0.15), run("b", psnr=29, error=0.2)],
    )
    found = {c.spec.key: c for c in charts.compare_charts(comparison, lambda row: "/r")}
    psnr, error = found["psnr"], found["error"]
    assert psnr.histogram["layout"]["xaxis"]["title"]["text"] == (
        "change of PSNR, new − reference (dB)"
    )
    assert psnr.scatter["layout"]["yaxis"]["title"]["text"] == "PSNR in the new execution (dB)"
    kinds = {t["name"]: t["x"] for t in psnr.histogram["data"]}
    assert kinds == {"regression": [-1.0], "better": [1.0]}
    assert error.histogram["layout"]["xaxis"]["title"]["text"].endswith("(%)")
    [worse] = [t for t in error.scatter["data"] if t["name"] == "regression"]
    assert worse["x"] == [10.0] and round(worse["y"][0], 6) == 15.0  # scaled by 100
    assert worse["text"] == ["b · a · base"] and worse["customdata"] == ["/r"]


def test_a_metric_unchanged_in_every_run_has_no_figures() -> None:
    comparison = compared(
        [run("a", psnr=30, error=0.1), run("b", psnr=30, error=0.2)],
        [run("a", psnr=30, error=0.1), run("b", psnr=30, error=0.25)],
    )
    found = {c.spec.key: c for c in charts.compare_charts(comparison, lambda row: "/r")}
    assert found["psnr"].unchanged and found["psnr"].histogram is None
    assert found["psnr"].scatter is None and found["psnr"].summary.same == 2
    assert not found["error"].unchanged and found["error"].histogram is not None
    assert charts.any_figure(list(found.values()))
    assert not charts.any_figure([found["psnr"]])


def test_the_hover_shows_a_configuration_as_written() -> None:
    nasty = CompareRun(
        "a", "b", "a", "linux", ["<script>x()</script>"], {}, "succeeded", {"psnr": 31}, "/o/a"
    )
    comparison = compared([run("a", psnr=30)], [nasty])
    [figure] = charts.compare_charts(comparison, lambda row: "/r")
    [trace] = figure.scatter["data"]
    assert trace["text"] == ["b · a · &lt;script&gt;x()&lt;/script&gt;"]  # plotly shows `<`


def test_a_scatter_of_many_runs_keeps_every_regression() -> None:
    count = charts.MAX_POINTS * 2
    refs = [run(f"i{i}", psnr=30) for i in range(count)]
    news = [run(f"i{i}", psnr=29 if i % 100 == 0 else 31) for i in range(count)]
    [figure] = charts.compare_charts(compared(refs, news), lambda row: "/r")
    points = {t["name"]: len(t["x"]) for t in figure.scatter["data"]}
    assert points["regression"] == count // 100
    assert sum(points.values()) == charts.MAX_POINTS
    assert sum(len(t["x"]) for t in figure.histogram["data"]) == count  # all, binned


def test_worst_first_follows_the_direction_and_puts_failures_first() -> None:
    refs = [run(n, psnr=30, error=0.1) for n in "abcde"]
    news = [
        run("a", psnr=29, error=0.1),  # 1 dB worse
        run("b", psnr=25, error=0.1),  # 5 dB worse: the worst number
        run("c", psnr=33, error=0.1),  # better
        run("d", status="failed"),  # failed where the reference succeeded
        run("e", psnr=30, error=0.3),
    ]
    comparison = compared(refs, news)
    rows = list(comparison.rows)
    assert [r.input for r in worst_first(rows, comparison, "psnr")] == ["d", "b", "a", "e", "c"]
    assert [r.input for r in worst_first(rows, comparison, "error")][:2] == ["d", "e"]
    assert [r.input for r in worst_first(rows, comparison, None)] == list("abcde")


def test_a_metric_without_direction_sorts_by_the_size_of_its_change() -> None:
    comparison = compare(
        [run("a", m=1.0), run("b", m=1.0), run("c", m=1.0)],
        [run("a", m=1.5), run("b", m=-2.0), run("c", m=1.0)],
    )
    assert comparison.spec("m") == MetricSpec.neutral("m")
    rows = worst_first(list(comparison.rows), comparison, "m")
    assert [r.input for r in rows] == ["b", "a", "c"]


def test_the_history_chart_skips_executions_without_a_value() -> None:
    spec = MetricSpec(key="e", label="Error", short_label="e", smaller_is_better=True, scale=2)
    figure = charts.history_chart(
        spec, "b", [("abcdef1", "ref", 1.0, 3), ("0123456", "x", None, 0)]
    )
    assert figure["data"][0]["x"] == ["ref abcdef"] and figure["data"][0]["y"] == [2.0]
    assert figure["layout"]["yaxis"]["title"]["text"] == "mean Error"
