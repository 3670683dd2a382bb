"""Completing runs when they start: what could not be known when planning.

A run that needs others gets its final fingerprint now: what they produced is known
(`qaflow.plan.reuse`, early cutoff), and so its output directory. If either changed since
planning, or its expressions read upstream metrics, it is resolved again, with the upstream
results and where they are (a failure to evaluate them fails the run, with the reason), and
its task gets the new payload (`payload_of`: the worker's typed view of a `RunSpec`). The
worker then reuses the fingerprint's committed result if there is one, unless it is forced. A pipeline step gets
the listing of the previous step's runs written to `$QA_PREVIOUS_BATCH`, once.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path

from qaflow.errors import InterpolationError
from qaflow.execution.model import Job
from qaflow.plan.fingerprint import fingerprint_of
from qaflow.plan.link import resolve
from qaflow.plan.model import PENDING, PRODUCED, Plan, RunSpec
from qaflow.plan.pipeline import write_previous
from qaflow.worker.model import RunResult, RunStatus, hostname
from qaflow.worker.rundir import Committed, read_result, reused
from qaflow.worker.task import RunPayload


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
        parts=spec.parts,
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
        try:
            job = self._final(job, results)
        except InterpolationError as exc:
            now = time.time()
            return RunResult(
                job.key,
                RunStatus.FAILED,
                error=f"cannot evaluate its configurations with the upstream results: {exc}",
                started_at=now,
                ended_at=now,
            )
        # a result committed meanwhile (by another qaflow process, or before an upstream
        # run re-executed with the same outputs) is reused, unless the run is forced
        reuse = job.key not in self.forced
        if reuse and job.task.action == "run":
            found = read_result(job.run.output_dir)  # committed results are immutable:
            if isinstance(found, Committed):  # reading one needs no lock
                return _reused(job, found)
        if reuse != job.task.reuse:
            job = dataclasses.replace(job, task=dataclasses.replace(job.task, reuse=reuse))
        return job

    def _final(self, job: Job, results: Mapping[str, RunResult]) -> Job:
        """The job with its final fingerprint (what its upstream runs produced, now known)
        and output directory, and its expressions evaluated again if either changed."""
        spec = job.run
        changed = False
        if spec.upstream and spec.parts is not None:
            tokens = [_token(results[key]) for key in spec.upstream if key in results]
            parts = {**spec.parts, "upstream": sorted(set(tokens))}
            digest = fingerprint_of(parts)
            if digest != spec.fingerprint:
                output_dir = spec.output_dir.with_name(digest[:12])
                spec = spec.evolve(fingerprint=digest, parts=parts, output_dir=output_dir)
                changed = True
        if not (changed or spec.deferred):
            return job
        link = self.plan.links.get(job.key)
        if link is not None:
            moved: dict[str, RunSpec] = {}  # where the upstream results are, now
            for key in link.needs:
                where = results[key].output_dir if key in results else None
                if where and key in self.by_key:
                    moved[key] = self.by_key[key].evolve(output_dir=Path(where))
            by_key = ChainMap(moved, self.by_key)
            raw = (
                spec
                if link.configurations is None
                else spec.evolve(configurations=link.configurations)
            )
            spec = resolve(raw, link, by_key, lambda run: results[run.key].metrics)
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
            if result.output_dir:
                data.update(output_dir=result.output_dir)
        return data


def _reused(job: Job, found: Committed) -> RunResult:
    return reused(
        job.key,
        found,
        job.run.output_dir,
        host=hostname(),
        pid=os.getpid(),  # decided when it started (the summary's "reused after upstream re-ran")
        fingerprint=job.run.fingerprint,
        parts=job.run.parts,
    )


def _token(result: RunResult) -> str:
    """What a downstream fingerprint covers of an upstream result: the digest of what it
    produced, else (a result not read, e.g. synced) its fingerprint."""
    if result.digest:
        return PRODUCED + result.digest
    return PENDING + (result.fingerprint or result.key)
