"""Where runs execute: a pool of local worker processes, or inline in the calling process.

Both are imported when asked for: a plan with nothing to run imports neither the pool's
modules nor the worker's (`qaflow.execution.executors.forkserver` stays light)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qaflow.execution.executors.inline import InlineExecutor
    from qaflow.execution.executors.local import LocalPool

__all__ = ["InlineExecutor", "LocalPool"]


def __getattr__(name: str) -> Any:
    if name == "InlineExecutor":
        from qaflow.execution.executors.inline import InlineExecutor

        return InlineExecutor
    if name == "LocalPool":
        from qaflow.execution.executors.local import LocalPool

        return LocalPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
