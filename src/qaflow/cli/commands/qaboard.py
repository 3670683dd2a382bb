"""QA-Board's `qa get VARIABLE`: print one fact of the project, the commit or a run."""

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
