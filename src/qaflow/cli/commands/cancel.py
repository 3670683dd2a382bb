"""`qa cancel ID`: stop a running execution."""

from __future__ import annotations

import click

from qaflow.cli.commands.status import find, open_store
from qaflow.cli.main import Globals
from qaflow.execution import background
from qaflow.results.present import summary_line


@click.command()
@click.argument("ref", metavar="ID")
@click.pass_obj
def cancel(g: Globals, ref: str) -> int:
    """Stop execution ID (or a prefix of it): its runs in flight are killed, the others
    cancelled. Its driver gets SIGTERM (SIGKILL if it has not ended within 10 s); if the
    driver is dead, the store is updated directly."""
    with open_store(g.project()) as store:
        record, was_running = background.cancel(store, find(store, ref).id)
    if not was_running:
        click.echo(f"execution {record.id} had already ended: {record.status}.")
    else:
        click.echo(summary_line(record))
    return 0
