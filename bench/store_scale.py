"""Benchmark: a store of 1,000,000 runs (100 executions of 10,000), as its users query it.

Builds, in a temporary folder, a project whose store holds `--executions` executions of
`--runs` runs each (every run finished with metrics and a full spec, recorded as a no-op
`qa batch` records them: one transaction per execution), then times, as a user waits for
them: `qa status` and `qa status ID` (whole processes), `qa compare` of the last two
executions (10,000 vs 10,000, whole process), and the board's execution page of the last
execution, in-process through the ASGI app (server CPU time: the first request and the
median of the next ones). Target (issue 18): each under 1 s.

    python bench/store_scale.py [--executions 100] [--runs 10000] [--repeat 3]
        [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
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


def specs(count: int, storage: Path) -> list[dict[str, Any]]:
    """Planned runs as `qa batch` records them: one batch of images, three configurations."""
    return [
        {
            "batch": "images",
            "batch_file": "/project/qa/batches.yaml",
            "input_path": f"/data/images/set{i // 1000:02d}/img{i:05d}.raw",
            "rel_input_path": f"images/set{i // 1000:02d}/img{i:05d}.raw",
            "database": "/data",
            "type": "image",
            "configurations": ["base", {"threshold": i % 7}],
            "configs": ["base", {"threshold": i % 7}],
            "params": {"threshold": i % 7},
            "platform": "linux",
            "output_dir": f"{storage}/runs/images/img{i:05d}.raw/{i:012x}",
            "id": f"{i:016x}",
        }
        for i in range(count)
    ]


def fill(store: Store, executions: int, count: int, storage: Path) -> list[str]:
    """`executions` finished executions of `count` runs; their ids, oldest first."""
    planned = specs(count, storage)
    ids = []
    for n in range(executions):
        results = {
            s["id"]: RunResult(
                s["id"],
                RunStatus.SUCCEEDED if n % 10 else RunStatus.CACHED,
                {"error": (i * (n + 1) % 97) / 10, "psnr": 30.0 - (i % 11), "compute_time": 0.1},
                started_at=1000.0 + i,
                ended_at=1001.5 + i,
                host="bench",
            )
            for i, s in enumerate(planned)
        }
        ids.append(
            store.writes.create_settled_execution(
                label=f"bench-{n % 5}",
                project="bench",
                argv=["qa", "batch", "images"],
                git=GitInfo(),
                pid=None,
                host=None,
                specs=planned,
                fingerprints=[f"{n % 3}{s['id']}" for s in planned],
                results=results,
                status="succeeded",
                started_at=time.time(),
                ended_at=time.time(),
            )
        )
        if (n + 1) % 10 == 0:
            print(f"  {n + 1} executions recorded", flush=True)
    return ids


def process(command: list[str], repeat: int) -> float:
    """Median wall time of a whole `qa` process."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def page(app: Any, url: str, repeat: int) -> tuple[float, float]:
    """Server CPU time of the first request and the median of the next `repeat`."""
    transport = httpx.ASGITransport(app=app)
    cpus = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for _ in range(repeat + 1):
            cpu = time.process_time()
            response = await client.get(url)
            cpus.append(time.process_time() - cpu)
            assert response.status_code == 200, (url, response.status_code)
    return cpus[0], statistics.median(cpus[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
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
            ids = fill(store, args.executions, args.runs, project.storage.resolve())
        total = args.executions * args.runs
        print(f"built {args.executions} executions of {args.runs} runs ({total:,} runs) "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        qa = [sys.executable, "-m", "qaflow", "-C", str(root)]
        figures = {
            "qa status": process([*qa, "status"], args.repeat),
            "qa status ID": process([*qa, "status", ids[-1]], args.repeat),
            f"qa compare ({args.runs:,} vs {args.runs:,})": process(
                [*qa, "compare", ids[-2], ids[-1], "--format", "json"], args.repeat
            ),
        }
        app = create_app(project)
        first, median = asyncio.run(page(app, f"/executions/{ids[-1]}", args.repeat))
    width = max(map(len, figures))
    print(f"{'whole process':<{width}}  median of {args.repeat} (s)")
    for name, seconds in figures.items():
        print(f"{name:<{width}}  {seconds:.3f}")
    print(f"board execution page: server CPU first {first:.3f} s, then median {median:.3f} s")


if __name__ == "__main__":
    main()
