"""`compare_refs`, the verb under `qa compare` and the board's compare page, on the real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.errors import UsageError
from qaflow.results.refs import compare_refs
from qaflow.store import Store
from results_helpers import Run, record


def test_refs_resolve_by_label_and_id_and_compare_the_runs(store: Store, tmp_path: Path) -> None:
    ref = record(store, [Run("a", {"loss": 1.0}), Run("b", {"loss": 2.0})], output_root=tmp_path)
    new = record(
        store, [Run("a", {"loss": 3.0}), Run("b", {"loss": 2.0})], label="new", output_root=tmp_path
    )
    compared = compare_refs(store, ref[:6], "new")
    assert (compared.ref.id, compared.new.id) == (ref, new)
    rows = compared.comparison.batches[0].rows
    assert [(row.input, row.metrics[0].ref, row.metrics[0].new) for row in rows] == [
        ("a", 1.0, 3.0),
        ("b", 2.0, 2.0),
    ]


def test_a_batch_narrows_and_an_unknown_batch_or_ref_is_a_usage_error(
    store: Store, tmp_path: Path
) -> None:
    record(store, [Run("a", {}, batch="first"), Run("b", {}, batch="second")], output_root=tmp_path)
    record(store, [Run("a", {}, batch="first")], label="new", output_root=tmp_path)
    compared = compare_refs(store, "default", "new", batch="second")
    assert [batch.batch for batch in compared.comparison.batches] == ["second"]
    with pytest.raises(UsageError, match=r"'secnd'.*Did you mean second\?.*first, second"):
        compare_refs(store, "default", "new", batch="secnd")
    with pytest.raises(UsageError, match=r"Did you mean new\?"):
        compare_refs(store, "default", "neww")
