"""The public Python API, in one place: `qaflow.api.batch(...)`, `qaflow.api.Execution`…

A thin facade over the run phase (`qaflow.run`): it defines nothing. Code inside qaflow
imports the homes of these names, never this module.
"""

from __future__ import annotations

from qaflow.run.background import ExecutionStatus, Handle
from qaflow.run.driver import batch, execute, run
from qaflow.run.model import Execution, Options, Run

__all__ = ["Execution", "ExecutionStatus", "Handle", "Options", "Run", "batch", "execute", "run"]
