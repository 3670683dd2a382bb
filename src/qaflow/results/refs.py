"""Comparing two executions named as a user names them: the verb under `qa compare` and the board.

`resolve_ref` turns an id, id prefix, label, branch or commit into an execution, or a
UsageError with a did-you-mean; `compare_refs` resolves both sides, reads their runs and
compares them (`qaflow.results.compare`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qaflow.errors import StoreError, UsageError
from qaflow.interpreter import gc_paused
from qaflow.results.compare import Comparison, ExecutionSide, compare

if TYPE_CHECKING:
    from qaflow.results.metrics import Metrics, Tolerance
    from qaflow.store import ExecutionRecord, Store


@dataclass(frozen=True)
class Compared:
    """A comparison, with the two executions it compares as the store holds them."""

    comparison: Comparison
    ref: ExecutionRecord
    new: ExecutionRecord


def compare_refs(
    store: Store,
    ref: str,
    new: str,
    *,
    metrics: Metrics | None = None,
    batch: str | None = None,
    select: Sequence[str] = (),
    tolerances: Mapping[str, Tolerance] | None = None,
) -> Compared:
    """Compare the runs of execution NEW with those of REF (each an id or prefix, a label, a
    branch or a commit); `batch`: only that batch, a UsageError when neither side has it."""
    sides = [resolve_ref(store, name) for name in (ref, new)]
    with gc_paused():  # 2 x 10,000 runs read and compared: no cycles, many objects
        runs = [store.history.compare_runs(side.id, batch=batch) for side in sides]
        if batch is not None and not any(runs):
            _unknown_batch(store, batch, sides)
        comparison = compare(
            runs[0],
            runs[1],
            metrics=metrics,
            ref=ExecutionSide.from_record(sides[0]),
            new=ExecutionSide.from_record(sides[1]),
            select=select,
            tolerances=tolerances,
        )
    return Compared(comparison, sides[0], sides[1])


def resolve_ref(store: Store, ref: str) -> ExecutionRecord:
    """An execution by id, label, branch or commit; a UsageError with did-you-mean otherwise."""
    try:
        return store.lookups.resolve_execution(ref)
    except StoreError as exc:
        names = store.board.names()
        known = names["labels"] + names["branches"] + names["ids"]
        close = difflib.get_close_matches(ref, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        labels = ", ".join(names["labels"][:8]) or "none yet"
        ids = ", ".join(names["ids"][:5]) or "none yet"
        raise UsageError(
            f"{exc}{hint} Give an execution id, a label, a git branch or a commit. "
            f"Recent labels: {labels}; recent executions: {ids}."
        ) from None


def _unknown_batch(store: Store, name: str, sides: Sequence[ExecutionRecord]) -> None:
    batches = sorted({run.batch for side in sides for run in store.history.compare_runs(side.id)})
    close = difflib.get_close_matches(name, batches, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UsageError(
        f"--batch {name!r}: neither execution has runs of that batch.{hint} "
        f"Their batches: {', '.join(batches) or 'none'}."
    )
