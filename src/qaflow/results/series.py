"""A metric over executions, as `qa history` and the board's batch page show it: one value
per execution, a statistic of its batch's successful runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

STATS: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "min": min,
    "max": max,
}


def summarize(values: Sequence[Any], stat: Callable[[list[float]], float]) -> float | None:
    """One value for an execution: `stat` over the numbers among the runs' values."""
    from qaflow.results.metrics import as_number  # not at import: `qa --help` loads this module

    numbers = [n for n in (as_number(v) for v in values) if n is not None]
    return stat(numbers) if numbers else None
