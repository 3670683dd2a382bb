"""`qa history NAME --metric M`: a metric's summary over the last executions of a batch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from qaflow.cli.commands.status import open_store
from qaflow.errors import UsageError
from qaflow.results.present import ago, git_text
from qaflow.results.series import STATS, summarize

if TYPE_CHECKING:
    from qaflow.cli.main import Globals


@click.command()
@click.argument("batch", metavar="NAME")
@click.option(
    "--metric", "-m", "metric_name", metavar="M", help="Default: default_metric of metrics.yaml."
)
@click.option("--branch", help="Only executions of this git branch.")
@click.option("--label", help="Only executions with this label.")
@click.option("--limit", default=20, show_default=True, metavar="N", help="Executions shown.")
@click.option(
    "--stat",
    type=click.Choice(list(STATS)),
    default="mean",
    show_default=True,
    help="How the batch's runs are summarised into one value per execution.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def history(
    g: Globals,
    batch: str,
    metric_name: str | None,
    branch: str | None,
    label: str | None,
    limit: int,
    stat: str,
    as_json: bool,
) -> int:
    """The summary of a metric over the batch NAME's successful runs, for each of the last
    executions that ran it (of a git branch or a label), oldest first, with a sparkline."""
    from qaflow.results.compare_format import aligned, sparkline
    from qaflow.results.metrics import Metrics

    if branch and label:
        raise UsageError("Give --branch or --label, not both.")
    if limit < 1:
        raise UsageError(f"--limit {limit}: give at least 1.")
    project = g.project()
    metrics = Metrics.load(project.metrics_path)
    metric = metric_name or metrics.default_metric
    if metric is None:
        raise UsageError(
            "Which metric? Give --metric M, or set `default_metric` in "
            f"{project.metrics_path.relative_to(project.root)}."
        )
    with open_store(project) as store:
        found = store.history.metric_history(batch, metric, label=label, branch=branch, limit=limit)
    if not found:
        scope = f" of branch {branch!r}" if branch else f" with label {label!r}" if label else ""
        raise UsageError(f"No execution{scope} ran batch {batch!r}: nothing to show.")
    spec = metrics.spec(metric)
    points = [(record, summarize(values, STATS[stat]), len(values)) for record, values in found]
    if as_json:
        click.echo(json.dumps(_json(points, metric, stat), indent=1))
        return 0
    values = [value for _, value, _ in points]
    if all(v is None for v in values):
        raise UsageError(
            f"No successful run of batch {batch!r} in these executions has a number for "
            f"metric {metric!r}: check its name (--metric)."
        )
    rows = [
        [
            record.id,
            record.label,
            git_text(record),
            ago(record.started_at),
            str(count),
            spec.format(value),
        ]
        for record, value, count in points
    ]
    headers = ["execution", "label", "git", "started", "runs", f"{stat} {spec.short_label}"]
    click.echo(aligned([headers, *rows]))
    numbers = [v for v in values if v is not None]
    click.echo(
        f"\n{spec.short_label} {sparkline(values)}  oldest → newest; "
        f"min {spec.format(min(numbers))}, max {spec.format(max(numbers))}, "
        f"last {spec.format(numbers[-1])}"
    )
    return 0


def _json(points: list[tuple[Any, float | None, int]], metric: str, stat: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "stat": stat,
        "executions": [
            {
                "id": record.id,
                "label": record.label,
                "git_commit": record.git.commit,
                "git_branch": record.git.branch,
                "started_at": record.started_at,
                "runs": count,
                "value": value,
            }
            for record, value, count in points
        ],
    }
