"""What the board's pages say, over HTTP against a real uvicorn: the executions list names
their batches, an execution's command line reads as typed, a run shows its own metrics (not
qaflow's bookkeeping), an empty log says so, large images come with previews."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
from PIL import Image

from qaflow.config.git import GitInfo
from qaflow.config.project import Project
from qaflow.store import Store
from qaflow.web import images
from qaflow.web.app import create_app
from qaflow.worker.model import RunResult, RunStatus

from .conftest import Demo, Server
from .test_security import raw_get


def test_the_executions_list_names_the_batches_each_ran(demo: Demo, server: Server) -> None:
    page = httpx.get(server.url + "/").text
    row = page.split(f'data-id="{demo.new}"')[1].split("</tr>")[0]
    cell = row.split('class="batches">')[1].split("</td>")[0]
    assert [part.split(">")[1] for part in cell.split("</a>")[:-1]] == [
        "calibration-images",
        "calibration",
        "evaluation",
    ]


def test_a_run_shows_its_metrics_not_the_bookkeeping(demo: Demo, server: Server) -> None:
    page = httpx.get(f"{server.url}/runs/{demo.run_id('test1.txt')}?ref={demo.ref}").text
    assert 'data-metric="error"' in page and 'data-metric="psnr"' in page
    assert 'data-metric="is_failed"' not in page and 'data-metric="compute_time"' not in page
    table = httpx.get(f"{server.url}/executions/{demo.new}").text
    assert 'data-metric="compute_time"' not in table


def test_the_command_line_and_an_empty_log(tmp_path: Path) -> None:
    (tmp_path / "qaboard.yaml").write_text("project: {name: pages}\n")
    project = Project.discover(tmp_path)
    output = project.storage / "runs" / "b" / "r1"
    output.mkdir(parents=True)
    (output / "log.txt").write_text("")
    with Store.open(project.database_url, storage=project.storage) as store:
        execution = store.writes.create_execution(
            label="x",
            project="pages",
            argv=["/venv/bin/qa", "batch", "my batch"],
            git=GitInfo(),
            pid=None,
            host=None,
        )
        spec = {"id": "r1", "batch": "b", "platform": "linux", "type": "default"}
        store.writes.add_runs(execution, [{**spec, "output_dir": str(output)}])
        store.writes.run_finished(
            execution, RunResult("r1", RunStatus.SUCCEEDED, {"m": 1.0}, ended_at=time.time())
        )
        store.writes.finish_execution(execution, "succeeded")
        run_id = store.lookups.runs(execution)[0].id
        with Server(create_app(project, store=store)) as server:
            page = httpx.get(f"{server.url}/executions/{execution}").text
            assert "<code>qa batch &#39;my batch&#39;</code>" in page
            assert "/venv/bin/qa" not in page
            run = httpx.get(f"{server.url}/runs/{run_id}").text
            assert "The log is empty." in run
            assert 'class="log hidden"' in run  # no empty black bar


def test_a_large_image_has_a_preview_a_small_one_not(demo: Demo, server: Server) -> None:
    with demo.store() as store:
        output = Path(store.lookups.run(demo.run_id("test1.txt")).output_dir)
    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(output / "big.png")
    Image.new("RGB", (3000, 900), (200, 10, 30)).save(output / "wide.jpg", quality=90)
    page = httpx.get(f"{server.url}/runs/{demo.run_id('test1.txt')}").text
    big = page.split('data-name="big.png"')[1].split(">")[0]
    assert 'data-width="4000"' in big and 'data-height="3000"' in big
    assert 'data-preview="/previews/' in big
    small = page.split('data-name="pattern.png"')[1].split(">")[0]
    assert 'data-preview=""' in small and 'data-width="16"' in small
    for name, expected, colour in [
        ("big.png", (1600, 1200), (10, 200, 30)),
        ("wide.jpg", (1600, 480), (200, 10, 30)),
    ]:
        path = (output / name).relative_to(demo.project.storage).as_posix()
        response = httpx.get(f"{server.url}/previews/{path}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as preview:
            assert preview.size == expected
            shown = preview.convert("RGB").getpixel((5, 5))
        assert all(abs(a - b) <= 6 for a, b in zip(shown, colour, strict=True)), (name, shown)


def test_previews_serve_only_images_under_storage(demo: Demo, server: Server) -> None:
    secret = demo.root / "outside.png"
    Image.new("RGB", (2000, 2000)).save(secret)
    with demo.store() as store:
        output = Path(store.lookups.run(demo.run_id("test1.txt")).output_dir)
    (output / "link.png").symlink_to(secret)
    relative = output.relative_to(demo.project.storage).as_posix()
    for target, allowed in [
        ("/previews/../outside.png", (400, 403, 404)),
        ("/previews/%2e%2e/outside.png", (400, 403, 404)),
        (f"/previews/{relative}/link.png", (403,)),
        ("/previews//etc/passwd", (400, 403, 404)),
        (f"/previews/{relative}/notes.txt", (415,)),
        (f"/previews/{relative}/missing.png", (404,)),
    ]:
        status, body = raw_get(server, target)
        assert status in allowed, (target, status)
        assert not body.startswith(b"\x89PNG")
    assert images.needs_preview((images.PREVIEW + 1, 10)) and not images.needs_preview((16, 16))
