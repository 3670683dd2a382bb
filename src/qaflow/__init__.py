"""qaflow: run your code on batches of inputs x configurations, as cached DAGs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Execution", "ExecutionStatus", "Handle", "Run", "__version__", "api", "batch", "run"]

_LAZY = {
    "api": ("qaflow.api", None),
    "batch": ("qaflow.execution.driver", "batch"),
    "run": ("qaflow.execution.driver", "run"),
    "Execution": ("qaflow.execution.model", "Execution"),
    "Run": ("qaflow.execution.model", "Run"),
    "Handle": ("qaflow.execution.background", "Handle"),
    "ExecutionStatus": ("qaflow.execution.background", "ExecutionStatus"),
}

if TYPE_CHECKING:
    from qaflow import api
    from qaflow.execution.background import ExecutionStatus, Handle
    from qaflow.execution.driver import batch, run
    from qaflow.execution.model import Execution, Run


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
