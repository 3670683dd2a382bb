"""Where a run's lock lives: `lock_dir_of` on strings agrees with its definition on paths."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from qaflow.worker.rundir import lock_dir_of

PARTS = st.sampled_from(["a", "b", "runs", "x.y", "", ".", "..", "é"])
PATHS = st.tuples(st.sampled_from(["/", "//", "", "./"]), st.lists(PARTS, max_size=5)).map(
    lambda p: Path(p[0] + "/".join(p[1]) or ".")
)


def by_definition(output_dir: Path, runs_root: Path) -> Path:
    """The batch's folder STORAGE/runs/<first part> if output_dir is below runs_root, else
    output_dir's parent."""
    if not output_dir.is_relative_to(runs_root) or output_dir == runs_root:
        return output_dir.parent
    return runs_root / output_dir.relative_to(runs_root).parts[0]


@given(PATHS, PATHS)
def test_the_lock_folder_is_the_batch_folder_as_defined_on_paths(output_dir, runs_root):
    assert lock_dir_of(output_dir, runs_root) == by_definition(output_dir, runs_root)


def test_the_lock_folder_of_a_run_is_its_batch_folder():
    runs = Path("/p/output/runs")
    assert lock_dir_of(runs / "w" / "in" / "abc", runs) == runs / "w"
    assert lock_dir_of(Path("/elsewhere/w/abc"), runs) == Path("/elsewhere/w")
    assert lock_dir_of(runs, runs) == runs.parent
