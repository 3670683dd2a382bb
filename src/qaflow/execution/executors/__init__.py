"""Where runs execute: a pool of local worker processes, or inline in the calling process."""

from __future__ import annotations

from qaflow.execution.executors.inline import InlineExecutor
from qaflow.execution.executors.local import LocalPool

__all__ = ["InlineExecutor", "LocalPool"]
