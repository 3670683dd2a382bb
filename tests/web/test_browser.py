"""The board in headless Chromium: the pages a person uses, clicked through as they would.

Each test saves a screenshot of its page under tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import time
from typing import Any

import qaflow
from qaflow.worker.model import RunResult, RunStatus

from .conftest import XSS, XSS_FILE, Demo, Server, make_demo, screenshot


def no_script_ran(page: Any) -> None:
    assert page.evaluate("() => window.__xss === undefined"), "a user-supplied script ran"
    assert page.errors == []


def test_the_executions_page_lists_them_and_picks_a_reference_in_one_click(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(server.url + "/")
    rows = page.locator("tr.execution")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-id") == demo.new  # newest first
    assert page.locator(f"tr[data-id='{demo.ref}'] .progress .seg.w-done").count() == 1
    assert "6 done" in rows.nth(1).inner_text()
    page.locator(f"tr[data-id='{demo.ref}'] a.set-ref").click()
    assert page.locator("tr.is-ref").get_attribute("data-id") == demo.ref
    screenshot(page, "executions")
    page.locator(f"tr[data-id='{demo.new}'] a.compare").click()
    page.wait_for_url("**/compare?*")
    assert page.locator("#verdict").is_visible()
    page.goto(server.url + "/?label=reference")
    assert [r.get_attribute("data-id") for r in page.locator("tr.execution").all()] == [demo.ref]
    no_script_ran(page)


def test_following_a_running_execution_until_its_dag_is_done(page: Any, tmp_path: Any) -> None:
    root = make_demo(tmp_path / "live")
    from qaflow.config.project import Project
    from qaflow.web.app import create_app

    with Server(create_app(Project.discover(root))) as server:
        handle = qaflow.batch(
            "evaluation",
            project=root,
            wait=False,
            label="live",
            extra_parameters={"sleep": 0.6},
            concurrency=1,
        )
        page.goto(f"{server.url}/executions/{handle.id}")
        dag = page.locator("#dag svg.dag")
        assert dag.get_attribute("data-status") == "running"
        assert dag.get_attribute("data-done") == "no"
        page.evaluate("() => { window.__same_page = true; }")  # gone if the page were reloaded
        page.wait_for_selector("#dag svg.dag[data-done='no'] g.dag-node[data-state='running']")
        screenshot(page, "execution-running")  # the DAG drawn, live, part way
        page.wait_for_function(
            "() => document.querySelector('#dag svg.dag').dataset.done === 'yes'", timeout=120_000
        )
        states = {
            n.get_attribute("data-batch"): n.get_attribute("data-state")
            for n in page.locator("g.dag-node").all()
        }
        assert states == {"calibration-images": "done", "calibration": "done", "evaluation": "done"}
        assert page.evaluate("() => window.__same_page === true")
        page.wait_for_function(
            "() => document.querySelector('#execution-status .badge').textContent === 'succeeded'"
        )
        # the status line, the DAG and the runs table poll each on their own: wait until the
        # runs table has had its last (non-live) answer, then read it
        page.wait_for_function("() => !document.querySelector('#runs').hasAttribute('data-live')")
        assert page.locator("#runs tr.run[data-status='succeeded']").count() == 6
        assert handle.wait(timeout=120) == 0
        assert len(page.locator("path.edge").all()) == 2
        screenshot(page, "execution-done")


def test_an_execution_started_elsewhere_appears_on_the_executions_page(
    page: Any, tmp_path: Any
) -> None:
    root = make_demo(tmp_path / "appears")
    from qaflow.config.project import Project
    from qaflow.web.app import create_app

    with Server(create_app(Project.discover(root))) as server:
        page.goto(server.url + "/")
        page.evaluate("() => { window.__same_page = true; }")  # gone if the page were reloaded
        assert page.locator("tr.execution").count() == 0
        execution = qaflow.batch("calibration-images", project=root, label="from-a-terminal")
        row = page.locator(f"tr.execution[data-id='{execution.id}']")
        row.wait_for()
        assert "from-a-terminal" in row.inner_text()
        assert page.evaluate("() => window.__same_page === true")


def test_the_runs_table_filters_and_sorts_on_the_server(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(f"{server.url}/executions/{demo.new}")
    assert page.locator("#runs tr.run").count() == 6
    page.select_option("select[name=batch]", "evaluation")
    page.click("form.filters button[type=submit] >> nth=0")
    assert page.locator("#runs tr.run").count() == 3
    page.click("#runs a.sort:has-text('input')")
    page.click("#runs a.sort:has-text('input')")  # again: descending
    inputs = page.locator("#runs tr.run td:nth-child(2)").all_inner_texts()
    assert inputs == ["test3.txt", "test2.txt", "test1.txt"]
    comment = page.locator("#runs td[data-metric='comment']").first
    assert comment.inner_text() == XSS  # shown as text, not markup
    screenshot(page, "execution")
    no_script_ran(page)


def test_a_run_shows_its_image_beside_the_reference_with_zoom_in_step(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(f"{server.url}/runs/{demo.run_id('test2.txt')}")
    figure = page.locator("figure.image-view[data-name='result.png']")
    page.wait_for_selector("figure.image-view[data-name='result.png'][data-ready='1']")
    assert figure.locator("canvas[data-pane]").count() == 1  # no reference chosen yet
    page.click(f".reference a.chip:has-text('{demo.ref[:6]}')")  # one click
    page.wait_for_selector("figure.image-view.pair[data-name='result.png'][data-ready='1']")
    assert figure.locator("canvas[data-pane]").count() == 2
    before = figure.get_attribute("data-scale")
    pane = figure.locator(".pane").first
    pane.scroll_into_view_if_needed()
    box = pane.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"() => document.querySelector(\"figure[data-name='result.png']\").dataset.scale !== '{before}'"
    )
    # metrics with the reference: error got worse, so its delta is marked a regression
    assert "regression" in page.locator("tr[data-metric='error'] td.delta").get_attribute("class")
    assert page.locator("tr[data-metric='comment'] td.value").first.inner_text() == XSS
    assert (
        f"processing test2.txt with offset 0.5, comment {XSS}" in page.locator("#log").inner_text()
    )
    page.wait_for_selector(".plotly[data-plotted='1'] .main-svg")
    text_file = page.locator(f"details[data-text-src]:has(summary:text-is('{XSS_FILE}'))")
    text_file.locator("summary").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('details pre.text')].some(p => p.textContent)"
    )
    assert "a file with a nasty name" in text_file.locator("pre").inner_text()
    metrics_file = page.locator("details[data-kind='json']:has(summary:text-is('metrics.json'))")
    metrics_file.locator("summary").click()
    metrics_file.locator("pre:not(:empty)").wait_for()
    assert '\n  "is_failed": false' in metrics_file.locator("pre").inner_text()  # pretty-printed
    screenshot(page, "run")
    no_script_ran(page)


def test_comparing_two_executions_highlights_the_regressions(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(f"{server.url}/executions/{demo.new}")
    page.select_option("form.compare-with select[name=ref]", demo.ref)
    page.click("form.compare-with button")
    page.wait_for_url("**/compare?*")
    assert "5 regressions" in page.locator("#verdict").inner_text()
    rows = page.locator("table.compare tr.regression")
    assert rows.count() == 5
    cell = page.locator(
        "table.compare tr[data-input='test1.txt'] td.new-value[data-metric='error']"
    )
    assert "regression" in cell.get_attribute("class").split()
    assert cell.inner_text() == "1.59"
    assert page.locator(".metric-charts").count() == 2
    assert page.locator("td.new-value[data-metric='comment']").first.inner_text() == XSS
    screenshot(page, "compare")
    no_script_ran(page)
    # the other way round, nothing regressed: one click on "swap"
    page.click("a:text-is('swap')")
    assert page.locator("table.compare tr.regression").count() == 0
    assert page.locator("#verdict").inner_text().startswith("No regression")


def test_a_running_run_s_log_is_followed_live(page: Any, tmp_path: Any) -> None:
    from qaflow.config.git import GitInfo
    from qaflow.config.project import Project
    from qaflow.store import Store
    from qaflow.web.app import create_app

    (tmp_path / "qaboard.yaml").write_text("project: {name: live/log}\n")
    project = Project.discover(tmp_path)
    output = project.storage / "runs" / "b" / "r1"
    output.mkdir(parents=True)
    log = output / "log.txt"
    log.write_text("step 1\n")
    with Store.open(project.database_url, storage=project.storage) as store:
        execution = store.writes.create_execution(
            label="log", project="live/log", argv=[], git=GitInfo(), pid=None, host=None
        )
        spec = {"id": "r1", "batch": "b", "platform": "linux", "type": "default"}
        store.writes.add_runs(execution, [{**spec, "output_dir": str(output)}])
        store.writes.run_started(execution, "r1", started_at=time.time(), host="here")
        run_id = store.lookups.runs(execution)[0].id
        with Server(create_app(project, store=store)) as server:
            page.goto(f"{server.url}/runs/{run_id}")
            assert page.locator("#log").inner_text() == "step 1\n"
            with log.open("a") as f:
                f.write(f"step 2 {XSS}\n")
            page.wait_for_function(
                "() => document.getElementById('log').textContent.includes('step 2')"
            )
            assert page.locator("#log").inner_text() == f"step 1\nstep 2 {XSS}\n"
            store.writes.run_finished(
                execution,
                RunResult("r1", RunStatus.SUCCEEDED, {"score": 0.75}, ended_at=time.time()),
            )
            page.wait_for_selector("tr[data-metric='score']")  # reloaded once it ended
            assert page.locator("#run-status .badge").inner_text() == "succeeded"
            no_script_ran(page)
