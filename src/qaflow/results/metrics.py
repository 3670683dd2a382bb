"""`qa/metrics.yaml`: how each metric is named, shown, judged (direction, target, tolerance).

The file follows QA-Board's format (`available_metrics`, `default_metric`, `main_metrics`,
`summary_metrics`); qaflow adds `tolerance:` per metric for the regression gate of
`qa compare`. Validation happens once, with pydantic (`results.metrics_file`, kept between
processes by `config.validated`): unknown keys are warnings, a value of the wrong type is a
ConfigError naming the file, the line and the key. Metrics the
file does not describe still show, with neutral formatting and no direction: nobody said
whether bigger is better, so they are never called better, worse or a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qaflow.config import validated, yamlfile
from qaflow.config.values import kind_of
from qaflow.errors import ConfigError, UsageError
from qaflow.results.tolerance import DEFAULT_PRECISION, Tolerance

BOOKKEEPING = frozenset({"is_failed", "compute_time"})  # what qaflow adds to every run's metrics
Direction = Literal["better", "worse", "same"]


# ---------------------------------------------------------------- one metric
@dataclass(frozen=True)
class MetricSpec:
    """One metric as metrics.yaml describes it (or a neutral one it does not describe)."""

    key: str
    label: str
    short_label: str
    smaller_is_better: bool | None  # None: not described, so no direction
    target: float | None = None
    target_passfail: bool = False
    scale: float = 1.0
    suffix: str = ""
    precision: int = DEFAULT_PRECISION
    tolerance: Tolerance | None = None
    description: str | None = None

    @property
    def described(self) -> bool:
        return self.smaller_is_better is not None

    @classmethod
    def neutral(cls, key: str) -> MetricSpec:
        return cls(key=key, label=key, short_label=key, smaller_is_better=None)

    def format(self, value: Any) -> str:
        """The value as shown: scaled, rounded to `precision` significant digits, suffixed.

        Strings show as they are, rich metrics ({text: …}) as their text, booleans as
        true/false, a missing value as an empty string."""
        number = as_number(value)
        if number is None:
            return display_text(value)
        return f"{significant(number * self.scale, self.precision)}{self.suffix}"

    def format_delta(self, delta: float | None) -> str:
        """A signed difference, in the metric's unit."""
        if delta is None:
            return ""
        shown = significant(delta * self.scale, self.precision)
        return f"{'+' if delta > 0 else ''}{shown}{self.suffix}"

    def direction(self, reference: float, new: float) -> Direction | None:
        """better/worse/same following smaller_is_better; None for undescribed metrics."""
        if new == reference:
            return "same"
        if self.smaller_is_better is None:
            return None
        return "better" if (new < reference) == self.smaller_is_better else "worse"

    def worsening(self, reference: float, new: float) -> float:
        """How much worse `new` is than `reference` (negative when it is better)."""
        return new - reference if self.smaller_is_better is not False else reference - new

    def misses_target(self, value: Any) -> bool:
        """A target_passfail metric whose value is on the wrong side of its target."""
        number = as_number(value)
        if not self.target_passfail or self.target is None or number is None:
            return False
        return number > self.target if self.smaller_is_better is not False else number < self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "short_label": self.short_label,
            "smaller_is_better": self.smaller_is_better,
            "target": self.target,
            "target_passfail": self.target_passfail,
            "scale": self.scale,
            "suffix": self.suffix,
            "precision": self.precision,
            "tolerance": None if self.tolerance is None else str(self.tolerance),
            "description": self.description,
        }


def as_number(value: Any) -> float | None:
    """The value as a finite float if it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def display_text(value: Any) -> str:
    """Non-numeric metrics: strings as they are, rich metrics by their text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "text" in value:
        return str(value["text"])
    return str(value)


def significant(value: float, digits: int) -> str:
    """`digits` significant digits, without an exponent for ordinary magnitudes:
    1234.6 -> "1235", 0.012345 -> "0.0123", 2.0 -> "2", 1.5e-7 -> "1.5e-07"."""
    text = f"{value:.{max(digits, 1)}g}"
    if "e" in text and 1 <= abs(value) < 1e15:  # more integer digits than significant ones
        return f"{value:.0f}"
    return text


@dataclass(frozen=True)
class Metrics:
    """All of metrics.yaml; `spec(key)` answers for any metric, described or not."""

    available: dict[str, MetricSpec] = field(default_factory=dict)
    default_metric: str | None = None
    main_metrics: tuple[str, ...] = ()
    summary_metrics: tuple[str, ...] = ()
    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> Metrics:
        """Read and validate metrics.yaml; a missing file describes no metric."""
        if not path.is_file():
            return cls(path=None)
        data = yamlfile.load(path, root=path.parent)  # kept as its validation is
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping (available_metrics, main_metrics…) at the top "
                f"level, got {kind_of(data)}."
            )
        settings = validated.cached(
            "metrics.yaml",
            str(path),
            data,
            lambda: _validate(path, data),
            root=path.parent,
            code=(
                Path(__file__).with_name("metrics_file.py"),
                Path(__file__).with_name("tolerance.py"),
            ),
        )
        return cls(
            available={key: _spec(key, entry) for key, entry in settings["available"].items()},
            default_metric=settings["default_metric"],
            main_metrics=tuple(settings["main_metrics"]),
            summary_metrics=tuple(settings["summary_metrics"]),
            path=path,
        )

    def spec(self, key: str) -> MetricSpec:
        return self.available.get(key) or MetricSpec.neutral(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "available_metrics": {k: v.to_dict() for k, v in self.available.items()},
            "default_metric": self.default_metric,
            "main_metrics": list(self.main_metrics),
            "summary_metrics": list(self.summary_metrics),
        }


def _spec(key: str, entry: dict[str, Any]) -> MetricSpec:
    """A metric's spec from its validated entry (`results.metrics_file.metrics_settings`)."""
    label = entry["label"] or key
    return MetricSpec(
        key=key,
        label=label,
        short_label=entry["short_label"] or label,
        smaller_is_better=entry["smaller_is_better"],
        target=entry["target"],
        target_passfail=entry["target_passfail"],
        scale=entry["scale"],
        suffix=entry["suffix"],
        precision=entry["precision"],
        tolerance=None if entry["tolerance"] is None else Tolerance.parse(entry["tolerance"]),
        description=entry["description"],
    )


def _validate(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    from qaflow.results.metrics_file import metrics_settings  # pydantic: only for a changed file

    return metrics_settings(path, data)


def parse_tolerances(values: tuple[str, ...] | list[str]) -> dict[str, Tolerance]:
    """`--tolerance loss=0.01 --tolerance psnr=5%` -> {metric: Tolerance}."""
    found: dict[str, Tolerance] = {}
    for value in values:
        name, sep, amount = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"--tolerance {value!r}: expected METRIC=AMOUNT, such as loss=0.01 or psnr=5%."
            )
        found[name.strip()] = Tolerance.parse(amount, where=f"--tolerance {value!r}")
    return found
