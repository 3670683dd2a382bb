"""The pydantic model of `qa/metrics.yaml` (QA-Board's format), and its validation into the
plain data `results.metrics.Metrics` is built from.

Imported only when the file must be validated (`config.validated` keeps a validation
between processes): a function of the document alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from qaflow.config.schema import Section, explain, warn_unknown_keys
from qaflow.errors import ConfigError, UsageError
from qaflow.results.tolerance import DEFAULT_PRECISION, Tolerance


class _MetricEntry(Section):
    key: str | None = None  # QA-Board repeats the key; ignored
    label: str | None = None
    short_label: str | None = None
    description: str | None = None
    smaller_is_better: bool = True
    target: float | None = None
    threshold: float | None = None  # QA-Board's older name for target
    target_passfail: bool = False
    scale: float = 1.0
    suffix: str = ""
    precision: int = Field(default=DEFAULT_PRECISION, ge=0, le=20)
    plot_scale: str | None = None  # the web board's business
    tolerance: float | str | None = None

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            try:
                Tolerance.parse(value)
            except UsageError as exc:
                raise ValueError(str(exc).removeprefix("tolerance: ")) from None
        return value


class _MetricsFile(Section):
    available_metrics: dict[str, _MetricEntry | None] = Field(default_factory=dict)  # `loss:`
    default_metric: str | None = None
    main_metrics: list[str] = Field(default_factory=list)
    summary_metrics: list[str] = Field(default_factory=list)
    dashboard_metrics: list[str] = Field(default_factory=list)
    dashboard_evolution_metrics: list[str] = Field(default_factory=list)


def metrics_settings(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """metrics.yaml's `data` validated: each described metric's settings (QA-Board's
    `threshold` as `target`), the default, main and summary metrics."""
    try:
        parsed = _MetricsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            explain(
                path,
                exc,
                "Fix that key in the metrics file; it follows QA-Board's format (see the "
                "README's section on comparing results).",
            )
        ) from exc
    warn_unknown_keys(path, parsed)
    return {
        "available": {
            key: _entry(entry or _MetricEntry()) for key, entry in parsed.available_metrics.items()
        },
        "default_metric": parsed.default_metric,
        "main_metrics": list(parsed.main_metrics),
        "summary_metrics": list(parsed.summary_metrics),
    }


def _entry(entry: _MetricEntry) -> dict[str, Any]:
    return {
        "label": entry.label,
        "short_label": entry.short_label,
        "smaller_is_better": entry.smaller_is_better,
        "target": entry.target if entry.target is not None else entry.threshold,
        "target_passfail": entry.target_passfail,
        "scale": entry.scale,
        "suffix": entry.suffix,
        "precision": entry.precision,
        "tolerance": entry.tolerance,
        "description": entry.description,
    }
