"""qaflow: run your code on batches of inputs x configurations, as cached DAGs."""

from __future__ import annotations

__version__ = "0.1.0"

from qaflow import api
from qaflow.api import Execution, Run, batch, run
from qaflow.background import ExecutionStatus, Handle

__all__ = ["Execution", "ExecutionStatus", "Handle", "Run", "__version__", "api", "batch", "run"]
