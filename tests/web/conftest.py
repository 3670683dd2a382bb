"""The board's fixtures: a demo project with two finished executions, the app served by a
real uvicorn on 127.0.0.1, and Debian's headless Chromium driven by Playwright.

The browser tests skip when no Chromium is found (QA_TEST_CHROMIUM, else `chromium` on the
PATH), except under CI, where they must run: .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import qaflow
from conftest import write_project
from qaflow.config.project import Project
from qaflow.store import Store

CHROMIUM_ENV = "QA_TEST_CHROMIUM"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_FILE = "<img src=x onerror=window.__xss=3>.txt"

MAIN = '''
import json
import struct
import time
import zlib


def png(path, width, height, pixel):
    """A truecolour PNG, written without any imaging library."""
    rows = b"".join(
        b"\\0" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height)
    )

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pattern(x, y, offset):
    """A 16x16 checkerboard of single black and white pixels; with an offset, the square
    x, y in 8..11 is inverted: the difference is 0 everywhere but there, 255 there."""
    white = (x + y) % 2 == 0
    if offset and 8 <= x < 12 and 8 <= y < 12:
        white = not white
    return (255, 255, 255) if white else (0, 0, 0)


def run(context):
    params = context.params
    time.sleep(float(params.get("sleep", 0)))
    offset = float(params.get("offset", 0))
    name = str(context.rel_input_path)
    print(f"processing {name} with offset {offset}, comment {params.get('comment', 'ok')}")
    shade = int(offset * 200) % 256
    png(context.output_dir / "result.png", 96, 64, lambda x, y: ((x * 2) % 256, (y * 4) % 256, shade))
    png(context.output_dir / "pattern.png", 16, 16, lambda x, y: pattern(x, y, offset))
    (context.output_dir / "notes.txt").write_text(f"notes about {name}\\n")
    (context.output_dir / "curve.plotly.json").write_text(json.dumps(
        {"data": [{"x": [1, 2, 3, 4], "y": [1, 4, 9, 16 + offset], "type": "scatter"}],
         "layout": {"title": {"text": "curve of " + name}}}))
    if params.get("xss"):
        (context.output_dir / params["xss_file"]).write_text("a file with a nasty name")
    print("done")
    worst = offset if name == "test2.txt" else 0  # test2 gets worse twice as much
    return {"error": round(1.0 + offset + worst + len(name) / 100, 4), "psnr": 30.0 - 4 * offset,
            "comment": params.get("comment", "ok")}
'''


def batches_yaml(python: str) -> str:
    return f"""
    calibration-images:
      inputs: [chart1.txt, chart2.txt]
      configurations: [base]
    calibration:
      needs: {{images: calibration-images}}
      type: script
      configurations:
      - {python} -c "import time; time.sleep(0.2); print('calibrated')"
    evaluation:
      needs: {{calibration: calibration}}
      inputs: [test1.txt, test2.txt, test3.txt]
      configurations: [base]
    """


METRICS_YAML = """
available_metrics:
  error: {label: Error, smaller_is_better: true, precision: 4}
  psnr: {label: PSNR, smaller_is_better: false, suffix: ' dB'}
main_metrics: [error, psnr, comment]
"""


@dataclass
class Demo:
    """The demo project and its executions: `ref` then `new` (worse), both finished."""

    root: Path
    project: Project
    ref: str
    new: str

    def store(self) -> Store:
        return Store.open(self.project.database_url, storage=self.project.storage)

    def run_id(self, input_name: str, execution: str | None = None) -> int:
        """The id of the `evaluation` run of this input (in `new` by default)."""
        with self.store() as store:
            runs = store.lookups.runs(execution or self.new)
        return next(
            r.id for r in runs if r.batch == "evaluation" and r.rel_input_path == input_name
        )


def make_demo(root: Path) -> Path:
    files = ["data/chart1.txt", "data/chart2.txt", *(f"data/test{i}.txt" for i in (1, 2, 3))]
    return write_project(
        root,
        qaboard="""
        project: {name: board/demo}
        inputs: {database: data}
        """,
        batches=batches_yaml(sys.executable),
        files=files,
        extra={"qa/main.py": MAIN, "qa/metrics.yaml": METRICS_YAML},
    )


def execute(root: Path, label: str, **params: Any) -> str:
    execution = qaflow.batch(
        "evaluation", project=root, label=label, extra_parameters=params, concurrency=2
    )
    assert execution.exit_code == 0, [r.error for r in execution.runs()]
    return execution.id


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = make_demo(tmp_path_factory.mktemp("board") / "demo")
    ref = execute(root, "reference")
    new = execute(root, "experiment", offset=0.5, comment=XSS, xss=1, xss_file=XSS_FILE)
    return Demo(root, Project.discover(root), ref, new)


# ---------------------------------------------------------------- a real server
class Server:
    """uvicorn serving an app on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60  # generous: the machine may be loaded
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[Server]:
    from qaflow.web.app import create_app

    with Server(create_app(demo.project)) as running:
        yield running


# ---------------------------------------------------------------- the browser
def chromium_path() -> str | None:
    found = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found if found and Path(found).exists() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        reason = (
            f"No Chromium: set {CHROMIUM_ENV} to Debian's chromium (apt-get install chromium; "
            ".ci/run does it) to run the board's browser tests."
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} CI must run them.")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(120_000)  # a loaded 2-core machine: generous, never a bound
    context.set_default_navigation_timeout(120_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page under tests/artifacts/ (git-ignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"board-{name}.png"
    page.evaluate("() => window.scrollTo(0, 0)")  # sticky table headers stay at their tables' top
    page.screenshot(path=str(path), full_page=True)
    return path
