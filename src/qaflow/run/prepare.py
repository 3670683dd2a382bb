"""Completing runs when they start: what could not be known when planning.

A run whose expressions read upstream metrics is resolved again now, with its upstream
results (a failure to evaluate them fails the run, with the reason). A pipeline step gets
the listing of the previous step's runs written to `$QA_PREVIOUS_BATCH`, once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

from qaflow.errors import InterpolationError
from qaflow.plan.link import resolve
from qaflow.plan.pipeline import write_previous
from qaflow.plan.planner import Plan, RunSpec
from qaflow.run.model import Job
from qaflow.worker.model import RunResult, RunStatus


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
            spec=spec.to_dict(),
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
