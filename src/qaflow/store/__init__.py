"""The run store: where executions and their runs are recorded (see `store.py` for the design)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qaflow.store.records import ExecutionRecord, GitInfo, RunRecord

if TYPE_CHECKING:
    from qaflow.store.engine import SCHEMA_REVISION
    from qaflow.store.store import Store

__all__ = ["SCHEMA_REVISION", "ExecutionRecord", "GitInfo", "RunRecord", "Store"]


def __getattr__(name: str) -> Any:
    """`Store` and `SCHEMA_REVISION` import SQLAlchemy (~150 ms): only when asked for, so
    `from qaflow.store import GitInfo` stays cheap for commands that never open the store."""
    if name == "Store":
        from qaflow.store.store import Store

        return Store
    if name == "SCHEMA_REVISION":
        from qaflow.store.engine import SCHEMA_REVISION

        return SCHEMA_REVISION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
