"""Benchmark: the floors under issue 18's targets, measured on this machine, part by part.

A target of `bench/peers.py` or `bench/cache.py` can only be met if the work any qaflow must
do for it, whatever its code, fits under it. This measures that work alone, each part with
nothing of qaflow's around it, and prints, per target, the sum of its parts against the target:

- start: a fresh interpreter importing click, the CLI's library (`python -c "import click"`).
- validate: a fresh interpreter importing pydantic and validating one small model, less
  `start`: what validating a project's files costs the first time they are seen (qaflow keeps
  validations, by content too, so a project seen before, or a new one with the files of one
  seen before, skips it).
- hash N inputs: each input file read and hashed (blake2b), as a first plan must.
- record N runs: N rows of the run store's schema inserted in one transaction and committed
  (SQLite, WAL, `codec.SQLITE_PRAGMAS`), rows of the size a 10,000-run execution writes.
- verify N results: each result's two small files (metrics.json, its manifest) opened and read,
  in folders of their own, as a cached plan must to trust what is on disk.
- run N: the bare `xargs -P2 sh -c` loop of peers.py, the same commands.
- keep N results: the files QA-Board's layout of a run's results holds beyond the command's
  own, created by 2 processes at once as 2 workers would: the input's folder above the run's
  (QA-Board's `<input>/<configurations hash>/`) and the run's run.json, log.txt,
  metrics.json, manifest.outputs.json and manifest.inputs.json (6 new files and folders a run;
  the bare loop makes 2: its folder and its output). qaflow adds one more, the link that
  commits a result atomically (`worker.rundir`), which this leaves out.

On a disk, a new file or folder costs far more than on tmpfs (here 50 to 450 us of kernel
time each, against 5 to 30): `--workdir` says where the projects go (default: the system's
temporary folder). The sums leave out everything else (planning, fingerprints, process and pipe costs, output):
a qaflow at its floor would do nothing but these.

    python bench/floors.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402  (the bench folder: the workloads and the bare loop)

VALIDATE = (
    "import click, pydantic\n"
    "class M(pydantic.BaseModel):\n    name: str\n    inputs: list[str] = []\n    timeout: float | None = None\n"
    "M.model_validate({'name': 'w', 'inputs': ['a', 'b']})\n"
)
SPEC = (
    '{"batch_file":"/project/qa/batches.yaml","database":"/project/data","matrix":{},'
    '"needs":["5b3d73ab702c0f78"],"_in_columns":2047}'
)  # a cached run's stored spec, as `store.rows._compact` leaves it


def median_of(measure: Callable[[], float], repeat: int) -> float:
    return statistics.median(measure() for _ in range(repeat))


def process(code: str) -> float:
    return peers.timed([sys.executable, "-c", code], peers.bytecode_env())


def hash_inputs(files: list[str]) -> float:
    from qaflow.plan.fingerprint import hash_file  # how a plan hashes an input

    start = time.perf_counter()
    for name in files:
        hash_file(name)
    return time.perf_counter() - start


def record(store: Path, count: int) -> float:
    """Seconds to insert and commit `count` run rows into a copy of a store of qaflow's schema."""
    from qaflow.store.codec import SQLITE_PRAGMAS

    connection = sqlite3.connect(store, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        connection.execute(pragma)
    execution = os.urandom(6).hex()
    connection.execute(
        "INSERT INTO executions (id, label, project, argv, status, started_at) "
        "VALUES (?, 'bench', 'bench', '[]', 'succeeded', 0)",
        (execution,),
    )
    rows = [
        (
            execution, f"{execution}{i:016x}", hashlib.blake2b(b"%d" % i).hexdigest(), "evaluate",
            f"/project/data/d{i // 1000}/i{i:05d}.raw", f"d{i // 1000}/i{i:05d}.raw", "[]", "{}",
            "linux", "entrypoint", f"/project/output/runs/evaluate/d0/i{i:05d}.raw/{i:012x}",
            "cached", '{"ok":1,"is_failed":false}', 1.0, 1.0, "host", 0, SPEC,
        )
        for i in range(count)
    ]  # fmt: skip
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        'INSERT INTO runs (execution_id, "key", fingerprint, batch, input_path, rel_input_path, '
        "configurations, params, platform, type, output_dir, status, metrics, started_at, "
        "ended_at, host, attempt, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def verify(folders: list[str]) -> float:
    """Seconds to read each result's two files, as `rundir.read_result` reads them."""
    from qaflow.worker.files import read_bytes
    from qaflow.worker.rundir import MANIFEST

    start = time.perf_counter()
    for folder in folders:
        read_bytes(f"{folder}/metrics.json")
        read_bytes(f"{folder}/{MANIFEST}")
    return time.perf_counter() - start


def lay_out(root: Path, count: int, pool: concurrent.futures.Executor, qaboard: bool) -> float:
    """Seconds for 2 processes to make `count` runs' folders (`count // 2` each): QA-Board's
    layout (a run's own files, `rundir.OWN_FILES`, in a folder in its input's) for "keep N
    results", else the bare loop's (a folder and its output) for what it subtracts."""
    halves = [(str(root / f"w{i}-{qaboard}"), count // 2, qaboard) for i in range(2)]
    start = time.perf_counter()
    list(pool.map(_lay_out, *zip(*halves, strict=True)))
    return time.perf_counter() - start


def _lay_out(root: str, count: int, qaboard: bool) -> None:
    from qaflow.worker.files import write_bytes  # how a worker writes its small files
    from qaflow.worker.rundir import OWN_FILES

    Path(root).mkdir(parents=True)
    names = sorted(OWN_FILES) if qaboard else ["out.txt"]
    for i in range(count):
        run = Path(root, f"i{i:05d}.raw", "0123456789ab") if qaboard else Path(root, f"{i:05d}")
        run.mkdir(parents=True)
        for name in names:
            write_bytes(f"{run}/{name}", b'{"ok": 1, "is_failed": false}')


def kept_files(root: Path, count: int, repeat: int) -> float:
    """The median extra cost of QA-Board's layout for `count` runs (less what the bare loop
    makes: a folder and a file a run), each measured once the files before it are on disk."""
    extra = []
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(abs, range(2)))  # the processes are started before timing
        for rep in range(repeat):
            here = root / f"kept{count}-{rep}"
            os.sync()
            laid = lay_out(here, count, pool, qaboard=True)
            os.sync()
            extra.append(laid - lay_out(here, count, pool, qaboard=False))
    return max(0.0, statistics.median(extra))


def make_results(root: Path, count: int) -> list[str]:
    from qaflow.worker.rundir import MANIFEST

    folders = []
    for i in range(count):
        folder = root / "runs" / f"d{i // 1000}" / f"i{i:05d}.raw" / f"{i:012x}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text('{"ok": 1, "is_failed": false}')
        (folder / MANIFEST).write_text("{}")
        folders.append(str(folder))
    return folders


def new_store(root: Path) -> Path:
    from qaflow.store import Store

    Store.open(storage=root).close()
    return root / "qaflow.db"


def line(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<34} {seconds:7.3f} s  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="where the projects go")
    args = parser.parse_args()
    repeat = args.repeat
    start = median_of(lambda: process("import click"), repeat)
    validate = median_of(lambda: process(VALIDATE), repeat) - start
    print(f"{os.cpu_count()} CPUs; medians of {repeat}")
    print(f"  {'start (python + click)':<34} {start:7.3f} s")
    print(f"  {'validate (pydantic, first time)':<34} {validate:7.3f} s")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        store = new_store(root / "store")
        for count, label, target in ((200, "W1", 1.25), (2000, "W4", 1.10)):
            project = root / f"flat{count}"
            commands = peers.make_flat(project, count)
            files = [str(p) for p in sorted((project / "data" / "w").iterdir())]
            run = median_of(lambda c=commands: peers.bare([c]), repeat)  # type: ignore[misc]
            hashed = median_of(lambda f=files: hash_inputs(f), repeat)  # type: ignore[misc]
            recorded = median_of(lambda n=count: record(store, n), repeat)  # type: ignore[misc]
            kept = kept_files(root, count, repeat)
            floor = run + start + validate + hashed + recorded
            print(
                f"{label}: {count} runs, target <= {target}x the bare loop ({target * run:.3f} s)"
            )
            line(f"run {count} (bare loop)", run)
            line(f"hash {count} inputs", hashed)
            line(f"record {count} runs", recorded)
            line("floor, fresh project", floor, f"= {floor / run:.2f}x the bare loop")
            line(
                "floor, project seen before", floor - validate, f"= {(floor - validate) / run:.2f}x"
            )
            line(f"keep {count} results (QA-Board files)", kept)
            line(
                "  floor with them, fresh / seen",
                floor + kept,
                f"= {(floor + kept) / run:.2f}x / {(floor + kept - validate) / run:.2f}x",
            )
        results = make_results(root / "results", 10_000)
        os.sync()
        verified = median_of(lambda: verify(results), repeat)
        recorded = median_of(lambda: record(store, 10_000), repeat)
        floor = start + verified + recorded
        print("bench/cache.py: 10,000 cached runs, target <= 0.5 s")
        line("verify 10,000 results", verified)
        line("record 10,000 runs", recorded)
        line("floor", floor, f"= {floor / 0.5:.2f}x the target")


if __name__ == "__main__":
    main()
