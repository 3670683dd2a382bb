"""`qa dag NAME`: the graph of batches that `qa batch NAME` would run."""

from __future__ import annotations

import click

from qaflow.cli.completion import batch_names
from qaflow.cli.main import Globals
from qaflow.config.batches import Catalog
from qaflow.plan.dagview import render
from qaflow.plan.planner import plan


@click.command()
@click.argument("names", nargs=-1, required=True, shell_complete=batch_names)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid", "json"]),
    default="text",
    show_default=True,
    help="text, Graphviz dot, Mermaid, or JSON (nodes with their run counts, edges).",
)
@click.pass_obj
def dag(g: Globals, names: tuple[str, ...], fmt: str) -> int:
    """Print the graph of batches NAME… need (with their run counts), without running anything."""
    project = g.project()
    catalog = Catalog.load(project)
    the_plan = plan(project, list(names), g.plan_options(), catalog=catalog)
    click.echo(render(the_plan, catalog, fmt))
    return 0
