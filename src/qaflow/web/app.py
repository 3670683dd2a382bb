"""The board's ASGI app: `create_app(project, token=None)`, served by `qa serve` with uvicorn.

Policy
- One `Store` for the app's life; pages are sync handlers (Starlette runs them in its thread
  pool), each a few indexed queries: the execution page reads per-batch counts and one page
  of runs, never every run.
- Access: with a token, every request needs it, as `Authorization: Bearer T`, as the cookie
  set when a URL is opened once with `?token=T` (then redirected without it), or it gets 401.
  Without a token (the loopback case), the Host header must name the host the board is bound
  to or a loopback name, so that a web page of another site cannot reach it by DNS rebinding.
- Pages send a Content-Security-Policy that allows only the board's own scripts: user
  content is escaped by Jinja2 autoescape, and would not run even if it were not.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from qaflow.web import present
from qaflow.web.deps import Board

if TYPE_CHECKING:
    from qaflow.config.project import Project
    from qaflow.store import Store

HERE = Path(__file__).parent
COOKIE = "qaflow_token"
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(
    project: Project,
    token: str | None = None,
    *,
    store: Store | None = None,
    hosts: list[str] | None = None,
) -> FastAPI:
    """The board of `project`, over `store` (default: the project's). `hosts`: the Host
    header values accepted when there is no token (default: loopback names)."""
    from qaflow.store import Store
    from qaflow.web import asked, comparison, images, live, pages, studies

    opened = store or Store.open(project.database_url, storage=project.storage)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if store is None:  # the app opened it: it closes it
            opened.close()

    app = FastAPI(
        title="qaflow board", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.board = Board(project, opened, _templates())
    app.add_exception_handler(asked.NotFound, asked.not_found)
    app.add_exception_handler(asked.BadRequest, asked.bad_request)
    app.include_router(pages.router)
    app.include_router(live.router)
    app.include_router(comparison.router)
    app.include_router(studies.router)
    app.include_router(images.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if token:
        _require_token(app, token)
    else:
        allowed = hosts if hosts is not None else LOOPBACK_NAMES
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)
    _add_headers(app)
    return app


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.autoescape = True  # every template, whatever its name's suffix
    env.filters.update(present.FILTERS)
    env.globals.update(present.GLOBALS)
    return templates


def _require_token(app: FastAPI, token: str) -> None:
    expected = token.encode()

    def matches(given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), expected)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        given = request.query_params.get("token")
        if given is not None and matches(given):  # once: remember it, drop it from the URL
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            # one leading slash: `//evil.com/x` would be a URL of another site
            target = "/" + request.url.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if matches(bearer) or matches(request.cookies.get(COOKIE)):
            return await call_next(request)  # type: ignore[no-any-return]
        return HTMLResponse(
            "<!doctype html><title>qaflow board: token needed</title>"
            "<p>This board needs its access token: open the URL <code>qa serve</code> printed "
            "(it ends with <code>?token=…</code>), or send <code>Authorization: Bearer "
            "TOKEN</code>.</p>",
            status_code=401,
        )


def _add_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response
