"""The compare page: `qa compare REF NEW` as a table, regressions highlighted, a chart per
metric, and one click to pick another reference."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qaflow.errors import QaflowError
from qaflow.results.compare import Row
from qaflow.results.metrics import Metrics
from qaflow.results.refs import compare_refs
from qaflow.web import charts
from qaflow.web.deps import board
from qaflow.web.asked import params_of

router = APIRouter()
MAX_ROWS = 400  # rows shown per batch; `only=changed|regressions` narrows a big comparison


@router.get("/compare")
def compare_page(request: Request) -> Response:
    b = board(request)
    params = params_of(request, "ref", "new", "only", "batch")
    recent = b.store.board.find_executions(limit=30)
    context: dict[str, Any] = {"params": params, "recent": recent, "comparison": None}
    if params["ref"] and params["new"]:
        try:
            context.update(_compared(request, params))
        except QaflowError as exc:
            return b.render(request, "compare.html", status_code=404, error=str(exc), **context)
    return b.render(request, "compare.html", error=None, **context)


def _compared(request: Request, params: dict[str, str]) -> dict[str, Any]:
    b = board(request)
    compared = compare_refs(
        b.store,
        params["ref"],
        params["new"],
        metrics=Metrics.load(b.project.metrics_path),
        batch=params["batch"] or None,
    )
    comparison, ref, new = compared.comparison, compared.ref, compared.new
    return {
        "comparison": comparison,
        "charts": charts.charts(comparison),
        "shown": {batch.batch: _shown(batch.rows, params["only"]) for batch in comparison.batches},
        "ref_record": ref,
        "new_record": new,
        "regressions": len(comparison.regressions),
    }


def _shown(rows: tuple[Row, ...], only: str) -> list[Row]:
    if only == "regressions":
        rows = tuple(row for row in rows if row.regression)
    elif only == "changed":
        rows = tuple(row for row in rows if row.changed)
    return list(rows[:MAX_ROWS])
