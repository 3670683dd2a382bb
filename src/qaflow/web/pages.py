"""The board's pages: executions, an execution, a run, a comparison; and the files of runs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from qaflow.errors import StoreError
from qaflow.execution.background import is_alive, observe
from qaflow.results.compare import MetricDelta, delta
from qaflow.results.metrics import BOOKKEEPING, Metrics, MetricSpec
from qaflow.results.series import STATS, summarize
from qaflow.store.records import ExecutionRecord, RunRecord, RunSummary
from qaflow.web import asked, charts, comparison, dag, files, images, present
from qaflow.web.asked import NotFound, params_of
from qaflow.web.deps import Board, board

router = APIRouter()
PAGE_SIZE = 100
LOG_TAIL = 256 * 1024  # bytes of a log shown when the page opens; the rest follows live
FILTERS = ("project", "label", "git_branch", "git_commit", "status")


# ---------------------------------------------------------------- executions
@router.get("/")
def executions_page(request: Request) -> Response:
    b = board(request)
    params = params_of(request, *FILTERS, "ref")
    return b.render(
        request,
        "executions.html",
        choices=b.store.board.execution_values("project", "label", "git_branch"),
        params=params,
        **executions_context(b, params),
    )


def executions_context(b: Board, params: dict[str, str]) -> dict[str, Any]:
    """What the executions table shows (also its live fragment)."""
    found = b.store.board.find_executions(
        limit=100,
        project=params.get("project"),
        label=params.get("label"),
        git_branch=params.get("git_branch"),
        git_commit=params.get("git_commit"),
        status=params.get("status"),
    )
    records = [_observed(b, r) for r in found]
    return {
        "executions": records,
        "batches": b.store.board.batches_of([r.id for r in records]),
        "progress": {r.id: present.progress(r.counts) for r in records},
        "ref": params.get("ref"),
    }


def _observed(b: Board, record: ExecutionRecord) -> ExecutionRecord:
    """As `qa status` shows it: running with a dead driver is recorded interrupted."""
    if record.status == "running" and not is_alive(record):
        return observe(b.store, record.id)
    return record


# ---------------------------------------------------------------- an execution
@router.get("/executions/{execution_id}")
def execution_page(request: Request, execution_id: str) -> Response:
    b = board(request)
    record = execution_or_404(b, execution_id)
    params = params_of(
        request, "batch", "status", "q", "sort", "desc", "page", "ref", "triage", "tpage"
    )
    others = [
        r
        for r in b.store.board.find_executions(limit=30, project=record.project)
        if r.id != record.id
    ]
    context = {**dag_context(b, record), **runs_context(b, record, params)}
    if params["ref"]:
        context.update(comparison.triage_context(b, request, record, params))
    if params["batch"]:
        context["history"] = history_charts(b, params["batch"], context["metric_specs"])
    return b.render(
        request,
        "execution.html",
        others=others,
        **context,
    )


def dag_context(b: Board, record: ExecutionRecord) -> dict[str, Any]:
    counts = b.store.board.batch_counts(record.id)
    edges = b.batch_edges(record.id, final=bool(counts))
    drawing = dag.draw(counts, edges, b.store.board.batch_names(record.id))
    return {"drawing": drawing, "execution": record}


def runs_context(b: Board, record: ExecutionRecord, params: dict[str, str]) -> dict[str, Any]:
    """One page of the runs table, its metric columns, and the pages around it."""
    page = asked.page_number(params.get("page"))
    statuses = present.statuses_of(params["status"]) if params.get("status") else []
    total, rows = b.store.board.run_table(
        record.id,
        batch=params.get("batch") or None,
        statuses=statuses,
        text=params.get("q") or None,
        sort=params.get("sort", ""),
        descending=params.get("desc") == "1",
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "metric_specs": metric_columns(b, rows),
        "batches": b.store.board.batch_names(record.id),
        "params": params,
        "execution": record,
    }


def history_charts(b: Board, batch: str, specs: list[MetricSpec]) -> list[dict[str, Any]]:
    """`qa history`'s series of the batch, as line charts: the default metric (else the
    metric columns, at most 3), the mean of its successful runs per execution, oldest first."""
    described = b.metrics()
    names = [described.default_metric] if described.default_metric else []
    names += [spec.key for spec in specs if spec.key not in names]
    figures = []
    for name in names[:3]:
        found = b.store.history.metric_history(batch, name, limit=20)
        points = [
            (record.id, record.label, summarize(values, STATS["mean"]), len(values))
            for record, values in found
        ]
        if sum(value is not None for _, _, value, _ in points) >= 1:
            figures.append(charts.history_chart(described.spec(name), batch, points))
    return figures


def metric_columns(b: Board, rows: list[RunSummary]) -> list[MetricSpec]:
    """metrics.yaml's main metrics, else the numeric metrics of the rows shown."""
    metrics = b.metrics()
    if metrics.main_metrics:
        return [metrics.spec(key) for key in metrics.main_metrics]
    return [metrics.spec(key) for key in present.numeric_names([row.metrics for row in rows])]


# ---------------------------------------------------------------- a run
@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int) -> Response:
    b = board(request)
    try:
        run = b.store.lookups.run(asked.run_id(run_id))
    except StoreError as exc:
        raise NotFound(str(exc)) from None
    record = _observed(b, b.store.lookups.execution(run.execution_id))
    if record.status != "running" and not run.status.finished:
        run = b.store.lookups.run(run_id)  # observing may have just settled it
    ref_id = params_of(request, "ref")["ref"]
    same = [r for _, r in b.store.board.same_runs(run.key, limit=8) if r.id != run.execution_id]
    known = {r.id for r in same} | {record.id}
    recent = b.store.board.find_executions(limit=8, project=record.project)
    choices = same + [r for r in recent if r.id not in known][: max(0, 8 - len(same))]
    ref_run = None
    if ref_id:
        with contextlib.suppress(StoreError):
            ref_run = b.store.board.matching_run(b.store.lookups.resolve_execution(ref_id).id, run)
    outputs, truncated = files.list_outputs(b.project.storage, Path(run.output_dir))
    ref_files = {}
    if ref_run is not None:
        listed, _ = files.list_outputs(b.project.storage, Path(ref_run.output_dir))
        ref_files = {f.name: f for f in listed}
    storage = b.project.storage
    viewed = [
        (
            f,
            images.shown(request, storage, f),
            images.shown(request, storage, ref_files[f.name]) if f.name in ref_files else None,
        )
        for f in outputs
        if f.kind == "image"
    ]
    log_text, log_offset = _log_tail(b, Path(run.output_dir) / "log.txt")
    described = b.metrics()
    return b.render(
        request,
        "run.html",
        run=run,
        execution=record,
        choices=choices,
        ref_id=ref_id,
        ref_run=ref_run,
        ref_files=ref_files,
        viewed=viewed,
        outputs=[f for f in outputs if f.name != "log.txt"],
        truncated=truncated,
        log_text=log_text,
        log_offset=log_offset,
        served=files.relative_url(b.project.storage, Path(run.output_dir)) is not None,
        metrics=run_metrics(described, run, ref_run),
        metric_spec=described.spec,
    )


def run_metrics(metrics: Metrics, run: RunRecord, ref_run: RunRecord | None) -> list[MetricDelta]:
    """Every metric of the run (and of its reference), described ones first, each judged
    against the reference as `qa compare` would."""
    theirs = ref_run.metrics if ref_run is not None else {}
    names = dict.fromkeys([*metrics.available, *run.metrics, *theirs])
    present_names = [
        n
        for n in names
        if (n in run.metrics or n in theirs) and (n in metrics.available or n not in BOOKKEEPING)
    ]
    return [delta(metrics.spec(n), theirs.get(n), run.metrics.get(n)) for n in present_names]


def _log_tail(b: Board, log: Path) -> tuple[str | None, int]:
    """The end of a run's log, and the byte offset where it ends; None if not servable."""
    url = files.relative_url(b.project.storage, log)
    if url is None or not log.is_file():
        return None, 0
    with log.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - LOG_TAIL))
        data = f.read(size)
    text = data.decode("utf-8", errors="replace")
    return (
        f"[… {size - LOG_TAIL} earlier bytes: download the log]\n" if size > LOG_TAIL else ""
    ) + text, size


# ---------------------------------------------------------------- files
@router.get("/files/{path:path}")
def file(request: Request, path: str) -> Response:
    b = board(request)
    try:
        found = files.safe_path(b.project.storage, path)
    except files.Refused as refused:
        return Response(f"{refused}\n", status_code=refused.status, media_type="text/plain")
    download = request.query_params.get("download") == "1"
    response = FileResponse(
        found,
        media_type=files.media_type(found),
        filename=found.name if download else None,
        content_disposition_type="attachment" if download else "inline",
    )
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
    )
    return response


# ---------------------------------------------------------------- helpers
def execution_or_404(b: Board, ref: str) -> ExecutionRecord:
    try:
        return _observed(b, b.store.lookups.execution(ref))
    except StoreError as exc:
        raise NotFound(str(exc)) from None


@router.get("/executions/{execution_id}/runs/{key}")
def run_by_key(request: Request, execution_id: str, key: str) -> Response:
    """A run named by its execution and key (what comparisons join on): its page."""
    b = board(request)
    run = b.store.lookups.run_by_key(execution_id, key)
    if run is None:
        raise NotFound(f"Execution {execution_id!r} has no run {key!r}.")
    ref = request.query_params.get("ref")
    target = str(request.url_for("run_page", run_id=run.id))
    return RedirectResponse(target + (present.query({}, ref=ref) if ref else ""), status_code=303)
