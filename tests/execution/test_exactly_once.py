"""Exactly once across processes: `qa batch` processes started together on one storage.

From the reproduction of issue 14: on a 3-stage DAG, two processes each executed downstream
runs a second time, and a process re-executing an upstream run removed files that a downstream
run of the other was reading. Here every run appends to a shared counter file; each must
appear once, and every process must succeed. Downstream runs read their upstream's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_project

MAIN = """
import os, time
from pathlib import Path

def run(context):
    with open(Path(context.database) / "calls.log", "a") as f:
        f.write(f"{context.batch} {context.rel_input_path}\\n")
    time.sleep(0.05)
    text = context.input_path.read_text()
    for upstream in context.params.get("reads", []):
        text += Path(upstream, "out.txt").read_text()  # fails if it was removed meanwhile
    (context.output_dir / "out.txt").write_text(text)
    return {"size": len(text)}
"""

INPUTS = [f"i{i:02d}.raw" for i in range(8)]
BATCHES = f"""
first: {{inputs: [{", ".join(INPUTS)}]}}
second:
  needs: {{up: {{batch: first, per: input}}}}
  inputs: [{", ".join(INPUTS)}]
  configs: [{{reads: ["${{up.output_dir}}"]}}]
third:
  needs: second
  type: script
  configs: ["for d in ${{o.output_dir for o in needs['second']}}; do cat $d/out.txt; done > $QA_OUTPUT_DIR/all.txt && echo third >> calls.log"]
"""
RUNS = 2 * len(INPUTS) + 1


def make(tmp_path: Path, name: str) -> Path:
    return write_project(tmp_path / name, batches=BATCHES, files=INPUTS, extra={"qa/main.py": MAIN})


def start(root: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "third", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def executed(root: Path) -> Counter[str]:
    return Counter((root / "calls.log").read_text().splitlines())


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_processes_execute_each_run_exactly_once(tmp_path, processes):
    env = {**os.environ, "QA_BATCH_CONCURRENCY": "2"}
    for trial in range(3):
        root = make(tmp_path, f"trial{trial}")
        drivers = [start(root, env=env) for _ in range(processes)]
        outputs = [driver.communicate(timeout=600)[0] for driver in drivers]
        assert [d.returncode for d in drivers] == [0] * processes, "\n".join(outputs)
        counts = executed(root)
        assert len(counts) == RUNS, counts
        assert {name: n for name, n in counts.items() if n != 1} == {}, "\n".join(outputs)
        summary = next((root / "output" / "runs" / "third").rglob("all.txt")).read_text()
        assert summary.count(".raw") == 2 * len(INPUTS)  # second: its input, then first's


def test_with_the_store_on_postgresql(tmp_path, postgres_url):
    env = {**os.environ, "QA_BATCH_CONCURRENCY": "2", "QA_DATABASE_URL": postgres_url}
    root = make(tmp_path, "pg")
    drivers = [start(root, env=env) for _ in range(2)]
    outputs = [driver.communicate(timeout=600)[0] for driver in drivers]
    assert [d.returncode for d in drivers] == [0, 0], "\n".join(outputs)
    assert set(executed(root).values()) == {1} and len(executed(root)) == RUNS


def test_a_process_forcing_the_upstream_never_removes_what_another_reads(tmp_path):
    env = {**os.environ, "QA_BATCH_CONCURRENCY": "2"}
    root = make(tmp_path, "forced")
    assert start(root, env=env).communicate(timeout=600) is not None
    for _trial in range(2):
        readers = [start(root, "--force-batch", "second", env=env) for _ in range(2)]
        forcing = start(root, "--force-batch", "first", env=env)
        outputs = [d.communicate(timeout=600)[0] for d in (*readers, forcing)]
        assert [d.returncode for d in (*readers, forcing)] == [0, 0, 0], "\n".join(outputs)
