"""Benchmark: the board's pages over a store holding a 10,000-run execution (server side).

Builds, in a temporary folder, a store with two executions of a three-batch DAG (images:
half the runs; one calibration run needing them all; evaluation: the other half, each
needing the calibration), every run finished with metrics and a full spec as `qa batch`
records it. Then times, in-process through the ASGI app (no network), the execution page,
its live DAG and runs fragments, the executions list, a run page and the compare page.
Target: the execution page renders in under 1 s.

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


def planned(count: int, label: str) -> list[dict[str, Any]]:
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
                "output_dir": f"/project/output/runs/{batch}/{name}/{label}{i:08x}",
                "id": f"{batch}-{i:08d}",
                "fingerprint": f"{label}{i:016x}",
                "fingerprint_parts": {"code": "0" * 32, "input": "1" * 32, "config": "2" * 32},
                **({"needs": ["calibration"]} if batch == "evaluation" else {}),
            }
        )
    calibration = {**out[0], "batch": "calibration", "id": "calibration", "input_path": None}
    calibration |= {"rel_input_path": None, "needs": [s["id"] for s in out[:half]]}
    return [*out[:half], calibration, *out[half:]]


def build(store: Store, count: int, label: str, worse: float) -> str:
    execution = store.writes.create_execution(
        label=label,
        project="bench",
        argv=["batch", "evaluation"],
        git=GitInfo(),
        pid=None,
        host=None,
    )
    specs = planned(count, label)
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


async def timings(app: Any, urls: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    """Per page: (first request, median of the next `repeat`) in seconds."""
    out = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for name, url in urls.items():
            times = []
            for _ in range(repeat + 1):
                started = time.perf_counter()
                response = await client.get(url)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (url, response.status_code, response.text[:500])
            out[name] = (times[0], statistics.median(times[1:]))
    return out


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
        with Store.open(project.database_url, storage=project.storage) as store:
            ref = build(store, args.runs, "ref", 0.0)
            new = build(store, args.runs, "new", 0.5)
            run_id = store.board.run_table(new, limit=1)[1][0].id
        print(f"built 2 executions of {args.runs} runs in {time.perf_counter() - started:.1f} s")
        app = create_app(project)
        urls = {
            "execution page": f"/executions/{new}",
            "execution page, sorted by a metric": f"/executions/{new}?sort=metric:error&desc=1",
            "execution page, filtered": f"/executions/{new}?batch=evaluation&q=set03",
            "live DAG fragment": f"/live/executions/{new}/dag",
            "live runs fragment": f"/live/executions/{new}/runs",
            "executions list": "/",
            "run page": f"/runs/{run_id}?ref={ref}",
            "compare page (2 x 10,000 runs)": f"/compare?ref={ref}&new={new}",
        }
        results = asyncio.run(timings(app, urls, args.repeat))
    width = max(map(len, results))
    print(f"{'page':<{width}}  first (s)  median of next {args.repeat} (s)")
    for name, (first, median) in results.items():
        print(f"{name:<{width}}  {first:9.3f}  {median:9.3f}")
    page = max(results["execution page"])
    print(f"execution page of a {args.runs}-run execution: {page:.3f} s (target < 1 s)")


if __name__ == "__main__":
    main()
