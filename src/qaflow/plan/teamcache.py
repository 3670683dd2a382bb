"""The team cache: a local run reuses a result already in the team's shared storage.

As in QA-Board, local runs write under the project's `output/` and `--share` (or CI) runs
under `storage:`. Both lay their run directories out the same way (`runs/BATCH/INPUT/
FINGERPRINT`), so the result of a run with the same fingerprint, if the team's nightly CI
made it, sits at the same relative path under the shared storage.

Policy: at planning time, for a run whose own (local) directory holds no successful result,
each root of `PlanOptions.shared_roots` is tried in order; the first holding a successful
result at that relative path becomes the run's `output_dir`. The run is then reused by the
ordinary reuse check (`plan.reuse`), which reads that directory, and what needs it sees the
shared directory in `${needs.x.output_dir}`. Nothing is ever written under a shared root
through this lookup: the `qa batch` command leaves `shared_roots` empty when it will
re-execute runs (--force, --force-batch, --action-on-existing other than run), and a run
with no shared result keeps its local directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qaflow.plan.model import RunSpec
from qaflow.worker.rundir import completed_metrics


def from_shared(run: RunSpec, local_root: Path, roots: Sequence[str]) -> RunSpec:
    """`run`, with the shared result of its fingerprint as output_dir when it has no local one."""
    if not roots or run.fingerprint is None or not run.output_dir.is_relative_to(local_root):
        return run
    if completed_metrics(run.output_dir) is not None:
        return run
    rel = run.output_dir.relative_to(local_root)
    for root in roots:
        candidate = Path(root) / rel
        if completed_metrics(candidate) is not None:
            return run.evolve(output_dir=candidate)
    return run
