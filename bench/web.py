"""Benchmark: the board's pages over a store holding a 10,000-run execution (server side).

Builds, in a temporary folder, a store with two executions of a three-batch DAG (images:
half the runs; one calibration run needing them all; evaluation: the other half, each
needing the calibration), every run finished with metrics and a full spec as `qa batch`
records it. One evaluation run of each execution holds two 4000x3000 images (a PNG and a
JPEG). Then times, in-process through the ASGI app (no network), the execution page (also
with triage against the reference), its live DAG and runs fragments, the executions list,
the run page with its reference and the previews of its four images (the first request
makes a preview, the next ones find it cached), and the compare page with its plots.
Targets: each page, and each preview, in under 1 s.

    python bench/web.py [--runs 10000] [--repeat 5] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from qaflow.config.git import GitInfo
from qaflow.config.project import Project
from qaflow.store import Store
from qaflow.web.app import create_app
from qaflow.worker.model import RunResult, RunStatus


def planned(count: int, label: str, storage: Path) -> list[dict[str, Any]]:
    """The specs of the DAG's runs, `needs` and all, as the recorder stores them."""
    half = count // 2
    out: list[dict[str, Any]] = []
    for i in range(count - 1):
        batch = "images" if i < half else "evaluation"
        name = f"set{i // 1000:02d}/img{i:05d}.raw"
        out.append(
            {
                "batch": batch,
                "batch_file": "/project/qa/batches.yaml",
                "input_path": f"/data/{name}",
                "rel_input_path": name,
                "database": "/data",
                "type": "image",
                "configurations": ["base", {"threshold": i % 7}],
                "configs": ["base", {"threshold": i % 7}],
                "params": {"threshold": i % 7},
                "platform": "linux",
                "matrix": {},
                "output_dir": f"{storage}/runs/{batch}/{name}/{label}{i:08x}",
                "id": f"{batch}-{i:08d}",
                "fingerprint": f"{label}{i:016x}",
                "fingerprint_parts": {"code": "0" * 32, "input": "1" * 32, "config": "2" * 32},
                **({"needs": ["calibration"]} if batch == "evaluation" else {}),
            }
        )
    calibration = {**out[0], "batch": "calibration", "id": "calibration", "input_path": None}
    calibration |= {"rel_input_path": None, "needs": [s["id"] for s in out[:half]]}
    return [*out[:half], calibration, *out[half:]]


def build(store: Store, count: int, label: str, worse: float, storage: Path) -> str:
    execution = store.writes.create_execution(
        label=label,
        project="bench",
        argv=["batch", "evaluation"],
        git=GitInfo(),
        pid=None,
        host=None,
    )
    specs = planned(count, label, storage)
    store.writes.add_runs(execution, specs)
    results = [
        RunResult(
            s["id"],
            RunStatus.SUCCEEDED,
            {
                "error": (i % 97) / 10 + worse * (i % 3 == 0),
                "psnr": 30.0 - (i % 11),
                "compute_time": 0.1,
            },
            started_at=1000.0 + i,
            ended_at=1001.5 + i,
            host="bench",
        )
        for i, s in enumerate(specs)
    ]
    for start in range(0, len(results), 2000):
        store.writes.record(execution, finished=results[start : start + 2000])
    store.writes.finish_execution(execution, "succeeded")
    return execution


async def timings(app: Any, urls: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """Per page: the first request (no comparison kept from an earlier page) and the median
    of the next `repeat`, in seconds of wall time and of CPU time of this process (the app runs in it: on a machine loaded by other
    processes, CPU time is the server's own work, wall time includes waiting for a core)."""
    out = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for name, url in urls.items():
            walls, cpus = [], []
            app.state.board.comparisons.clear()  # the first request compares, cold
            for _ in range(repeat + 1):
                started, cpu = time.perf_counter(), time.process_time()
                response = await client.get(url)
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu)
                assert response.status_code == 200, (url, response.status_code, response.text[:500])
            out[name] = [
                walls[0],
                statistics.median(walls[1:]),
                cpus[0],
                statistics.median(cpus[1:]),
            ]
    return out


def write_images(output_dir: Path, shade: int) -> None:
    """A 4000x3000 PNG and JPEG: gradients with noise, as a photo compresses (not flat)."""
    from PIL import Image

    output_dir.mkdir(parents=True, exist_ok=True)
    size = (4000, 3000)
    noise = Image.effect_noise(size, 24)
    across = Image.linear_gradient("L").resize(size)
    down = Image.linear_gradient("L").rotate(90).resize(size)
    image = Image.merge(
        "RGB", (across, down, Image.blend(noise, across, 0.5).point(lambda v: (v + shade) % 256))
    )
    image.save(output_dir / "result.png", compress_level=3)
    image.save(output_dir / "photo.jpg", quality=92)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "qaboard.yaml").write_text(
            "project: {name: bench}\n"
            + (f"database_url: {args.database_url}\n" if args.database_url else "")
        )
        project = Project.discover(root)
        started = time.perf_counter()
        storage = project.storage.resolve()
        with Store.open(project.database_url, storage=project.storage) as store:
            ref = build(store, args.runs, "ref", 0.0, storage)
            new = build(store, args.runs, "new", 0.5, storage)
            run = store.board.run_table(new, batch="evaluation", limit=1)[1][0]
            ref_run = store.board.matching_run(ref, store.lookups.run(run.id))
            assert ref_run is not None
        print(f"built 2 executions of {args.runs} runs in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        for shade, folder in [(0, ref_run.output_dir), (40, run.output_dir)]:
            write_images(Path(folder), shade)
        print(f"wrote 2 x 2 images of 4000x3000 in {time.perf_counter() - started:.1f} s")
        previews = {
            f"preview of {side} {name}": "/previews/"
            + (Path(folder) / name).relative_to(storage).as_posix()
            for side, folder in [("new", run.output_dir), ("ref", ref_run.output_dir)]
            for name in ("result.png", "photo.jpg")
        }
        app = create_app(project)
        urls = {
            "execution page": f"/executions/{new}",
            "execution page, sorted by a metric": f"/executions/{new}?sort=metric:error&desc=1",
            "execution page, filtered": f"/executions/{new}?batch=evaluation&q=set03",
            "live DAG fragment": f"/live/executions/{new}/dag",
            "live runs fragment": f"/live/executions/{new}/runs",
            "executions list": "/",
            "execution page, triage against the reference": (
                f"/executions/{new}?ref={ref}&triage=error"
            ),
            "run page, two 4000x3000 images and their references": f"/runs/{run.id}?ref={ref}",
            **previews,
            "compare page (2 x 10,000 runs)": f"/compare?ref={ref}&new={new}",
            "compare page, sorted worst first": f"/compare?ref={ref}&new={new}&sort=error",
        }
        results = asyncio.run(timings(app, urls, args.repeat))
    width = max(map(len, results))
    print(
        f"{'page':<{width}}  wall: first  median   cpu: first  median  (s; median of {args.repeat})"
    )
    for name, (wall, wall_median, cpu, cpu_median) in results.items():
        print(f"{name:<{width}}  {wall:11.3f} {wall_median:7.3f}  {cpu:10.3f} {cpu_median:7.3f}")
    over = [name for name, times in results.items() if max(times[2:]) >= 1]
    print(
        "server CPU time under 1 s for every page and preview"
        if not over
        else f"over 1 s of server CPU time: {', '.join(over)}"
    )


if __name__ == "__main__":
    main()
