"""Settle: which runs of a plan are decided without executing them, before anything runs.

Policy, by `--action-on-existing`:
- run (the default): a run with an up-to-date result is reused, CACHED (`plan.reuse`):
  those are settled up front, and so is everything they need (a reused run's upstream is
  reused too). `--force` / `--force-batch` re-execute runs (`forced`).
- skip: a run whose output directory holds a verified successful result is not executed
  (CACHED, with those metrics); sync: no run executes, existing results are recorded as they are,
  and a run without results fails. Both decide each run when its turn comes (`decide`),
  reading its output directory.
- postprocess: nothing is settled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qaflow.execution.model import ActionOnExisting, Job, Options, RunResult, RunStatus
from qaflow.plan.model import Plan

if TYPE_CHECKING:  # the scheduler (and concurrent.futures): not on a no-op's path
    from qaflow.execution.scheduler import Decide


@dataclass(frozen=True)
class Decisions:
    """What the settle phase decided for an execution."""

    settled: dict[str, RunResult]  # results known up front (reused), by run key, in plan order
    known: frozenset[str]  # fingerprints with a successful run in the store (parts recorded)
    decide: Decide | None = None  # settles a run when its turn comes (skip, sync)
    forced: frozenset[str] = frozenset()  # keys of the runs --force / --force-batch re-execute


def settle(the_plan: Plan, options: Options, store: Any) -> Decisions:
    """The decisions for `the_plan` (see the module policy); `store` answers which
    fingerprints have a successful run, which spares reading their metrics.json."""
    forced = _forced(the_plan, options)
    if options.action_on_existing in ("sync", "skip"):
        return Decisions({}, frozenset(), existing(options.action_on_existing), forced)
    if options.action_on_existing == "postprocess":
        return Decisions({}, frozenset(), None, forced)
    from qaflow.plan.reuse import reusable

    known: set[str] = set()

    def recorded(fingerprints: Sequence[str]) -> set[str]:
        known.update(store.lookups.succeeded(fingerprints))
        return known

    cached = reusable(
        the_plan, force=options.force, force_batches=options.force_batches, recorded=recorded
    )
    return Decisions(cached, frozenset(known), None, forced)


def _forced(the_plan: Plan, options: Options) -> frozenset[str]:
    if options.force:
        return frozenset(run.key for run in the_plan.runs)
    if not options.force_batches:
        return frozenset()
    return frozenset(run.key for run in the_plan.runs if run.batch in options.force_batches)


def existing(action: ActionOnExisting) -> Decide:
    """The `decide` of --action-on-existing sync and skip (QA-Board's modes; see the policy)."""
    from qaflow.worker.context import MetricsError, read_metrics
    from qaflow.worker.rundir import Committed, read_result, reused

    def decide(job: Job) -> RunResult | None:
        now = time.time()
        if action == "skip":
            found = read_result(job.run.output_dir)
            return (
                reused(job.key, found, job.run.output_dir) if isinstance(found, Committed) else None
            )
        try:
            metrics = (
                read_metrics(job.run.output_dir)
                if (job.run.output_dir / "metrics.json").is_file()
                else None
            )
        except MetricsError as exc:
            metrics, problem = None, str(exc)
        else:
            problem = f"no existing results to sync in {job.run.output_dir}"
        if metrics is None:
            return RunResult(job.key, RunStatus.FAILED, error=problem, started_at=now, ended_at=now)
        failed = bool(metrics.get("is_failed"))
        error = "synced: the existing result had failed" if failed else None
        return RunResult(
            job.key,
            RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
            metrics=metrics,
            error=error,
            started_at=now,
            ended_at=now,
        )

    return decide
