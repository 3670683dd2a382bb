"""`qa wait ID`: block until an execution ends; exit with its code."""

from __future__ import annotations

import click

from qaflow.cli.commands.status import find, open_store
from qaflow.cli.main import Globals
from qaflow.execution.background import exit_code, wait_for
from qaflow.interpreter import resume_gc
from qaflow.results.present import summary_line


@click.command()
@click.argument("ref", metavar="ID")
@click.option("--timeout", type=float, metavar="S", help="Give up after S seconds (exit code 1).")
@click.pass_obj
def wait(g: Globals, ref: str, timeout: float | None) -> int:
    """Block until execution ID (or a prefix of it) ends, then print one line and exit as
    `qa batch` would have: 0 if every run succeeded (or was cached), else 1."""
    resume_gc()
    with open_store(g.project()) as store:
        try:
            record = wait_for(store, find(store, ref).id, timeout)
        except TimeoutError as exc:
            click.echo(f"{exc}; `qa cancel {ref}` stops it.", err=True)
            return 1
    click.echo(summary_line(record))
    return exit_code(record) or 0
