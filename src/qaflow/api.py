"""The public Python API, in one place: `qaflow.api.batch(...)`, `qaflow.api.Execution`…

A thin facade over the execution phase (`qaflow.execution`): it defines nothing. Code inside qaflow
imports the homes of these names, never this module.
"""

from __future__ import annotations

from qaflow.execution.background import ExecutionStatus, Handle
from qaflow.execution.driver import batch, execute, run
from qaflow.execution.model import Execution, Options, Run

__all__ = ["Execution", "ExecutionStatus", "Handle", "Options", "Run", "batch", "execute", "run"]
