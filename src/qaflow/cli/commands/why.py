"""`qa why NAME`: for each run that is not up to date, what changed since its last success."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from qaflow.cli.main import Globals
from qaflow.plan.fingerprint import Parts, explain
from qaflow.plan.model import Plan, RunSpec
from qaflow.plan.planner import plan
from qaflow.plan.reuse import reusable
from qaflow.worker.model import RunStatus


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def why(g: Globals, names: tuple[str, ...]) -> int:
    """Say, for each run of NAME… that would execute, which part of its fingerprint changed
    since its last successful result: input content, configuration, code, upstream runs."""
    from qaflow.store import Store

    project = g.project()
    the_plan = plan(project, list(names), g.plan_options())
    cached = reusable(the_plan)
    stale = [run for run in the_plan.runs if run.key not in cached]
    with Store.open(project.database_url, storage=project.storage, readonly=True) as store:
        last = store.lookups.last_successes([run.key for run in stale])
        by_input = store.lookups.last_successes_by_input(
            [run.batch for run in stale if run.key not in last]
        )
        previous = {
            run.key: last.get(run.key)
            or by_input.get((run.batch, run.rel_input_path, run.platform))
            for run in stale
        }
        # a reused run records no fingerprint parts: the run it reused holds them
        unrecorded = [
            last.fingerprint
            for last in previous.values()
            if last is not None and last.fingerprint and "fingerprint_parts" not in last.spec
        ]
        parts = store.lookups.fingerprint_parts(unrecorded)
        lines = [
            _line(run, reasons(the_plan, run, previous[run.key], store, parts)) for run in stale
        ]
    for line in lines:
        click.echo(line)
    click.echo(f"{len(cached)} run(s) up to date, {len(stale)} would run.")
    return 0


def reasons(
    the_plan: Plan, run: RunSpec, last: object, store: object, parts: Mapping[str, Any]
) -> list[str]:
    """Plain words for why `run` is not up to date; `parts`: fingerprint parts by fingerprint,
    for a `last` that did not record its own."""
    if last is None:
        return [_never(run, store)]
    old = getattr(last, "spec", {}).get("fingerprint_parts") or parts.get(
        getattr(last, "fingerprint", None) or ""
    )
    if not old or not run.parts:
        return ["its last result was made by a qaflow that did not record what it depended on"]
    names = {
        r.fingerprint: f"{r.batch} {r.rel_input_path or ''}".strip()
        for r in the_plan.runs
        if r.fingerprint
    }
    found = explain(Parts.from_dict(old), Parts.from_dict(run.parts), names=names)
    if found:
        return found
    upstream = list(the_plan.needs(run.key))
    if upstream:
        return ["a run it needs will execute, so it executes too"]
    return [f"its last result is gone from {run.output_dir} (removed by `qa gc`, or by hand)"]


def _never(run: RunSpec, store: object) -> str:
    history = store.lookups.find_runs(run.key)  # type: ignore[attr-defined]
    mine = [r for r in history if r.key == run.key and r.status is not RunStatus.PENDING]
    if not mine:
        return "it has never run"
    return f"it has never succeeded (last: {mine[0].status.value}{': ' + mine[0].error.splitlines()[0] if mine[0].error else ''})"


def _line(run: RunSpec, why: list[str]) -> str:
    return f"{run.batch} {run.rel_input_path or '-'}: " + "; ".join(why)
