"""Executions with known metrics and output files, recorded through the real store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaflow.config.git import GitInfo
from qaflow.plan.model import RunSpec
from qaflow.results.compare import CompareRun
from qaflow.store import Store
from qaflow.worker.model import RunResult, RunStatus


@dataclass
class Run:
    """One run to record: where it sits (batch, input, configuration) and what it gave."""

    input: str | None
    metrics: dict[str, Any]
    batch: str = "b"
    configurations: tuple[Any, ...] = ("base",)
    matrix: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.SUCCEEDED
    files: dict[str, str] = field(default_factory=dict)  # name -> content
    platform: str = "linux"


def spec(run: Run, output_root: Path, tag: str) -> dict[str, Any]:
    """A real RunSpec's dict for the run, its output dir under output_root/tag."""
    identity = f"{run.batch}/{run.input}/{run.configurations}/{run.matrix}/{run.platform}"
    key = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    return RunSpec(
        batch=run.batch,
        batch_file=None,
        input_path=None if run.input is None else Path("/data", run.input),
        rel_input_path=run.input,
        database=Path("/data"),
        type="default",
        configurations=run.configurations,
        params={},
        platform=run.platform,
        matrix=run.matrix,
        output_dir=output_root / tag / key,
        key=key,
    ).to_dict()


def record(
    store: Store,
    runs: list[Run],
    *,
    label: str = "default",
    output_root: Path,
    git: GitInfo | None = None,
) -> str:
    """A finished execution of these runs, their files written; return its id."""
    execution_id = store.writes.create_execution(
        label=label,
        project="test",
        argv=["qa", "batch"],
        git=git or GitInfo(),
        pid=None,
        host=None,
    )
    specs = [spec(run, output_root, execution_id) for run in runs]
    store.writes.add_runs(execution_id, specs)
    for run, data in zip(runs, specs, strict=True):
        folder = Path(data["output_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "log.txt").write_text(f"log of {execution_id}")  # qaflow's own: never compared
        for name, content in run.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content)
    results = [
        RunResult(key=data["id"], status=run.status, metrics=run.metrics)
        for run, data in zip(runs, specs, strict=True)
    ]
    store.writes.record(execution_id, finished=results)
    store.writes.finish_execution(execution_id, "succeeded")
    return execution_id


def compare_run(input: str | None, metrics: dict[str, Any], **kwargs: Any) -> CompareRun:
    """A CompareRun for the pure tests: batch b, configuration base, succeeded, unless given."""
    values: dict[str, Any] = {
        "key": f"{kwargs.get('batch', 'b')}/{input}/{kwargs.get('configurations')}",
        "batch": "b",
        "input": input,
        "platform": "linux",
        "configurations": ["base"],
        "matrix": {},
        "status": "succeeded",
        "metrics": metrics,
        "output_dir": f"/out/{input}",
    }
    return CompareRun(**(values | kwargs))
