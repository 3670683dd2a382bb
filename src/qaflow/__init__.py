"""qaflow: run your code on batches of inputs x configurations, as cached DAGs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Execution", "ExecutionStatus", "Handle", "Run", "__version__", "api", "batch", "run"]

_LAZY = {
    "api": ("qaflow.api", None),
    "batch": ("qaflow.run.driver", "batch"),
    "run": ("qaflow.run.driver", "run"),
    "Execution": ("qaflow.run.model", "Execution"),
    "Run": ("qaflow.run.model", "Run"),
    "Handle": ("qaflow.run.background", "Handle"),
    "ExecutionStatus": ("qaflow.run.background", "ExecutionStatus"),
}

if TYPE_CHECKING:
    from qaflow import api
    from qaflow.run.background import ExecutionStatus, Handle
    from qaflow.run.driver import batch, run
    from qaflow.run.model import Execution, Run


def __getattr__(name: str) -> Any:
    """The API, imported on first use: `qa --help` and `qa batch --list` need none of it."""
    if name not in _LAZY:
        raise AttributeError(f"module 'qaflow' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
