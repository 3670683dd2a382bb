"""What the pages fetch while an execution runs: HTML fragments to swap in, and log chunks.

A fragment response carries `X-Live: 1` while there is still something to follow; the
page's script polls again only then (board.js).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from qaflow.errors import StoreError
from qaflow.web import asked, files, pages
from qaflow.web.deps import board

router = APIRouter()
LOG_CHUNK = 1024 * 1024  # bytes of log per poll at most


def _fragment(request: Request, name: str, live: bool, **context: Any) -> Response:
    response: Response = board(request).render(request, name, **context)
    if live:
        response.headers["X-Live"] = "1"
    return response


@router.get("/live/executions")
def executions_fragment(request: Request) -> Response:
    b = board(request)
    params = asked.params_of(request, *pages.FILTERS, "ref")
    context = pages.executions_context(b, params)
    # always live: an execution started from a terminal appears without a reload
    return _fragment(request, "_executions_rows.html", True, params=params, **context)


@router.get("/live/executions/{execution_id}/dag")
def dag_fragment(request: Request, execution_id: str) -> Response:
    b = board(request)
    record = pages.execution_or_404(b, execution_id)
    live = record.status == "running"
    return _fragment(request, "_dag.html", live, **pages.dag_context(b, record))


@router.get("/live/executions/{execution_id}/runs")
def runs_fragment(request: Request, execution_id: str) -> Response:
    b = board(request)
    record = pages.execution_or_404(b, execution_id)
    params = asked.params_of(request, "batch", "status", "q", "sort", "desc", "page")
    live = record.status == "running"
    return _fragment(request, "_runs_table.html", live, **pages.runs_context(b, record, params))


@router.get("/api/executions/{execution_id}")
def execution_json(request: Request, execution_id: str) -> Response:
    """The execution's status and its runs' counts per batch and status."""
    b = board(request)
    record = pages.execution_or_404(b, execution_id)
    return JSONResponse(
        {
            "id": record.id,
            "status": record.status,
            "counts": record.counts,
            "batches": (counts := b.store.board.batch_counts(record.id)),
            "edges": b.batch_edges(record.id, final=bool(counts)),
        }
    )


@router.get("/api/runs/{run_id}/log")
def log_chunk(request: Request, run_id: int, offset: int = 0) -> Response:
    """The run's log from byte `offset` on (at most LOG_CHUNK), its new end, and the run's
    status: the run page appends the text and polls again until the run has finished."""
    b = board(request)
    try:
        run = b.store.lookups.run(asked.run_id(run_id))
    except (StoreError, asked.NotFound) as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    log = Path(run.output_dir) / "log.txt"
    text, end = "", asked.log_offset(offset)
    if files.relative_url(b.project.storage, log) is not None and log.is_file():
        with log.open("rb") as f:
            f.seek(end)
            data = f.read(LOG_CHUNK)
        text, end = data.decode("utf-8", errors="replace"), end + len(data)
    return JSONResponse(
        {"text": text, "offset": end, "status": run.status.value, "finished": run.status.finished}
    )


@router.get("/live/executions/{execution_id}/status")
def execution_status(request: Request, execution_id: str) -> Response:
    b = board(request)
    record = pages.execution_or_404(b, execution_id)
    return _fragment(request, "_status.html", record.status == "running", execution=record)
