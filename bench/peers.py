"""Benchmark: qaflow next to its floor (a bare `xargs -P2` loop) and to Snakemake, same workloads.

Each run is one shell command writing one small file, at concurrency 2:
- W1: 200 runs;
- W2: the calibration-shaped DAG A (4 inputs) -> B (1 run) -> C (100 inputs);
- W3: W2 again with nothing changed (a no-op re-run);
- W4: 2,000 runs;
- `qa --dryrun batch` of W2 (up to date), and `qa batch --list` of 100,000 runs (time, peak RSS).
W3 and the dry run also show their floor before any qaflow code: the interpreter importing
the libraries those paths need (click, PyYAML; rich for the no-op's summary table).

Every tool is a whole process, as a user waits for it, run one after the other in this
process, alternating tool by tool within each repetition; figures are medians. qaflow
is `python -m qaflow` with the `src/` folder of each `--qaflow NAME=SRC` given (default:
this checkout), so two trees can be compared in the same run. Timed processes keep their
compiled bytecode (in ~/.cache/qaflow-bench/pycache), as an installed tool does. Snakemake is used when it
is installed in the benchmark's own venv (`--snakemake-venv`, default
~/.cache/qaflow-bench/snakemake-venv: `python -m venv DIR && DIR/bin/pip install
snakemake`); it is never a dependency of qaflow, and skipped with a message when absent.

    python bench/peers.py [--repeat 5] [--qaflow new=src --qaflow old=/other/src] [--only W1,W3]
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path.home() / ".cache" / "qaflow-bench" / "snakemake-venv"
CONCURRENCY = 2
TARGETS = {
    "W1": "<= 1.25x the bare loop",
    "W2": "(no target: reported)",
    "W3": "<= 0.25 s and <= 0.3x Snakemake",
    "W4": "<= 1.1x the bare loop",
    "dryrun": "<= 0.2 s",
    "list": "<= 5 s, <= 1 GB peak RSS",
}
# The floor of a no-op and of a dry run before any of qaflow's own code: the interpreter and
# the imports of the libraries those paths need. With its files unchanged (kept parses and
# validations) and every run up to date (plain lines, no table), that is click alone.
IMPORTS_FLOOR = {
    "W3": ("python+click", "import click"),
    "dryrun": ("python+click", "import click"),
}
FLAT = (
    "{name}:\n  type: script\n  inputs: [{name}]\n"
    "  configurations: ['echo {name} > $QA_OUTPUT_DIR/out.txt']\n"
)
DAG = (
    "a:\n  type: script\n  inputs: [a]\n"
    "  configurations: ['echo a > $QA_OUTPUT_DIR/out.txt']\n"
    "b:\n  type: script\n  needs: a\n"
    "  configurations: ['echo b > $QA_OUTPUT_DIR/out.txt']\n"
    "c:\n  type: script\n  needs: b\n  inputs: [c]\n"
    "  configurations: ['echo c > $QA_OUTPUT_DIR/out.txt']\n"
)
SNAKE_FLAT = """
IDS = glob_wildcards("data/{name}/{{i}}.raw").i
rule all:
    input: expand("out/{name}/{{i}}.txt", i=IDS)
rule run:
    input: "data/{name}/{{i}}.raw"
    output: "out/{name}/{{i}}.txt"
    shell: "echo {name} > {{output}}"
"""
SNAKE_DAG = """
A = glob_wildcards("data/a/{i}.raw").i
C = glob_wildcards("data/c/{i}.raw").i
rule all:
    input: expand("out/c/{i}.txt", i=C)
rule a:
    input: "data/a/{i}.raw"
    output: "out/a/{i}.txt"
    shell: "echo a > {output}"
rule b:
    input: expand("out/a/{i}.txt", i=A)
    output: "out/b/out.txt"
    shell: "echo b > {output}"
rule c:
    input: "data/c/{i}.raw", "out/b/out.txt"
    output: "out/c/{i}.txt"
    shell: "echo c > {output}"
"""


def inputs(root: Path, folder: str, count: int) -> list[str]:
    """`count` input files under data/FOLDER; their names without extension."""
    (root / "data" / folder).mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}" for i in range(count)]
    for name in names:
        (root / "data" / folder / f"{name}.raw").write_text(name)
    return names


def make_flat(root: Path, count: int) -> list[str]:
    """A project of one batch `w` of `count` script runs; the bare loop's commands."""
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text(
        "inputs:\n  database: data\n  globs: '*.raw'\nstorage: output\n"
    )
    (root / "qa" / "batches.yaml").write_text(FLAT.format(name="w"))
    (root / "Snakefile").write_text(SNAKE_FLAT.format(name="w"))
    return [_command(root / "bare" / "w" / name, "w") for name in inputs(root, "w", count)]


def make_dag(root: Path) -> list[list[str]]:
    """W2's project; the bare loop's commands, stage by stage."""
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text(
        "inputs:\n  database: data\n  globs: '*.raw'\nstorage: output\n"
    )
    (root / "qa" / "batches.yaml").write_text(DAG)
    (root / "Snakefile").write_text(SNAKE_DAG)
    stage_a = [_command(root / "bare" / "a" / n, "a") for n in inputs(root, "a", 4)]
    stage_c = [_command(root / "bare" / "c" / n, "c") for n in inputs(root, "c", 100)]
    return [stage_a, [_command(root / "bare" / "b", "b")], stage_c]


def _command(folder: Path, text: str) -> str:
    """The bare loop's command for one run: its folder made, one small file written."""
    quoted = shlex.quote(str(folder))
    return f"mkdir -p {quoted} && echo {text} > {quoted}/out.txt"


def bytecode_env() -> dict[str, str]:
    """The environment of the timed processes: Python caches compiled modules, as in an
    installed tool, even if this shell says PYTHONDONTWRITEBYTECODE (the cache goes to a
    folder of the benchmark's own, not into the source trees compared)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path.home() / ".cache" / "qaflow-bench" / "pycache")
    return env


def timed(command: list[str], env: dict[str, str] | None = None, stdin: str = "") -> float:
    start = time.perf_counter()
    env = env if env is not None else bytecode_env()
    done = subprocess.run(command, input=stdin.encode(), env=env, capture_output=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr.decode()[-3000:]}")
    return wall


def timed_rss(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of one process (its output discarded)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({process.returncode})")
    return wall, usage.ru_maxrss / 1024


def bare(stages: list[list[str]]) -> float:
    """The floor: each stage's commands through `xargs -P2 sh -c`, stage after stage."""
    start = time.perf_counter()
    for commands in stages:
        stdin = "".join(command.replace("\0", "") + "\0" for command in commands)
        done = subprocess.run(
            ["xargs", "-0", f"-P{CONCURRENCY}", "-n1", "sh", "-c"],
            input=stdin.encode(),
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr
    return time.perf_counter() - start


class Tools:
    """The tools compared: each qaflow tree, the bare loop, Snakemake if installed."""

    def __init__(self, qaflows: dict[str, Path], snakemake: Path | None) -> None:
        self.qaflows = qaflows
        self.snakemake = snakemake

    def qa(self, name: str, root: Path, *args: str) -> list[str]:
        del name
        return [sys.executable, "-m", "qaflow", "-C", str(root), *args]

    def env(self, name: str) -> dict[str, str]:
        """Each tree compiles and keeps its validations in folders of its own: trees whose
        kept files differ in layout must not spoil each other's (as one user's version)."""
        kept = Path.home() / ".cache" / "qaflow-bench" / "config" / name
        return {
            **bytecode_env(),
            "PYTHONPATH": str(self.qaflows[name]),
            "QA_CONFIG_CACHE_DIR": str(kept),
        }

    def snake(self, root: Path, *args: str) -> list[str]:
        assert self.snakemake is not None
        return [
            str(self.snakemake), "-c", str(CONCURRENCY), "-s", str(root / "Snakefile"),
            "-d", str(root), "--quiet", "all", *args,
        ]  # fmt: skip


Measure = Callable[[], float]


def alternate(measures: dict[str, Callable[[int], Measure]], repeat: int) -> dict[str, float]:
    """Each tool's median over `repeat` repetitions, tools alternating in each repetition,
    each repetition starting with the next tool (the first of a repetition measured slower
    here: W4 5.99 s first vs 5.17 s second, the same tree). A measure factory gets the
    repetition's number and makes the project; its files reach the disk (os.sync) before
    the timed call, so that none of the timed tools pays for writing the benchmark's setup."""
    times: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for rep in range(repeat):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            measure = measures[name](rep)
            os.sync()
            times[name].append(measure())
    return {name: statistics.median(values) for name, values in times.items()}


def fresh(tmp: Path, label: str, rep: int, make: Callable[[Path], object]) -> tuple[Path, object]:
    root = tmp / f"{label}-{rep}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root, make(root)


def flat_workload(tools: Tools, tmp: Path, count: int, repeat: int) -> dict[str, float]:
    measures: dict[str, Callable[[int], Measure]] = {}
    for name in tools.qaflows:

        def qa_measure(rep: int, name: str = name) -> Measure:
            root, _ = fresh(tmp, f"flat{count}-{name}", rep, lambda r: make_flat(r, count))
            command = tools.qa(name, root, "batch", "w", "--local-concurrency", "2")
            return lambda: timed(command, tools.env(name))

        measures[f"qaflow[{name}]"] = qa_measure

    def bare_measure(rep: int) -> Measure:
        _, commands = fresh(tmp, f"flat{count}-bare", rep, lambda r: make_flat(r, count))
        return lambda: bare([commands])  # type: ignore[list-item]

    measures["bare xargs -P2"] = bare_measure
    if tools.snakemake is not None:

        def snake_measure(rep: int) -> Measure:
            root, _ = fresh(tmp, f"flat{count}-snake", rep, lambda r: make_flat(r, count))
            return lambda: timed(tools.snake(root))

        measures["snakemake"] = snake_measure
    return alternate(measures, repeat)


def dag_workloads(tools: Tools, tmp: Path, repeat: int) -> dict[str, dict[str, float]]:
    """W2 (fresh), W3 (the no-op re-run) and the dry run of W2 (up to date); the tools take
    turns as in `alternate`, each project on disk before its first timed call."""
    w2: dict[str, list[float]] = {}
    w3: dict[str, list[float]] = {}
    dry: dict[str, list[float]] = {}

    def qaflow(name: str, rep: int) -> None:
        root, _ = fresh(tmp, f"dag-{name}", rep, make_dag)
        os.sync()
        qa = tools.qa(name, root, "batch", "c", "--local-concurrency", "2")
        key = f"qaflow[{name}]"
        w2.setdefault(key, []).append(timed(qa, tools.env(name)))
        w3.setdefault(key, []).append(timed(qa, tools.env(name)))
        dryrun = tools.qa(name, root, "--dryrun", "batch", "c")
        dry.setdefault(key, []).append(timed(dryrun, tools.env(name)))

    def floors(rep: int) -> None:
        for label, times in (("W3", w3), ("dryrun", dry)):
            name, imports = IMPORTS_FLOOR[label]
            times.setdefault(name, []).append(timed([sys.executable, "-c", imports]))

    def bare_loop(rep: int) -> None:
        _, stages = fresh(tmp, "dag-bare", rep, make_dag)
        os.sync()
        w2.setdefault("bare xargs -P2", []).append(bare(stages))  # type: ignore[arg-type]

    def snakemake(rep: int) -> None:
        root, _ = fresh(tmp, "dag-snake", rep, make_dag)
        os.sync()
        w2.setdefault("snakemake", []).append(timed(tools.snake(root)))
        w3.setdefault("snakemake", []).append(timed(tools.snake(root)))
        dry.setdefault("snakemake", []).append(timed(tools.snake(root, "--dry-run")))

    turns: list[Callable[[int], None]] = [
        *(functools.partial(qaflow, name) for name in tools.qaflows),
        floors,
        bare_loop,
    ]
    if tools.snakemake is not None:
        turns.append(snakemake)
    for rep in range(repeat):
        for turn in turns[rep % len(turns) :] + turns[: rep % len(turns)]:
            turn(rep)

    def medians(times: dict[str, list[float]]) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in times.items()}

    return {"W2": medians(w2), "W3": medians(w3), "dryrun": medians(dry)}


def listing(tools: Tools, tmp: Path, runs: int, repeat: int) -> dict[str, tuple[float, float]]:
    """`qa batch --list` of `runs` runs (inputs x 10 configurations): time and peak RSS."""
    root = tmp / "list"
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text("inputs:\n  database: data\n  globs: '*.raw'\n")
    configs = ", ".join(f"[c{i}]" for i in range(10))
    (root / "qa" / "batches.yaml").write_text(
        f"big:\n  inputs: [big]\n  matrix:\n    configs: [{configs}]\n"
    )
    for i in range(runs // 10):
        folder = root / "data" / "big" / f"d{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.raw").write_text("x")
    found: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeat):
        for name in tools.qaflows:
            command = tools.qa(name, root, "batch", "big", "--list")
            found.setdefault(f"qaflow[{name}]", []).append(timed_rss(command, tools.env(name)))
    return {
        name: (
            statistics.median(wall for wall, _ in values),
            max(rss for _, rss in values),
        )
        for name, values in found.items()
    }


def report(title: str, figures: dict[str, float], target: str) -> None:
    floor = figures.get("bare xargs -P2")
    snake = figures.get("snakemake")
    print(f"{title}   target: {target}")
    for name, wall in figures.items():
        ratios = []
        if floor and name != "bare xargs -P2":
            ratios.append(f"{wall / floor:.2f}x bare loop")
        if snake and name != "snakemake":
            ratios.append(f"{wall / snake:.2f}x snakemake")
        print(f"  {name:<22} {wall:7.3f} s   {'  '.join(ratios)}")


def snakemake_of(venv: Path) -> Path | None:
    executable = venv / "bin" / "snakemake"
    if executable.exists():
        return executable
    print(
        f"Snakemake skipped: not installed in {venv} "
        f"(python -m venv {venv} && {venv}/bin/pip install snakemake)"
    )
    return None


def filesystem_of(folder: Path) -> str:
    """The type of the filesystem holding `folder` (from /proc/mounts), and whether an ext4
    one has no journal: there, every new file or folder skips the inodes deleted in the last
    minute or so (the kernel's `recently_deleted`), so creating files slows down for a while
    after a workload's folders are deleted. A tool that makes more files per run than the
    bare loop then pays more than its own code costs."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "an unknown filesystem"
    resolved = str(folder.resolve())
    best = max(
        (m for m in mounts if len(m) > 2 and (resolved + "/").startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    if best is None:
        return "an unknown filesystem"
    device, mount, kind = best[0], best[1], best[2]
    note = ""
    if kind == "ext4":
        name = Path(device).name
        journal = Path("/proc/fs/jbd2")
        if journal.is_dir() and not any(p.name.startswith(f"{name}-") for p in journal.iterdir()):
            note = " without a journal"
    return f"{kind}{note} ({mount})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--repeat-w4", type=int, default=3)
    parser.add_argument("--qaflow", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--snakemake-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--no-snakemake", action="store_true")
    parser.add_argument("--snakemake-w4", action="store_true", help="Snakemake on W4 too (minutes)")
    parser.add_argument("--list-runs", type=int, default=100_000)
    parser.add_argument("--only", default="W1,W2,W4,list", help="W1,W2 (with W3, dryrun),W4,list")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the workloads' projects are made (default: the temporary folder); "
        "e.g. /dev/shm to measure the tools, not the disk (see filesystem_of)",
    )
    args = parser.parse_args()
    qaflows = dict(item.split("=", 1) for item in args.qaflow) or {"this": str(HERE.parent / "src")}
    snakemake = None if args.no_snakemake else snakemake_of(args.snakemake_venv)
    tools = Tools({name: Path(src).resolve() for name, src in qaflows.items()}, snakemake)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        print(
            f"{os.cpu_count()} CPUs, concurrency {CONCURRENCY}, medians of {args.repeat}, "
            f"projects on {filesystem_of(Path(tmp))}"
        )
        if "W1" in only:
            report("W1: 200 runs", flat_workload(tools, Path(tmp), 200, args.repeat), TARGETS["W1"])
        if "W2" in only:
            for label, figures in dag_workloads(tools, Path(tmp), args.repeat).items():
                title = {"W2": "W2: DAG 4 -> 1 -> 100", "W3": "W3: W2 re-run, nothing changed"}
                report(title.get(label, "qa --dryrun batch of W2"), figures, TARGETS[label])
        if "W4" in only:
            w4_tools = tools if args.snakemake_w4 else Tools(tools.qaflows, None)
            figures = flat_workload(w4_tools, Path(tmp), 2000, args.repeat_w4)
            report("W4: 2,000 runs", figures, TARGETS["W4"])
        if "list" in only:
            print(f"qa batch --list of {args.list_runs:,} runs   target: {TARGETS['list']}")
            for name, (wall, rss) in listing(tools, Path(tmp), args.list_runs, args.repeat).items():
                print(f"  {name:<22} {wall:7.3f} s   peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
