"""QA-Board's small commands: `qa get VARIABLE`, `qa postprocess -i INPUT`, `qa sync -i INPUT`."""

from __future__ import annotations

import difflib
import getpass
import json
import os
from pathlib import Path
from typing import Any

import click

from qaflow.cli.main import Globals
from qaflow.config.git import commit_facts, is_ci
from qaflow.config.project import HOST
from qaflow.errors import UsageError


@click.command()
@click.option("-i", "--input", "input_path", metavar="INPUT", help="Also know this run's facts.")
@click.argument("variable")
@click.pass_obj
def get(g: Globals, input_path: str | None, variable: str) -> int:
    """Print VARIABLE: project, subproject, commit_id, commit_branch, user, output_dir (with -i)…"""
    facts = project_facts(g)
    if input_path is not None:
        from qaflow.plan.planner import plan_single

        project = g.project()
        [run] = plan_single(project, input_path, g.plan_options()).runs
        facts |= {
            "input_path": run.input_path,
            "rel_input_path": run.rel_input_path,
            "output_dir": run.output_dir,
            "output_directory": run.output_dir,
            "configurations": list(run.configurations),
            "params": run.params,
            "database": run.database,
        }
    facts["branch_ci_dir"] = facts["artifacts_branch_root"] = facts["outputs_root"]
    if variable not in facts:
        close = difflib.get_close_matches(variable, list(facts), n=1)
        raise UsageError(
            f"qa get: unknown variable {variable!r}"
            + (f"; did you mean {close[0]!r}?" if close else ".")
            + f" Known: {', '.join(sorted(facts))}."
        )
    click.echo(_shown(facts[variable]))
    return 0


def project_facts(g: Globals) -> dict[str, Any]:
    """The names QA-Board's `qa get` knows about the project and the commit."""
    project = g.project()
    user = os.environ.get("QA_USER") or getpass.getuser()
    name = Path(project.name)
    root_name = Path(*name.parts[: len(name.parts) - len(project.subproject.parts)])
    return {
        "project": project.name,
        "project_root": root_name.as_posix(),
        "subproject": project.subproject.as_posix(),
        "root_qatools": project.root,
        "project_dir": project.root / project.subproject,
        "user": user,
        "is_ci": is_ci(),
        "platform": g.platform or HOST,
        "label": g.label,
        "batch_label": g.label,
        "database": g.database or project.database,
        "configurations": list(g.configs or project.default_configs),
        "entrypoint": project.entrypoint,
        "storage": project.storage,
        "outputs_root": project.shared_storage,
        "config": project.settings,
        "input_type": g.type or project.default_type,
        **commit_facts(project.root, user),
    }


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "-i", "--input", "input_path", required=True, metavar="INPUT", help="The run's input."
)
@click.argument("forwarded_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def postprocess(g: Globals, input_path: str, forwarded_args: tuple[str, ...]) -> int:
    """Run only the entrypoint's postprocess(metrics, context) on the results of `qa run -i INPUT`."""
    return _single(g, input_path, forwarded_args, "postprocess")


@click.command()
@click.option(
    "-i", "--input", "input_path", required=True, metavar="INPUT", help="The run's input."
)
@click.pass_obj
def sync(g: Globals, input_path: str) -> int:
    """Record the results of `qa run -i INPUT` as its metrics.json says, without running it."""
    return _single(g, input_path, (), "sync")


def _single(g: Globals, input_path: str, forwarded: tuple[str, ...], action: str) -> int:
    from qaflow.execution.driver import execute
    from qaflow.plan.planner import plan_single

    g.forwarded_args = (*forwarded, *g.forwarded_args)
    project = g.project()
    the_plan = plan_single(project, input_path, g.plan_options())
    run = the_plan.runs[0]
    if not (run.output_dir / "metrics.json").is_file():
        raise UsageError(
            f"qa {action} -i {input_path}: this run has no results yet (nothing in {str(run.output_dir)!r}). Run it first: `qa run -i {input_path}`."
        )
    options = g.options(action_on_existing=action, tee=True, concurrency=1, runner="local")
    return execute(project, the_plan, options).exit_code
