"""The board as an image-triage bench, in headless Chromium: runs sorted worst first, the
image viewer's views read back from its canvases, and plots with axes.

The demo's `pattern.png` is a 16x16 checkerboard of single black and white pixels; in the
new execution the square x, y in 8..11 is inverted (conftest.pattern), so the difference is
255 there and 0 elsewhere. Its `test2.txt` run got worse than the others (error +1.0, the
others +0.5).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from .conftest import Demo, Server, execute, make_demo, screenshot

PATTERN = "figure.image-view[data-name='pattern.png']"
TOP, BOTTOM = [252, 255, 164, 255], [0, 0, 0, 255]  # the colour scale's ends
WHITE, BLACK = [255, 255, 255, 255], [0, 0, 0, 255]

# the canvas pixel (RGBA) at the centre of image pixel (u, v), in pane `pane`
PIXEL_AT = """([selector, pane, u, v]) => {
  const f = document.querySelector(selector);
  const canvas = f.querySelectorAll('canvas[data-pane]')[pane];
  const s = +f.dataset.scale, r = window.devicePixelRatio;
  const px = Math.floor((+f.dataset.x + (u + 0.5) * s) * r);
  const py = Math.floor((+f.dataset.y + (v + 0.5) * s) * r);
  return Array.from(canvas.getContext('2d').getImageData(px, py, 1, 1).data);
}"""

# every canvas pixel along the middle of image row v, from the image's left to its right edge
ROW = """([selector, v]) => {
  const f = document.querySelector(selector);
  const canvas = f.querySelector('canvas[data-pane]');
  const s = +f.dataset.scale, r = window.devicePixelRatio;
  const y = Math.floor((+f.dataset.y + (v + 0.5) * s) * r);
  const x0 = Math.ceil(+f.dataset.x * r) + 1, x1 = Math.floor((+f.dataset.x + 16 * s) * r) - 1;
  const data = canvas.getContext('2d').getImageData(x0, y, x1 - x0, 1).data;
  const out = [];
  for (let i = 0; i < data.length; i += 4) out.push([data[i], data[i + 1], data[i + 2]].join(','));
  return out;
}"""


def pixel(page: Any, pane: int, u: int, v: int) -> list[int]:
    return page.evaluate(PIXEL_AT, [PATTERN, pane, u, v])  # type: ignore[no-any-return]


def open_pattern(page: Any, server: Server, demo: Demo, ref: bool = True) -> Any:
    query = f"?ref={demo.ref}" if ref else ""
    page.goto(f"{server.url}/runs/{demo.run_id('test2.txt')}{query}")
    figure = page.locator(PATTERN)
    figure.scroll_into_view_if_needed()
    page.wait_for_selector(f"{PATTERN}[data-ready='1']")
    return figure


def mode(page: Any, figure: Any, name: str) -> None:
    figure.locator(f".modes button[data-mode='{name}']").click()
    page.wait_for_selector(f"{PATTERN}[data-mode='{name}']")


def test_zoomed_in_a_small_image_shows_hard_pixel_edges(
    page: Any, server: Server, demo: Demo
) -> None:
    figure = open_pattern(page, server, demo, ref=False)
    box = figure.locator(".pane").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -150)  # to a scale that is not a whole number of screen pixels
    page.wait_for_function(f'() => +document.querySelector("{PATTERN}").dataset.scale > 28')
    scale = float(figure.get_attribute("data-scale"))
    assert scale != int(scale)
    row = page.evaluate(ROW, [PATTERN, 7])
    assert set(row) <= {"0,0,0", "255,255,255"}, "a blended colour: the zoom is smoothed"
    changes = sum(a != b for a, b in itertools.pairwise(row))
    assert changes == 15  # 16 single-pixel columns, each a solid block
    assert pixel(page, 0, 7, 7) == WHITE and pixel(page, 0, 8, 7) == BLACK


def test_side_by_side_panes_share_zoom_and_show_pixel_values(
    page: Any, server: Server, demo: Demo
) -> None:
    figure = open_pattern(page, server, demo)
    assert figure.locator("canvas[data-pane]").count() == 2
    # outside the changed square both panes agree; inside it they differ
    assert pixel(page, 0, 2, 2) == pixel(page, 1, 2, 2) == WHITE
    assert pixel(page, 0, 9, 9) == BLACK and pixel(page, 1, 9, 9) == WHITE
    pane = figure.locator(".pane").nth(1)
    box = pane.bounding_box()
    scale, x, y = (float(figure.get_attribute(f"data-{k}")) for k in ("scale", "x", "y"))
    page.mouse.move(box["x"] + x + 9.5 * scale, box["y"] + y + 9.5 * scale)
    readout = figure.locator(".readout")
    page.wait_for_function(
        f"() => document.querySelector(\"{PATTERN} .readout\").textContent.startsWith('x 9, y 9')"
    )
    assert "this run: 0 0 0 · reference: 255 255 255" in readout.inner_text()
    page.mouse.wheel(0, -300)  # zooming the second pane zooms both
    page.wait_for_function(f'() => document.querySelector("{PATTERN}").dataset.scale != {scale}')
    assert pixel(page, 0, 9, 9) == BLACK and pixel(page, 1, 9, 9) == WHITE


def test_the_difference_heatmap_has_its_colours_where_the_images_differ(
    page: Any, server: Server, demo: Demo
) -> None:
    figure = open_pattern(page, server, demo)
    mode(page, figure, "diff")
    assert figure.locator(".colour-scale").is_visible()
    assert figure.get_attribute("data-largest-difference") == "255"
    for u, v in [(8, 8), (9, 10), (11, 11)]:
        assert pixel(page, 0, u, v) == TOP, (u, v)
    for u, v in [(0, 0), (7, 8), (12, 11), (15, 15), (3, 9)]:
        assert pixel(page, 0, u, v) == BOTTOM, (u, v)
    screenshot(page, "diff")


def test_blink_toggles_on_a_key_and_the_slider_moves_the_split(
    page: Any, server: Server, demo: Demo
) -> None:
    figure = open_pattern(page, server, demo)
    mode(page, figure, "blink")
    assert figure.get_attribute("data-shown") == "new" and pixel(page, 0, 9, 9) == BLACK
    which = figure.locator(".hint-line .which")
    ref = f"reference {demo.ref[:6]}"
    assert which.inner_text() == f"showing this run (b: {ref})"  # says which one is on screen
    page.keyboard.press("b")
    page.wait_for_selector(f"{PATTERN}[data-shown='ref']")
    assert pixel(page, 0, 9, 9) == WHITE
    assert which.inner_text() == f"showing {ref} (b: this run)"
    page.keyboard.press("b")
    page.wait_for_selector(f"{PATTERN}[data-shown='new']")
    assert pixel(page, 0, 9, 9) == BLACK
    mode(page, figure, "split")
    slider = figure.locator("input.split")
    assert slider.is_visible()
    for value, expected in [("100", BLACK), ("0", WHITE), ("100", BLACK)]:
        slider.fill(value)  # this run left of the split line, the reference right of it
        assert pixel(page, 0, 9, 9) == expected, value


def test_a_large_jpeg_is_shown_from_a_preview_then_in_full_when_zoomed(
    page: Any, server: Server, demo: Demo
) -> None:
    from PIL import Image

    run = demo.run_id("test3.txt")
    with demo.store() as store:
        output = store.lookups.run(run).output_dir
    photo = Image.new("RGB", (2400, 1800), (30, 60, 90))
    photo.paste((200, 10, 10), (1200, 900, 1210, 910))
    photo.save(f"{output}/photo.jpg", quality=95)
    page.goto(f"{server.url}/runs/{run}")
    selector = "figure.image-view[data-name='photo.jpg']"
    figure = page.locator(selector)
    figure.scroll_into_view_if_needed()
    page.wait_for_selector(f"{selector}[data-ready='1']")
    assert figure.get_attribute("data-preview").startswith("/previews/")
    assert figure.get_attribute("data-source") == "preview"
    box = figure.locator(".pane").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(6):
        page.mouse.wheel(0, -300)
    page.wait_for_selector(f"{selector}[data-source='full']")
    assert float(figure.get_attribute("data-scale")) > 1600 / 2400


def test_sorting_puts_the_worst_run_first_and_opens_it_with_its_reference(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(f"{server.url}/compare?ref={demo.ref}&new={demo.new}&batch=evaluation")
    page.select_option("#sort-metric", "error")
    page.click("form.sort-by button")
    page.wait_for_url("**sort=error**")
    rows = page.locator("table.compare tbody tr")
    assert rows.first.get_attribute("data-input") == "test2.txt"
    assert "regression" in (rows.first.get_attribute("class") or "")
    # on the execution's page: triage against a reference, worst first, over every batch
    page.goto(f"{server.url}/executions/{demo.new}")
    page.select_option("form.triage select[name=ref]", demo.ref)
    page.select_option("form.triage select[name=triage]", "error")
    page.click("form.triage button")
    page.wait_for_selector("#triage table.compare")
    first = page.locator("#triage table.compare tbody tr").first
    assert first.get_attribute("data-input") == "test2.txt"
    assert first.get_attribute("data-batch") == "evaluation"
    screenshot(page, "triage")
    first.locator("a.open-run").click()  # one click: the run, with its reference
    page.wait_for_selector("figure.image-view.pair[data-ready='1']")
    assert page.locator("tr[data-metric='error'] td.delta").inner_text() == "+1"


def test_the_plots_have_axis_titles_units_and_hover_naming_the_input(
    page: Any, server: Server, demo: Demo
) -> None:
    page.goto(f"{server.url}/compare?ref={demo.ref}&new={demo.new}")
    page.wait_for_function(
        "() => document.querySelectorAll('.plot[data-plotted=\"1\"]').length === 4"
    )
    psnr = page.locator(".metric-charts[data-metric='psnr']")
    assert (
        psnr.locator(".histogram .xtitle").text_content() == "change of PSNR, new − reference (dB)"
    )
    assert psnr.locator(".histogram .ytitle").text_content() == "runs"
    assert psnr.locator(".scatter .xtitle").text_content() == "PSNR in the reference (dB)"
    assert psnr.locator(".scatter .ytitle").text_content() == "PSNR in the new execution (dB)"
    error = page.locator(".metric-charts[data-metric='error'] .scatter")
    point = error.locator(".scatterlayer .point").first
    point.scroll_into_view_if_needed()
    point.hover(force=True)
    error.locator(".hovertext").first.wait_for()
    hover = error.locator(".hovertext").first.text_content()
    assert re.match(
        r"regression(calibration-images|evaluation) · (chart|test)\d\.txt · base", hover
    )
    # the new execution's nasty comment is an extra parameter (--tuning), not a configuration:
    # the hover shows the configuration (escaped as text: tests/web/test_charts.py)
    assert page.evaluate("() => window.__xss === undefined")
    screenshot(page, "compare-plots")
    # the batch's page: `qa history` as a line chart
    page.goto(f"{server.url}/executions/{demo.new}?batch=evaluation")
    page.wait_for_selector(".plot.history[data-plotted='1']")
    history = page.locator(".plot.history").first
    assert history.locator(".xtitle").text_content() == "execution, oldest → newest"
    assert history.locator(".ytitle").text_content() == "mean Error"
    assert history.locator(".scatterlayer .point").count() == 2  # the two executions
    assert page.errors == []


def test_metrics_unchanged_in_every_run_say_so_instead_of_drawing_empty_plots(
    page: Any, tmp_path: Path
) -> None:
    from qaflow.config.project import Project
    from qaflow.web.app import create_app

    root = make_demo(tmp_path / "demo")
    ref = execute(root, "reference")
    # a new parameter: the evaluation runs again (upstream reused), with the same metrics
    new = execute(root, "again", sleep=0.01)
    with Server(create_app(Project.discover(root))) as server:
        page.goto(f"{server.url}/compare?ref={ref}&new={new}")
        page.wait_for_load_state("load")
        screenshot(page, "compare-unchanged")
        assert page.locator(".verdict").inner_text().startswith("No regression")
        for metric, mean in [("error", "1.094"), ("psnr", "30 dB")]:
            charts = page.locator(f".metric-charts[data-metric='{metric}']")
            assert charts.locator(".unchanged").inner_text() == (
                "Unchanged: the same value as in the reference in all 5 runs compared"
                f" (mean {mean})."
            )
        assert page.locator(".metric-charts").count() == 2
        assert page.locator(".metric-charts .plot, [data-figure], .main-svg").count() == 0
        assert page.evaluate("() => window.Plotly === undefined")  # nothing to draw
        assert page.errors == []
