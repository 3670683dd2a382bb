"""The board's screenshots in docs/: a demo project run twice (a reference, then a change
that makes some images worse), served on 127.0.0.1 and photographed in headless Chromium;
then two `qa optimize` studies of the demo, for the tuning pages.

    python docs/screenshots.py [--chromium /usr/bin/chromium] [--only NAME …]

Needs Playwright and a Chromium (QA_TEST_CHROMIUM, else `chromium` on the PATH). Writes
docs/board-NAME.png, the pictures the README's board section shows; `--only` rewrites
just those named (e.g. `--only viewer-blink study`), leaving the others as committed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import qaflow
from qaflow.config.project import Project

DOCS = Path(__file__).resolve().parent

MAIN = '''
from PIL import Image, ImageDraw, ImageFilter


def scene(sharp):
    """A synthetic photo: a sky, a sun, hills and a house; `sharp` < 1 blurs the house."""
    image = Image.linear_gradient("L").resize((480, 320)).convert("RGB")
    image = Image.merge("RGB", [b.point(lambda v, k=k: 60 + v * k) for b, k in
                                zip(image.split(), (0.3, 0.5, 0.7))])
    draw = ImageDraw.Draw(image)
    draw.ellipse((360, 30, 420, 90), fill=(250, 220, 90))
    draw.polygon([(0, 320), (0, 220), (140, 170), (300, 230), (480, 180), (480, 320)],
                 fill=(70, 120, 60))
    house = Image.new("RGB", (120, 100), (180, 70, 50))
    d = ImageDraw.Draw(house)
    for x in range(10, 120, 24):
        d.rectangle((x, 20, x + 12, 40), fill=(240, 240, 210))
    d.rectangle((50, 60, 70, 100), fill=(90, 50, 30))
    if sharp < 1:
        house = house.filter(ImageFilter.GaussianBlur(3 * (1 - sharp)))
    image.paste(house, (170, 190))
    return image


def run(context):
    params = context.params
    sharp = float(params.get("sharp", 1))
    name = str(context.rel_input_path)
    worse = 1 - sharp if name.endswith("3.jpg") else (1 - sharp) / 3
    print(f"rendering {name}, sharpness {sharp}")
    scene(1 - worse).save(context.output_dir / "render.png")
    tuned = 0.0  # the studies' other parameters: a little better near denoise=0.6, with gauss
    if "denoise" in params:
        tuned = 1.5 - 4 * (float(params["denoise"]) - 0.6) ** 2
        tuned += 0.4 if params.get("kernel") == "gauss" else 0
    return {"psnr": round(42 - 30 * worse - len(name) / 10 + tuned, 2),
            "ssim": round(0.98 - 0.5 * worse + tuned / 100, 4), "time_ms": 120 + 40 * worse}
'''

BATCHES = """
renders:
  inputs: [street1.jpg, street2.jpg, street3.jpg, street4.jpg, street5.jpg, street6.jpg]
  configurations: [base]
"""

METRICS = """
available_metrics:
  psnr: {label: PSNR, smaller_is_better: false, suffix: ' dB', precision: 4}
  ssim: {label: SSIM, smaller_is_better: false, precision: 3}
  time_ms: {label: Time, smaller_is_better: true, suffix: ' ms'}
default_metric: psnr
main_metrics: [psnr, ssim, time_ms]
"""

STUDIES = {  # label -> search file, over the renders batch
    "tune-denoise": """
space:
  sharp: {low: 0.3, high: 1.0}
  denoise: {low: 0.0, high: 1.0}
  kernel: [box, gauss]
objective: {psnr: maximize}
evaluations: 16
seed: 3
""",
    "tune-ssim": """
space:
  sharp: {low: 0.5, high: 1.0}
  denoise: {low: 0.0, high: 1.0}
objective: {ssim: maximize}
evaluations: 6
seed: 5
""",
}
BOARD = ["executions", "execution", "compare", "run"]
VIEWER = ["viewer-side", "viewer-split", "viewer-blink", "viewer-diff"]
TUNING = ["studies", "study"]


def make_project(root: Path) -> Path:
    (root / "qa").mkdir(parents=True)
    (root / "data").mkdir()
    for i in range(1, 7):
        (root / "data" / f"street{i}.jpg").write_text("an input")
    (root / "qaboard.yaml").write_text("project: {name: demo/renders}\ninputs: {database: data}\n")
    (root / "qa" / "main.py").write_text(textwrap.dedent(MAIN))
    (root / "qa" / "batches.yaml").write_text(BATCHES)
    (root / "qa" / "metrics.yaml").write_text(METRICS)
    return root


class Serving:
    """The board's app under uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def optimize(root: Path) -> None:
    """The demo's `qa optimize` studies, each trial an execution of the renders batch."""
    for label, search in STUDIES.items():
        path = root / f"{label}.yaml"
        path.write_text(search)
        argv = ["-C", str(root), "--label", label, "optimize", "-b", "renders"]
        argv += ["--config-file", str(path), "--parallel", "2"]
        subprocess.run([sys.executable, "-m", "qaflow", *argv], check=True)


def photograph(
    url: str, chromium: str, wanted: list[str], demo: tuple[str, str, int], root: Path
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    ref, new, run_id = demo
    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(120_000)  # a loaded machine: generous

        def shot(name: str, full: bool = True) -> None:
            if name not in wanted:
                return
            page.evaluate("() => window.scrollTo(0, 0)")
            path = DOCS / f"board-{name}.png"
            page.screenshot(path=str(path), full_page=full)
            palette(path)
            shots.append(path)

        if "executions" in wanted:
            page.goto(f"{url}/")
            shot("executions", full=False)
        if "execution" in wanted:
            page.goto(f"{url}/executions/{new}?batch=renders&ref={ref}&triage=psnr")
            page.wait_for_selector(".plot.history[data-plotted='1']")
            shot("execution")
        if "compare" in wanted:
            page.goto(f"{url}/compare?ref={ref}&new={new}&sort=psnr")
            page.wait_for_function(
                "() => document.querySelectorAll('.plot[data-plotted=\"1\"]').length >= 6"
            )
            shot("compare")
        if {"run", *VIEWER} & set(wanted):
            page.goto(f"{url}/runs/{run_id}?ref={ref}")
            figure = "figure.image-view[data-name='render.png']"
            page.wait_for_selector(f"{figure}[data-ready='1']")
            shot("run")
            zoom_viewer(page, figure, wanted, shots)
        if set(TUNING) & set(wanted):
            optimize(root)  # after the other pictures: its trials are executions too
            page.goto(f"{url}/studies")
            page.wait_for_selector("tr.study")
            shot("studies", full=False)
            page.goto(f"{url}/studies/{next(iter(STUDIES))}")
            for kind in ("history", "importance", "parallel"):
                page.wait_for_selector(f"#figure-{kind}[data-plotted='1'] .main-svg")
            shot("study")
        browser.close()
    return shots


def palette(path: Path) -> None:
    """A page's picture in 256 colours: a third of the size, text and plots as sharp (the
    viewer's pictures keep every colour: they show images)."""
    from PIL import Image

    with Image.open(path) as image:
        shrunk = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    shrunk.save(path, optimize=True)


def zoom_viewer(page: Any, figure: str, wanted: list[str], shots: list[Path]) -> None:
    """Zoom on the house, then photograph the viewer in each of its modes."""
    pane = page.locator(f"{figure} .pane").first
    pane.scroll_into_view_if_needed()
    box = pane.bounding_box()
    assert box is not None
    fitted = page.locator(figure).get_attribute("data-scale")
    page.mouse.move(box["x"] + box["width"] * 0.49, box["y"] + box["height"] * 0.66)
    page.mouse.wheel(0, -700)
    page.wait_for_function(
        f"() => document.querySelector(\"{figure}\").dataset.scale !== '{fitted}'"
    )
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
    for mode in ("side", "split", "blink", "diff"):
        page.click(f"{figure} .modes button[data-mode='{mode}']")
        page.wait_for_selector(f"{figure}[data-mode='{mode}']")
        if mode == "blink":  # b: the reference, as the line above the images says
            page.keyboard.press("b")
            page.wait_for_selector(f"{figure}[data-shown='ref']")
        name = f"viewer-{mode}"
        if name in wanted:
            page.locator(figure).screenshot(path=str(DOCS / f"board-{name}.png"))
            shots.append(DOCS / f"board-{name}.png")
        if mode == "blink":
            page.keyboard.press("b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("QA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    parser.add_argument("--chromium", default=default)
    every = [*BOARD, *VIEWER, *TUNING]
    parser.add_argument("--only", nargs="+", choices=every, default=every, metavar="NAME")
    args = parser.parse_args()
    from qaflow.web.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        root = make_project(Path(folder) / "demo")
        ref = qaflow.batch("renders", project=root, label="reference", concurrency=2)
        new = qaflow.batch(
            "renders",
            project=root,
            label="sharper-denoise",
            extra_parameters={"sharp": 0.4},
            concurrency=2,
        )
        project = Project.discover(root)
        with project_store(project) as store:
            run_id = next(
                r.id
                for r in store.lookups.runs(new.id)
                if (r.rel_input_path or "").endswith("3.jpg")
            )
        with Serving(create_app(project)) as serving:
            demo = (ref.id, new.id, run_id)
            shots = photograph(serving.url, args.chromium, args.only, demo, root)
    for path in shots:
        print(f"wrote {path.relative_to(DOCS.parent)} ({path.stat().st_size // 1024} kB)")


def project_store(project: Project) -> Any:
    from qaflow.store import Store

    return Store.open(project.database_url, storage=project.storage)


if __name__ == "__main__":
    sys.exit(main())
