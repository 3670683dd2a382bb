"""`type: pipeline` batches (QA-Board's user-land pipelines), compiled into the run graph.

Policy: steps run in order; the batches of one step run in parallel. A `run:` step is one
run of the pipeline batch (a shell command, cwd the project root); a `batch:` step is the
runs of the batches it names, which are planned like any batch (with their own `needs`).
Every run of a step needs every run of the step before (the first step: the runs the
pipeline itself `needs`). Every step sees `$PIPELINE_OUTPUT_DIR`, one folder for the whole
pipeline, and `$QA_PREVIOUS_BATCH`, a JSON file listing the previous step's runs in the
format of `qa batch --list` (written when the step starts, with their status and metrics).
There is one engine: the pipeline is nothing but runs, edges and environment variables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qaflow.config.batches import Batch, Catalog
from qaflow.config.project import HOST, Project
from qaflow.errors import GraphError
from qaflow.plan.expand import PIPELINE, slug
from qaflow.plan.link import resolve
from qaflow.plan.model import Link, PlanOptions, RunSpec
from qaflow.plan.reuse import Fingerprints


@dataclass
class Compiled:
    """What a pipeline adds to the plan."""

    runs: list[RunSpec] = field(default_factory=list)  # its `run:` steps
    links: dict[str, Link] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)  # extra needs of batch-step runs
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    previous_files: dict[str, tuple[str, ...]] = field(default_factory=dict)


def compile_pipeline(
    project: Project,
    batch: Batch,
    options: PlanOptions,
    catalog: Catalog,
    planned: Mapping[str, list[RunSpec]],
    by_key: Mapping[str, RunSpec],
    fingerprints: Fingerprints,
) -> Compiled:
    if any(need.per_input for need in batch.needs):
        raise GraphError(
            f"{batch.file}: pipeline {batch.name!r}: `per: input` needs are for batches of inputs; a pipeline needs whole batches."
        )
    platform = batch.platform or options.platform or HOST
    identity = json.dumps(
        [
            batch.name,
            str(batch.file),
            platform,
            [s.command or list(s.batches) for s in batch.steps],
        ],
        sort_keys=True,
    )
    digest = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    folder = project.storage / "runs" / slug(batch.name) / digest[:12]
    groups = {need.alias: tuple(r.key for r in planned[need.batch]) for need in batch.needs}
    compiled = Compiled()
    previous = tuple(key for keys in groups.values() for key in keys)
    for step in batch.steps:
        listing = folder / "steps" / f"before-step-{step.index + 1}.json"
        env = {"PIPELINE_OUTPUT_DIR": str(folder), "QA_PREVIOUS_BATCH": str(listing)}
        compiled.previous_files[str(listing)] = previous
        if step.command is not None:
            key = hashlib.blake2b(f"{digest}\0{step.index}".encode(), digest_size=8).hexdigest()
            run = RunSpec(
                batch=batch.name,
                batch_file=batch.file,
                input_path=None,
                rel_input_path=None,
                database=project.database,
                type=PIPELINE,
                configurations=(step.command,),
                params={},
                platform=platform,
                matrix={},
                output_dir=folder / f"step-{step.index + 1}",
                key=key,
            )
            link = Link(batch, groups, previous=previous, command=step.command)
            ups = [_run_of(k, by_key, compiled) for k in previous]
            run = fingerprints.step(run, [fingerprints.token(up) for up in ups])
            run = run.evolve(upstream=tuple(previous))
            compiled.runs.append(resolve(run, link, {**by_key, run.key: run}, None))
            compiled.links[key] = link
            compiled.env[key] = env
            previous = (key,)
        else:
            keys = tuple(
                r.key for name in catalog.resolve(list(step.batches)) for r in planned[str(name)]
            )
            for key in keys:
                compiled.edges.setdefault(key, set()).update(previous)
                compiled.env[key] = env
            previous = keys
    return compiled


def _run_of(key: str, by_key: Mapping[str, RunSpec], compiled: Compiled) -> RunSpec:
    return by_key.get(key) or next(r for r in compiled.runs if r.key == key)


def write_previous(path: Path, runs: list[dict[str, object]]) -> None:
    """Write the listing of the previous step, atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(runs, indent=1, default=str))
    tmp.replace(path)
