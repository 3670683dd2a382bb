"""The compare page: `qa compare REF NEW` as a table, regressions highlighted, plots per
metric, and one click to pick another reference; and triage: the matched runs sorted by the
change of a chosen metric, worst first, on the compare page and on an execution's page."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qaflow.errors import QaflowError
from qaflow.results.compare import Comparison, Row
from qaflow.results.refs import Compared, compare_refs, resolve_ref
from qaflow.store.records import ExecutionRecord
from qaflow.web import asked, charts
from qaflow.web.asked import params_of
from qaflow.web.deps import Board, board

router = APIRouter()
MAX_ROWS = 400  # rows shown per batch; `only=changed|regressions` narrows a big comparison
TRIAGE_PAGE = 100
KEPT = 4  # comparisons of finished executions kept in memory
_lock = threading.Lock()


@router.get("/compare")
def compare_page(request: Request) -> Response:
    b = board(request)
    params = params_of(request, "ref", "new", "only", "batch", "sort")
    recent = b.store.board.find_executions(limit=30)
    context: dict[str, Any] = {"params": params, "recent": recent, "comparison": None}
    if params["ref"] and params["new"]:
        try:
            context.update(_compared(request, params))
        except QaflowError as exc:
            return b.render(request, "compare.html", status_code=404, error=str(exc), **context)
    return b.render(request, "compare.html", error=None, **context)


def compared_once(b: Board, ref: str, new: str, batch: str | None) -> Compared:
    """`compare_refs`, kept while both executions are finished and metrics.yaml unchanged:
    a finished execution's runs no longer change, so re-sorting, paging the triage table or
    another plot reuses the comparison instead of reading 2 x 10,000 runs again."""
    sides = [resolve_ref(b.store, name) for name in (ref, new)]
    if any(side.status == "running" for side in sides):
        return compare_refs(b.store, sides[0].id, sides[1].id, metrics=b.metrics(), batch=batch)
    try:
        stamp = b.project.metrics_path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    key = (sides[0].id, sides[1].id, batch, stamp)
    with _lock:
        found = b.comparisons.get(key)
    if found is None:
        found = compare_refs(b.store, sides[0].id, sides[1].id, metrics=b.metrics(), batch=batch)
    with _lock:
        b.comparisons[key] = found
        b.comparisons.move_to_end(key)
        while len(b.comparisons) > KEPT:
            b.comparisons.popitem(last=False)
    return found


def _compared(request: Request, params: dict[str, str]) -> dict[str, Any]:
    b = board(request)
    compared = compared_once(b, params["ref"], params["new"], params["batch"] or None)
    comparison, ref, new = compared.comparison, compared.ref, compared.new
    sort = _sort_metric(comparison, params["sort"])
    shown = {
        batch.batch: _shown(worst_first(batch.rows, comparison, sort), params["only"])
        for batch in comparison.batches
    }
    link = run_links(request, comparison)
    found = charts.compare_charts(comparison, link)
    return {
        "comparison": comparison,
        "run_link": link,
        "charts": found,
        "plotted": charts.any_figure(found),
        "shown": shown,
        "sort": sort,
        "ref_record": ref,
        "new_record": new,
        "regressions": len(comparison.regressions),
    }


def run_links(request: Request, comparison: Comparison) -> Callable[[Row], str]:
    """The URL of a row's new run, with the reference execution chosen. The route is looked
    up once: url_for per row costs a second over 2 x 10,000 rows and their plots."""
    base = request.url_for("run_by_key", execution_id=comparison.new.id, key="-").path[:-1]
    ref = quote(comparison.ref.id, safe="")

    def link(row: Row) -> str:
        return f"{base}{quote(row.new.key, safe='')}?ref={ref}"

    return link


def _shown(rows: Sequence[Row], only: str) -> list[Row]:
    if only == "regressions":
        rows = [row for row in rows if row.regression]
    elif only == "changed":
        rows = [row for row in rows if row.changed]
    return list(rows[:MAX_ROWS])


# ---------------------------------------------------------------- triage
def _sort_metric(comparison: Comparison, name: str) -> str | None:
    """The metric to sort by, if it is compared (else plan order)."""
    return name if name and any(spec.key == name for spec in comparison.metrics) else None


def worst_first(rows: Sequence[Row], comparison: Comparison, metric: str | None) -> list[Row]:
    """The rows by how much `metric` got worse (following smaller_is_better; for a metric
    with no direction, by how much it changed), the largest first; a run that failed where
    its reference succeeded before any; rows without a number last. No metric: plan order."""
    if metric is None:
        return list(rows)
    index = next(i for i, spec in enumerate(comparison.metrics) if spec.key == metric)
    spec = comparison.metrics[index]

    def badness(row: Row) -> tuple[int, float]:
        cell = row.metrics[index]
        if row.failed:
            return (0, 0.0)
        if cell.delta is None:
            return (2, 0.0)
        if spec.described:
            return (1, -spec.worsening(float(cell.ref), float(cell.new)))
        return (1, -abs(cell.delta))

    return sorted(rows, key=badness)  # stable: ties keep plan order


def triage_context(
    b: Board, request: Request, record: ExecutionRecord, params: dict[str, str]
) -> dict[str, Any]:
    """The execution's runs matched with those of `params["ref"]`, worst first by the change
    of `params["triage"]` (default: the first compared metric), one page (`tpage`) of them."""
    try:
        compared = compared_once(b, params["ref"], record.id, params["batch"] or None)
    except QaflowError as exc:
        return {"triage_error": str(exc)}
    comparison = compared.comparison
    sort = _sort_metric(comparison, params["triage"]) or next(
        (spec.key for spec in comparison.metrics), None
    )
    rows = worst_first(list(comparison.rows), comparison, sort)
    page = asked.page_number(params.get("tpage"))
    pages = max(1, -(-len(rows) // TRIAGE_PAGE))
    return {
        "triage": comparison,
        "run_link": run_links(request, comparison),
        "triage_ref": compared.ref,
        "triage_sort": sort,
        "triage_rows": rows[(page - 1) * TRIAGE_PAGE : page * TRIAGE_PAGE],
        "triage_total": len(rows),
        "triage_page": page,
        "triage_pages": pages,
    }
