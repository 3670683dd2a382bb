"""`qa run -i INPUT [CMD…]`: one run of the entrypoint, or of a shell command."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from qaflow.cli.main import Globals
from qaflow.execution.driver import execute
from qaflow.execution.preflight import preflight
from qaflow.plan.planner import plan_single


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "-i",
    "--input",
    "input_path",
    required=True,
    metavar="INPUT",
    help="The input: a path relative to the database, or absolute.",
)
# -- QA-Board parity (issue 15): begin
@click.option(
    "-o",
    "--output",
    "output_path",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Also make the results reachable at DIR (a link to the run's directory).",
)
@click.option(
    "--save-manifests-in-database",
    is_flag=True,
    help="If it succeeds, copy its manifest.inputs.json and manifest.outputs.json into the input folder.",
)
@click.option(
    "--no-postprocess",
    is_flag=True,
    help="Do not call the entrypoint's postprocess(metrics, context) (such a result is reused only by runs without postprocess).",
)
@click.option(
    "--keep-previous",
    is_flag=True,
    help="Accepted for QA-Board; no effect: qaflow never removes a previous result (each run starts in an empty directory of its own).",
)
# -- QA-Board parity: end
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(
    g: Globals,
    input_path: str,
    output_path: Path | None,
    save_manifests_in_database: bool,
    no_postprocess: bool,
    keep_previous: bool,
    command: tuple[str, ...],
) -> int:
    """Run the entrypoint's run(context) on INPUT; the arguments after INPUT reach it as
    `context.forwarded_args` (as in QA-Board). Without an entrypoint, they are a shell
    COMMAND run with {input_path} and {output_dir} filled in."""
    del keep_previous  # QA-Board's: see its help
    project = g.project()
    g.postprocess = not no_postprocess
    if command and project.entrypoint.is_file():
        g.forwarded_args = (*command, *g.forwarded_args)
        command = ()
    cmd = (command[0] if len(command) == 1 else shlex.join(command)) if command else None
    options = g.options(
        command=cmd,
        tee=True,
        concurrency=1,
        force=True,
        output_path=None if output_path is None else str(output_path.absolute()),
        save_manifests_in_database=save_manifests_in_database
        or "--save-manifests-in-database" in g.forwarded_args,
    )
    the_plan = plan_single(
        project,
        input_path,
        g.plan_options(),
        command=cmd,
        check=None if g.dryrun else lambda p: preflight(project, p, options),
    )
    if g.dryrun and cmd is not None:
        click.echo(
            f"would run: {cmd}  (input {the_plan.runs[0].input_path}, output {the_plan.runs[0].output_dir})"
        )
        return 0
    execution = execute(project, the_plan, options)
    return execution.exit_code
