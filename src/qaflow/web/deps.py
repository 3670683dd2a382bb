"""What every handler of the board depends on: the `Board` (project, store, templates) and
`board(request)`, which finds it on the app. Pages, live fragments and comparisons import
this, never the app that assembles them."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from qaflow.errors import QaflowError

if TYPE_CHECKING:
    from qaflow.config.project import Project
    from qaflow.results.metrics import Metrics
    from qaflow.store import Store


@dataclass
class Board:
    """What every handler needs: the project, its store, the templates, and caches of the
    graphs of batches (fixed once an execution has recorded its runs) and of comparisons of
    finished executions."""

    project: Project
    store: Store
    templates: Jinja2Templates
    edges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    comparisons: OrderedDict[Any, Any] = field(default_factory=OrderedDict)  # web/comparison.py

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        context = {"project": self.project, **context}
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def metrics(self) -> Metrics:
        """The project's metrics.yaml (none described if it is invalid: the page still shows
        the values, and `qa compare` reports the error)."""
        from qaflow.results.metrics import Metrics

        try:
            return Metrics.load(self.project.metrics_path)
        except QaflowError:
            return Metrics()

    def batch_edges(self, execution_id: str, *, final: bool) -> list[tuple[str, str]]:
        """The execution's (upstream, downstream) batches; `final`: its runs are recorded
        (they all are at once, when it starts), so the answer can be kept."""
        if execution_id in self.edges:
            return self.edges[execution_id]
        found = self.store.board.batch_edges(execution_id)
        if final:
            if len(self.edges) > 256:
                self.edges.clear()
            self.edges[execution_id] = found
        return found


def board(request: Request) -> Board:
    return request.app.state.board  # type: ignore[no-any-return]
