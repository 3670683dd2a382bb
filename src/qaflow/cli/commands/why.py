"""`qa why NAME`: for each run that is not up to date, what changed since its last success."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from qaflow.cli.completion import batch_names
from qaflow.cli.main import Globals
from qaflow.plan.fingerprint import Parts, explain
from qaflow.plan.model import PENDING, PRODUCED, Plan, RunSpec
from qaflow.plan.planner import plan
from qaflow.plan.reuse import reusable, waiting
from qaflow.worker.model import RunStatus
from qaflow.worker.rundir import FAILED_RESULT, MISSING_FILES, result_problem


@click.command()
@click.argument("names", nargs=-1, required=True, shell_complete=batch_names)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: {runs: [{batch, input, key, output_dir, reasons}], up_to_date, would_run, waiting_on_upstream}.",
)
@click.pass_obj
def why(g: Globals, names: tuple[str, ...], as_json: bool) -> int:
    """Say, for each run of NAME… that would execute, which part of its fingerprint changed
    since its last successful result: input content, configuration, code, upstream runs."""
    from qaflow.store import Store

    project = g.project()
    the_plan = plan(project, list(names), g.plan_options())
    cached = reusable(the_plan)
    stale = [run for run in the_plan.runs if run.key not in cached]
    with Store.open(project.database_url, storage=project.storage, readonly=True) as store:
        previous, parts = _previous(store, stale)
        same_key = {k: p for k, p in parts.items() if previous[k] and previous[k].key == k}
        waits = waiting(the_plan, cached, last_parts=same_key)
        found = [
            (run, [_waits(the_plan, run, cached)])
            if run.key in waits
            else (run, reasons(the_plan, run, previous[run.key], store, parts.get(run.key)))
            for run in stale
        ]
    if as_json:
        click.echo(json.dumps(_as_json(found, len(cached), len(waits)), indent=2))
        return 0
    for run, why_not in found:
        click.echo(_line(run, why_not))
    waiting_part = f", {len(waits)} wait(s) on upstream runs" if waits else ""
    click.echo(
        f"{len(cached)} run(s) up to date, {len(stale) - len(waits)} would run{waiting_part}."
    )
    return 0


def _previous(store: Any, stale: list[RunSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per stale run: its last success (by key, else by batch and input: a run whose
    configuration changed) and that one's fingerprint parts (a reused run records none: the
    run it reused holds them)."""
    last = store.lookups.last_successes([run.key for run in stale])
    by_input = store.lookups.last_successes_by_input(
        [run.batch for run in stale if run.key not in last]
    )
    previous = {
        run.key: last.get(run.key) or by_input.get((run.batch, run.rel_input_path, run.platform))
        for run in stale
    }
    unrecorded = [
        record.fingerprint
        for record in previous.values()
        if record is not None and record.fingerprint and "fingerprint_parts" not in record.spec
    ]
    recorded = store.lookups.fingerprint_parts(unrecorded)
    parts = {
        key: record.spec.get("fingerprint_parts") or recorded.get(record.fingerprint or "")
        for key, record in previous.items()
        if record is not None
    }
    return previous, parts


def _waits(the_plan: Plan, run: RunSpec, cached: Mapping[str, Any]) -> str:
    ups = [_name(by) for key in run.upstream if key not in cached for by in _spec(the_plan, key)]
    shown = ", ".join(ups[:3]) + (f" (and {len(ups) - 3} more)" if len(ups) > 3 else "")
    return f"it waits on {shown}, which will run; it is reused if what they produce does not change"


def _spec(the_plan: Plan, key: str) -> list[RunSpec]:
    return [run for run in the_plan.runs if run.key == key][:1]


def _name(run: RunSpec) -> str:
    return f"{run.batch} {run.rel_input_path or ''}".strip()


def _as_json(found: list[tuple[RunSpec, list[str]]], up_to_date: int, waits: int) -> dict[str, Any]:
    return {
        "runs": [
            {
                "batch": run.batch,
                "input": run.rel_input_path,
                "key": run.key,
                "output_dir": str(run.output_dir),
                "reasons": why_not,
            }
            for run, why_not in found
        ],
        "up_to_date": up_to_date,
        "would_run": len(found) - waits,
        "waiting_on_upstream": waits,
    }


def reasons(
    the_plan: Plan, run: RunSpec, last: object, store: object, old: Mapping[str, Any] | None
) -> list[str]:
    """Plain words for why `run` is not up to date, `old` the fingerprint parts of its last
    success `last`."""
    if last is None:
        return [_never(run, store)]
    if not old or not run.parts:
        return ["its last result was made by a qaflow that did not record what it depended on"]
    names = {}
    for r in the_plan.runs:
        names[PENDING + (r.fingerprint or "")] = _name(r)
        if r.key in the_plan.committed:
            names[PRODUCED + the_plan.committed[r.key].digest] = _name(r)
    found = explain(Parts.from_dict(old), Parts.from_dict(run.parts), names=names)
    if found:
        return found
    problem = result_problem(run.output_dir)
    if problem == MISSING_FILES:
        return [f"{MISSING_FILES} ({run.output_dir})"]
    if problem == FAILED_RESULT:
        return [f"{FAILED_RESULT} ({run.output_dir})"]
    if run.upstream:
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
