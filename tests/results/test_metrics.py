"""metrics.yaml: validation, formatting, directions, targets and tolerances."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaflow.errors import ConfigError, QaflowWarning, UsageError
from qaflow.results.metrics import Metrics, MetricSpec, Tolerance, parse_tolerances, significant

QA_BOARD_FILE = """\
available_metrics:
  is_failed:
    key: is_failed
    label: Crashed
    short_label: Crashed
    description: This run crashed.
    scale: 100
    suffix: "%"
    target: 0
    smaller_is_better: true
    plot_scale: linear
  psnr:
    label: Peak SNR
    smaller_is_better: false
    target: 30
    target_passfail: true
    suffix: dB
    precision: 4
  loss:
    tolerance: 5%
  rmse:
    threshold: 0.01
    tolerance: 0.002
  bare:
default_metric: psnr
summary_metrics: [is_failed, psnr]
main_metrics: [psnr, loss]
dashboard_metrics: [is_failed]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metrics.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_qa_board_metrics_file_loads_with_every_field(tmp_path: Path) -> None:
    metrics = Metrics.load(write(tmp_path, QA_BOARD_FILE))
    assert (metrics.default_metric, metrics.main_metrics) == ("psnr", ("psnr", "loss"))
    assert metrics.summary_metrics == ("is_failed", "psnr")
    assert metrics.spec("psnr") == MetricSpec(
        key="psnr",
        label="Peak SNR",
        short_label="Peak SNR",  # defaults to the label
        smaller_is_better=False,
        target=30.0,
        target_passfail=True,
        suffix="dB",
        precision=4,
    )
    crashed = metrics.spec("is_failed")
    assert (crashed.short_label, crashed.scale, crashed.suffix) == ("Crashed", 100.0, "%")
    assert (crashed.description, crashed.target_passfail) == ("This run crashed.", False)
    loss = metrics.spec("loss")
    assert (loss.label, loss.smaller_is_better, loss.tolerance) == (
        "loss",
        True,
        Tolerance(5, True),
    )
    rmse = metrics.spec("rmse")
    assert (rmse.target, rmse.tolerance) == (0.01, Tolerance(0.002))  # QA-Board's `threshold`
    assert metrics.spec("bare") == MetricSpec("bare", "bare", "bare", smaller_is_better=True)


def test_undescribed_metrics_are_neutral_and_a_missing_file_describes_none(tmp_path: Path) -> None:
    metrics = Metrics.load(tmp_path / "nope.yaml")
    spec = metrics.spec("score")
    assert (spec.label, spec.smaller_is_better, spec.described) == ("score", None, False)
    assert spec.direction(1.0, 2.0) is None and spec.direction(1.0, 1.0) == "same"
    assert Metrics.load(write(tmp_path, "")).available == {}


def test_unknown_keys_warn_with_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "available_metrics:\n  loss: {colour: red}\nfavourite: loss\n")
    with pytest.warns(QaflowWarning) as caught:
        Metrics.load(path)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        f"{path}: unknown key `available_metrics.loss.colour` is ignored.",
        f"{path}: unknown key `favourite` is ignored.",
    ]


@pytest.mark.parametrize(
    ("text", "line", "key", "got"),
    [
        (
            "available_metrics:\n  loss:\n    scale: big\n",
            3,
            "available_metrics.loss.scale",
            "'big'",
        ),
        ("main_metrics: loss\n", 1, "main_metrics", "'loss'"),
        (
            "available_metrics:\n  a: {}\n  b:\n    tolerance: lots\n",
            4,
            "available_metrics.b.tolerance",
            "lots",
        ),
        (
            "available_metrics:\n  a:\n    smaller_is_better: [1]\n",
            3,
            "available_metrics.a.smaller_is_better",
            "a list",
        ),
    ],
)
def test_wrong_types_name_the_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, got: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        Metrics.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: invalid value for `{key}`")
    assert got in message


def test_the_readme_example_loads_without_warnings(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Comparing results", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = Metrics.load(write(tmp_path, example))
    assert metrics.main_metrics == ("loss", "psnr") and metrics.default_metric == "loss"
    assert metrics.spec("psnr").format(31.23456) == "31.23 dB"
    assert metrics.spec("recall").format(0.93) == "93%"
    assert metrics.spec("loss").tolerance == Tolerance(0.01)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        Metrics.load(write(tmp_path, "- loss\n"))


# ---------------------------------------------------------------- formatting
def test_values_are_scaled_rounded_and_suffixed() -> None:
    percent = MetricSpec("ratio", "Ratio", "Ratio", True, scale=100, suffix="%", precision=3)
    assert percent.format(0.123456) == "12.3%"
    assert percent.format(1) == "100%"
    assert percent.format_delta(-0.0123) == "-1.23%"
    assert percent.format_delta(0.5) == "+50%"
    neutral = MetricSpec.neutral("n")
    assert [neutral.format(v) for v in (1234.6, 0.012345, 2.0, 0, 7)] == [
        "1235",  # no exponent for ordinary magnitudes
        "0.0123",
        "2",
        "0",
        "7",
    ]
    assert neutral.format(1.5e-7) == "1.5e-07"


def test_strings_rich_metrics_booleans_and_missing_values_are_kept() -> None:
    spec = MetricSpec("s", "s", "s", True, scale=100, suffix="%")
    assert spec.format("blurry") == "blurry"
    assert spec.format({"text": "2 faces", "href": "x"}) == "2 faces"
    assert (spec.format(True), spec.format(None), spec.format(float("nan"))) == ("true", "", "nan")


def test_direction_and_targets_follow_smaller_is_better() -> None:
    loss = MetricSpec("loss", "loss", "loss", True, target=0.1, target_passfail=True)
    psnr = MetricSpec("psnr", "psnr", "psnr", False, target=30, target_passfail=True)
    assert (loss.direction(1, 0.5), loss.direction(1, 2), loss.direction(1, 1)) == (
        "better",
        "worse",
        "same",
    )
    assert (psnr.direction(30, 31), psnr.direction(30, 29)) == ("better", "worse")
    assert (loss.worsening(1, 1.5), psnr.worsening(30, 29)) == (0.5, 1)
    assert (loss.misses_target(0.2), loss.misses_target(0.1)) == (True, False)
    assert (psnr.misses_target(29.9), psnr.misses_target(30)) == (True, False)
    assert not loss.misses_target("n/a") and not MetricSpec.neutral("x").misses_target(9)
    informative = MetricSpec("m", "m", "m", True, target=1)  # a target without target_passfail
    assert not informative.misses_target(5)


# ---------------------------------------------------------------- tolerances
def test_tolerances_are_absolute_or_a_percentage_of_the_reference() -> None:
    assert Tolerance.parse("0.01") == Tolerance(0.01)
    assert Tolerance.parse(" 5 %") == Tolerance(5, relative=True)
    assert Tolerance.parse(2) == Tolerance(2.0)
    assert Tolerance.parse("5%").allowed(-200) == 10
    assert Tolerance.parse("0.5").allowed(1000) == 0.5
    assert parse_tolerances(["loss=0.01", "psnr = 2%"]) == {
        "loss": Tolerance(0.01),
        "psnr": Tolerance(2, True),
    }


@pytest.mark.parametrize("bad", ["-1", "5%%", "abc", "", "1e", True, -0.5, math.inf])
def test_bad_tolerances_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        Tolerance.parse(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["loss", "=1", "loss=x"])
def test_bad_tolerance_options_say_the_expected_form(bad: str) -> None:
    with pytest.raises(UsageError, match="--tolerance"):
        parse_tolerances([bad])


finite = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(value=finite, relative=st.booleans())
def test_a_tolerance_parses_back_from_its_text(value: float, relative: bool) -> None:
    text = f"{value!r}{'%' if relative else ''}"
    assert Tolerance.parse(text) == Tolerance(value, relative)
    parsed = Tolerance.parse(str(Tolerance(value, relative)))  # the short form, as shown
    assert parsed.relative == relative and math.isclose(parsed.value, value, rel_tol=1e-5)


@given(text=st.text(max_size=12))
def test_any_text_is_a_tolerance_or_a_usage_error(text: str) -> None:
    try:
        tolerance = Tolerance.parse(text)
    except UsageError as error:
        assert repr(text) in str(error)
    else:
        assert tolerance.value >= 0 and math.isfinite(tolerance.value)


metric_entries = st.fixed_dictionaries(
    {},
    optional={
        "label": st.text(min_size=1, max_size=8),
        "smaller_is_better": st.booleans(),
        "target": finite,
        "target_passfail": st.booleans(),
        "scale": finite,
        "suffix": st.sampled_from(["", "%", "dB", " ms"]),
        "precision": st.integers(0, 10),
        "tolerance": st.one_of(finite, finite.map(lambda v: f"{v}%")),
    },
)


@given(entries=st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), metric_entries))
def test_any_valid_description_loads_as_written(
    tmp_path_factory: pytest.TempPathFactory, entries: dict
) -> None:
    import yaml

    path = tmp_path_factory.mktemp("m") / "metrics.yaml"
    path.write_text(yaml.safe_dump({"available_metrics": entries}))
    metrics = Metrics.load(path)
    assert set(metrics.available) == set(entries)
    for key, entry in entries.items():
        spec = metrics.spec(key)
        assert spec.label == entry.get("label", key)
        assert spec.smaller_is_better == entry.get("smaller_is_better", True)
        assert spec.precision == entry.get("precision", 3)
        assert spec.suffix == entry.get("suffix", "")
        assert (spec.tolerance is None) == ("tolerance" not in entry)
        assert isinstance(spec.format(1.5), str) and spec.format(1.5).endswith(spec.suffix)


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e14, max_value=1e14),
    digits=st.integers(1, 8),
)
def test_significant_digits_round_trip_within_their_precision(value: float, digits: int) -> None:
    shown = float(significant(value, digits))
    assert (
        math.isclose(shown, value, rel_tol=10 ** (1 - digits), abs_tol=1e-300) or abs(value) < 1e-4
    )


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
fields = st.sampled_from(
    [
        "label",
        "smaller_is_better",
        "target",
        "target_passfail",
        "scale",
        "suffix",
        "precision",
        "tolerance",
    ]
)


@given(
    entry=st.dictionaries(fields, yaml_values, max_size=4),
    top=st.dictionaries(
        st.sampled_from(["default_metric", "main_metrics", "summary_metrics"]), yaml_values
    ),
)
def test_any_content_loads_or_is_a_config_error_naming_the_file(
    tmp_path_factory: pytest.TempPathFactory, entry: dict, top: dict
) -> None:
    import yaml

    path = tmp_path_factory.mktemp("m") / "metrics.yaml"
    path.write_text(yaml.safe_dump({"available_metrics": {"m": entry}, **top}))
    try:
        metrics = Metrics.load(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) and "invalid value for `" in str(error)
    else:
        assert isinstance(metrics.spec("m").format(1.0), str)
