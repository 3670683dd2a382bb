"""QA-Board's client API, served by qaflow: `from qaboard import is_ci, config, merge…` keeps working.

qaflow replaces QA-Board's `qaboard` package (uninstall it first: both provide `qaboard`).
Importing this package does nothing else: no folder is created, no network is reached, no
warning is printed. Every value is computed on first access (PEP 562 module `__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import Any

# The QA-Board release whose API this package reproduces (scripts compare it).
__version__ = "1.1.1"

__all__ = [
    "Context",
    "__version__",
    "config",
    "is_ci",
    "merge",
    "on_linux",
    "on_windows",
    "qa",
    "slugify",
]

_LAZY = {
    "is_ci": ("qaboard.config", "is_ci"),
    "on_linux": ("qaboard.config", "on_linux"),
    "on_windows": ("qaboard.config", "on_windows"),
    "merge": ("qaboard.utils", "merge"),
    "slugify": ("qaboard.conventions", "slugify"),
    "qa": ("qaflow.cli.main", "cli"),
    "Context": ("qaflow.worker.context", "RunContext"),
}


def __getattr__(name: str) -> Any:
    if name == "config":  # `qaboard.config` is both a module and, in QA-Board, imported as such
        return importlib.import_module("qaboard.config")
    if name not in _LAZY:
        raise AttributeError(f"module 'qaboard' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
