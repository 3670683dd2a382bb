"""The board's tuning pages: the studies of `qa optimize`, and one study with its trials and
Optuna's figures (objective over trials, parameter importance, parallel coordinates), drawn
by the bundled plotly.js from their plotly JSON; each trial links to its execution."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from qaflow.optimize.summary import figures, study_names, summarize
from qaflow.web.deps import board

if TYPE_CHECKING:
    import optuna

router = APIRouter()
FIGURES = {"history": 1, "parallel": 1, "importance": 2}  # figure -> complete trials it needs
_LOCK = threading.Lock()


@router.get("/studies")
def studies_page(request: Request) -> Response:
    b = board(request)
    rows = [summarize(_study(request, name)) for name in study_names(b.project)]
    return b.render(request, "studies.html", studies=rows)


@router.get("/studies/{name}")
def study_page(request: Request, name: str) -> Response:
    b = board(request)
    summary = summarize(_study(request, name))
    complete = summary.counts().get("complete", 0)
    shown = [kind for kind, needs in FIGURES.items() if complete >= needs]
    return b.render(request, "study.html", study=summary, figures=shown)


@router.get("/studies/{name}/figures/{kind}.json")
def study_figure(request: Request, name: str, kind: str) -> Response:
    made = figures(_study(request, name)).get(kind) if kind in FIGURES else None
    if made is None:
        return JSONResponse({"error": f"no figure {kind!r} for this study yet"}, status_code=404)
    return JSONResponse(made)


def _study(request: Request, name: str) -> optuna.Study:
    from qaflow.optimize.storage import load_study, open_storage
    from qaflow.web.pages import NotFound

    b = board(request)
    if name not in study_names(b.project):
        raise NotFound(f"There is no study {name!r} in this project.")
    with _LOCK:  # one storage (engine) for the app's life, made on first use
        storage: Any = getattr(request.app.state, "studies", None)
        if storage is None:
            storage = request.app.state.studies = open_storage(b.project)
    return load_study(storage, name)
