"""QA-Board's `qaboard.utils` helpers that user code imports: `merge`, `getenvs`."""

from __future__ import annotations

import os
from collections.abc import Iterable

from qaflow.config.layers import merge

__all__ = ["getenvs", "merge"]


def getenvs(variables: Iterable[str], default: str | None = None) -> str | None:
    """The value of the first of `variables` that is set in the environment, else `default`."""
    for name in variables:
        if name in os.environ:
            return os.environ[name]
    return default
