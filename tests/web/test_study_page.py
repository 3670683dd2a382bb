"""The study page of `qa optimize` in headless Chromium: trials, Optuna's figures drawn by the
bundled plotly.js, and each trial's link to its execution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Result
from optimize.conftest import optimize, quadratic_project

from .conftest import Server, screenshot

SEARCH = """
space:
  x: {low: -1.0, high: 1.0}
  y: {low: -1.0, high: 1.0}
  fail: ['no', 'no', 'no', 'yes']
objective: {loss: minimize}
evaluations: 6
seed: 11
"""


def test_a_study_page_shows_its_trials_figures_and_executions(
    page: Any, tmp_path: Path, qa: Callable[..., Result]
) -> None:
    from qaflow.config.project import Project
    from qaflow.web.app import create_app

    root = quadratic_project(tmp_path / "p", search=SEARCH.replace("'no', 'no', 'no', ", "'no', "))
    result = optimize(qa, root, "web<b>", str(root / "search.yaml"))
    assert result.exit_code == 0, result.stderr
    shown = qa("-C", str(root), "optimize", "--show", "web<b>", "--json").json()
    states = [t["state"] for t in shown["trials"]]
    assert len(states) == 6 and "complete" in states

    with Server(create_app(Project.discover(root))) as server:
        page.goto(server.url + "/")
        page.locator("header nav a", has_text="Studies").click()
        page.wait_for_url("**/studies")
        assert page.locator("tr.study").count() == 1
        page.locator("tr.study a").click()
        page.wait_for_url("**/studies/*")
        rows = page.locator("table.trials tr.trial")
        assert rows.count() == 6
        assert page.locator("table.trials tr.trial.complete").count() == states.count("complete")
        assert page.locator("h1").inner_text() == "web<b>"  # escaped, not markup
        assert page.locator("#sampler").inner_text() == "tpe (seed 11)"
        best = shown["best"]
        assert page.locator("#best-value").inner_text() == f"{best['value']:.6g}"
        for kind in ("history", "importance", "parallel"):
            page.wait_for_selector(f"#figure-{kind}[data-plotted='1'] .main-svg", timeout=60_000)
        screenshot(page, "study")
        link = page.locator("table.trials tr.trial.best a.execution")
        assert link.inner_text() == best["label"]
        link.click()
        page.wait_for_url(f"**/executions/{best['execution']}")
        assert best["label"] in page.locator("h1").inner_text()
        assert page.errors == []
