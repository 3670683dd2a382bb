"""What `qa batch` does for QA-Board's options and habits: `--batches-file`, the team cache
of `--share`, `--tuning-search`, `--action-on-pending`, `--prefix-outputs-path` links,
forwarded arguments and the environment QA-Board's runs see (`QA_BATCH`, `QA_BATCHES_FILES`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qaflow.cli.main import Globals
from qaflow.config.project import Project
from qaflow.errors import UsageError
from qaflow.plan.model import Plan, PlanOptions, RunSpec

if TYPE_CHECKING:
    from qaflow.execution.options import Options

# QA-Board's --batches-file, read by `with_batches_files` (qa batch, optimize, check-bit-accuracy)
BATCHES_FILE = click.option(
    "--batches-file",
    "batches_files",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Read the batches from FILE instead of inputs.batches (repeatable).",
)


def team_cache(g: Globals, project: Project, reusing: bool) -> PlanOptions:
    """The plan options, with the shared storage as a team cache for local runs that may
    reuse results (`plan.teamcache`)."""
    options = g.plan_options()
    shared = project.shared_storage
    if not reusing or shared is None or shared == project.storage or not shared.is_dir():
        return options
    return replace(options, shared_roots=(str(shared),))


@contextlib.contextmanager
def qaboard_batch_environment(project: Project) -> Iterator[None]:
    """QA_BATCH and QA_BATCHES_FILES as QA-Board's `qa batch` sets them, for the entrypoint's
    hooks while planning (runs get them from the driver); the environment is put back after."""
    variables = project.batch_environment()
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tuning_search_points(text: str | None, file: Path | None) -> list[dict[str, Any]] | None:
    """The points of --tuning-search / --tuning-search-file (`config.tuning_search`)."""
    if text is None and file is None:
        return None
    from qaflow.config.tuning_search import load

    return load(text, file)


def on_pending(project: Project, given: str | None) -> str:
    """--action-on-pending, else `outputs.action_on_pending`, else wait (as QA-Board)."""
    chosen = given or project.settings.get("outputs", {}).get("action_on_pending") or "wait"
    if chosen not in ("wait", "sync", "skip", "run"):
        raise UsageError(
            f"outputs.action_on_pending: {chosen!r} is not one of wait, sync, skip, run. Fix qaboard.yaml."
        )
    return str(chosen)


def linked(the_plan: Plan, options: Options, project: Project) -> list[RunSpec]:
    """The runs, each at the path --prefix-outputs-path links its results from (if given)."""
    if options.outputs_prefix is None:
        return the_plan.runs
    from qaflow.execution.publish import check_links, links_of

    check_links(the_plan, options, project.storage)
    links = links_of(the_plan, options, project.storage)
    return [run.evolve(output_dir=links[run.key]) for run in the_plan.runs]


def split_forwarded(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(batch names, forwarded args): forwarded from the first argument starting with `-`."""
    for i, name in enumerate(names):
        if name.startswith("-"):
            return names[:i], names[i:]
    return names, ()


def with_batches_files(project: Project, files: tuple[Path, ...]) -> Project:
    """The project reading its batches from `files` (each relative to the project's root, as
    in QA-Board, or else to the current directory) instead of `inputs.batches`."""
    if not files:
        return project
    paths = []
    for file in files:
        candidates = [file] if file.is_absolute() else [project.root / file, file.resolve()]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise UsageError(
                f"--batches-file {str(file)!r}: no such file (looked in {str(project.root)!r} and the current directory)."
            )
        paths.append(str(found.resolve()))
    return replace(project, batch_patterns=tuple(paths))
