"""Completing runs when they start: what could not be known when planning.

A run whose expressions read upstream metrics is resolved again now, with its upstream
results (a failure to evaluate them fails the run, with the reason), and its task gets the
new payload (`payload_of`: the worker's typed view of a `RunSpec`). A pipeline step gets
the listing of the previous step's runs written to `$QA_PREVIOUS_BATCH`, once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

from qaflow.errors import InterpolationError
from qaflow.execution.model import Job
from qaflow.plan.link import resolve
from qaflow.plan.model import Plan, RunSpec
from qaflow.plan.pipeline import write_previous
from qaflow.worker.model import RunPayload, RunResult, RunStatus


def payload_of(spec: RunSpec) -> RunPayload:
    """What the worker receives of a planned run (paths as strings; see `RunPayload`)."""
    return RunPayload(
        batch=spec.batch,
        batch_file=None if spec.batch_file is None else str(spec.batch_file),
        input_path=None if spec.input_path is None else str(spec.input_path),
        rel_input_path=spec.rel_input_path,
        database=str(spec.database),
        type=spec.type,
        configurations=spec.configurations,
        params=spec.params,
        platform=spec.platform,
        matrix=spec.matrix,
        output_dir=str(spec.output_dir),
        fingerprint=spec.fingerprint,
        command=spec.command,
        deferred=spec.deferred,
    )


class Preparer:
    """The scheduler's `prepare` hook for one plan."""

    def __init__(self, plan: Plan, *, forced: frozenset[str] = frozenset()) -> None:
        self.plan = plan
        self.forced = forced  # keys of runs that --force / --force-batch re-execute
        self.by_key = {run.key: run for run in plan.runs}
        self._written: set[str] = set()

    def __call__(self, job: Job, results: Mapping[str, RunResult]) -> Job | RunResult:
        listing = job.task.env.get("QA_PREVIOUS_BATCH")
        if listing and listing not in self._written:
            self._write_listing(listing, results)
        # a result made meanwhile (by another qaflow process) may be reused, unless the run is
        # forced or something it needs executed here: then it must execute too
        reuse = job.key not in self.forced and all(
            results[k].status is RunStatus.CACHED for k in job.needs
        )
        if reuse != job.task.reuse:
            job = dataclasses.replace(job, task=dataclasses.replace(job.task, reuse=reuse))
        if not job.run.deferred:
            return job
        try:
            spec = resolve(
                job.run, self.plan.links[job.key], self.by_key, lambda run: results[run.key].metrics
            )
        except InterpolationError as exc:
            now = time.time()
            return RunResult(
                job.key,
                RunStatus.FAILED,
                error=f"cannot evaluate its configurations with the upstream results: {exc}",
                started_at=now,
                ended_at=now,
            )
        task = dataclasses.replace(
            job.task,
            payload=payload_of(spec),
            command=spec.command if spec.command is not None else job.task.command,
        )
        return dataclasses.replace(job, run=spec, task=task)

    def _write_listing(self, listing: str, results: Mapping[str, RunResult]) -> None:
        runs = [
            self._listed(self.by_key[key], results.get(key))
            for key in self.plan.previous_files.get(listing, ())
        ]
        write_previous(Path(listing), runs)
        self._written.add(listing)

    def _listed(self, run: RunSpec, result: RunResult | None) -> dict[str, object]:
        data = self.plan.describe(run)
        if result is not None:
            data.update(status=result.status.value, metrics=result.metrics)
        return data
