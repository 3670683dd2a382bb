"""The board's tuning pages: the studies of `qa optimize`, and one study with its trials and
Optuna's figures (objective over trials, parameter importance, parallel coordinates), drawn
by the bundled plotly.js from their plotly JSON; each trial links to its execution."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from qaflow.optimize.summary import figure, may_have_studies, names_in, summarize
from qaflow.web.deps import board

if TYPE_CHECKING:
    import optuna

router = APIRouter()
FIGURES = {"history": 1, "parallel": 1, "importance": 2}  # figure -> complete trials it needs
_LOCK = threading.Lock()


@router.get("/studies")
def studies_page(request: Request) -> Response:
    b = board(request)
    storage = _storage(request)
    names = names_in(storage) if storage is not None else []
    rows = [summarize(_study(request, name)) for name in names]
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
    made = figure(_study(request, name), kind) if kind in FIGURES else None
    if made is None:
        return JSONResponse({"error": f"no figure {kind!r} for this study yet"}, status_code=404)
    return JSONResponse(made)


def _study(request: Request, name: str) -> optuna.Study:
    from qaflow.optimize.storage import load_study
    from qaflow.web.pages import NotFound

    storage = _storage(request)
    if storage is None or name not in names_in(storage):
        raise NotFound(f"There is no study {name!r} in this project.")
    return load_study(storage, name)


def _storage(request: Request) -> Any:
    """The study storage, one for the app's life, made on first use; None while the project
    has none (the board creates nothing)."""
    from qaflow.optimize.storage import open_storage

    b = board(request)
    with _LOCK:
        storage = getattr(request.app.state, "studies", None)
        if storage is None and may_have_studies(b.project):
            storage = request.app.state.studies = open_storage(b.project)
    return storage
