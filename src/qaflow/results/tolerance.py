"""How much worse a metric may get before it is a regression (`tolerance:` of metrics.yaml,
`qa compare --tolerance`), and how many digits a metric shows by default: no pydantic, so
both the metrics file's model (`results.metrics_file`) and its users read them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from qaflow.errors import UsageError

DEFAULT_PRECISION = 3  # significant digits, as QA-Board shows by default
_TOLERANCE = re.compile(r"\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*")


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get before it is a regression: absolute, or % of the reference."""

    value: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str | float, *, where: str = "tolerance") -> Tolerance:
        """`0.01` (absolute) or `5%` (relative to the reference value); never negative."""
        if isinstance(text, bool):
            raise UsageError(f"{where}: expected a number or a percentage, got {text!r}.")
        if isinstance(text, int | float):
            if not math.isfinite(text) or text < 0:
                raise UsageError(f"{where}: a tolerance is a number >= 0, got {text!r}.")
            return cls(float(text))
        match = _TOLERANCE.fullmatch(str(text))
        if match is None:
            raise UsageError(
                f"{where}: {text!r} is not a tolerance: write an absolute amount such as 0.01, "
                "or a percentage of the reference value such as 5%."
            )
        return cls(float(match.group(1)), relative=bool(match.group(2)))

    def allowed(self, reference: float) -> float:
        """The largest worsening allowed from `reference`."""
        return abs(reference) * self.value / 100 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"
