"""Helpers of the store tests; a plain module, so the concurrency test's processes import it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from qaflow.config.git import GitInfo
from qaflow.plan.model import RunSpec
from qaflow.store import Store

GIT = GitInfo(commit="0123456789abcdef0123456789abcdef01234567", branch="main", dirty=True)


def make_spec(i: int, batch: str = "sweep") -> dict[str, Any]:
    """A real RunSpec's dict, as `qa batch` plans it."""
    key = hashlib.blake2b(f"{batch}/{i}".encode(), digest_size=8).hexdigest()
    return RunSpec(
        batch=batch,
        batch_file=Path("/project/qa/batches.yaml"),
        input_path=Path(f"/data/images/img{i:05d}.raw"),
        rel_input_path=f"images/img{i:05d}.raw",
        database=Path("/data"),
        type="image",
        configurations=("base", {"threshold": i, "mode": "fast"}),
        params={"threshold": i, "mode": "fast"},
        platform="linux",
        matrix={"threshold": i},
        output_dir=Path(f"/project/output/runs/{batch}/images/img{i:05d}.raw/{key[:12]}"),
        key=key,
    ).to_dict()


def new_execution(store: Store, label: str = "default", **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "label": label,
        "project": "acme/vision",
        "argv": ["qa", "batch", "sweep", "--label", label],
        "git": GIT,
        "pid": 4242,
        "host": "build-01",
    }
    return store.writes.create_execution(**(arguments | overrides))


def with_runs(
    store: Store, count: int, batch: str = "sweep", **kwargs: Any
) -> tuple[str, list[dict[str, Any]]]:
    execution_id = new_execution(store, **kwargs)
    specs = [make_spec(i, batch) for i in range(count)]
    store.writes.add_runs(execution_id, specs)
    return execution_id, specs
