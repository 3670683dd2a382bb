"""What a person at a terminal (or a CI log) sees: progress, summary, quiet, help,
completion, JSON of `qa why` and `qa dag`, and silence from Python."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import qaflow
from qaflow.config.project import Project
from qaflow.execution.console import ConsoleReporter
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan
from qaflow.worker.model import RunResult, RunStatus

DEADLINE = 120.0

MAIN = """
import time

def run(context):
    name = context.input_path.name
    time.sleep(0.2)
    if name.startswith("bad"):
        raise ValueError("bad input " + name)
    return {"psnr": 30.0 if name == "a.txt" else 40.0, "time_ms": 2.0}
"""
METRICS = """
available_metrics:
  psnr: {label: PSNR, short_label: PSNR, suffix: dB, smaller_is_better: false}
  time_ms: {label: time, short_label: ms, scale: 1000, suffix: us}
summary_metrics: [psnr, time_ms]
"""


def make(project, inputs: tuple[str, ...] = ("a.txt", "b.txt")) -> Path:
    return project(
        batches=f"b:\n  inputs: [{', '.join(inputs)}]\n",
        files=list(inputs),
        extra={"qa/main.py": MAIN, "qa/metrics.yaml": METRICS},
    )


def qa(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def row_of(stdout: str, batch: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.lstrip("│ ").startswith(f"{batch} "))
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def test_the_summary_shows_summary_metrics_and_the_batch_wall_time(project):
    root = make(project, ("a.txt", "b.txt", "c.txt", "d.txt"))
    done = qa(root, "batch", "b", "--local-concurrency", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if "wall time" in line)
    assert "PSNR" in header and "ms" in header
    cells = row_of(done.stdout, "b")
    assert cells[-2] == "37.5dB"  # the mean over the batch, formatted as metrics.yaml says
    assert cells[-1] == "2000us"
    # the wall time of the batch: from the first start to the last end, not a sum of runs
    execution = qaflow.batch("b", project=root, force=True, concurrency=4)
    results = [run.result for run in execution.runs()]
    from qaflow.execution.summary import wall_time

    span = max(r.ended_at for r in results) - min(r.started_at for r in results)
    assert wall_time(results) == (f"{span * 1000:.0f}ms" if span < 1 else f"{span:.1f}s")
    assert span < sum(r.duration for r in results)  # 4 runs in parallel


def test_off_a_terminal_one_line_per_failure_and_progress_lines(project):
    names = (*tuple(f"{i}.txt" for i in range(6)), "bad1.txt")
    root = make(project, names)
    the_plan = plan(Project.discover(root), ["b"], PlanOptions())
    out = io.StringIO()
    from rich.console import Console

    reporter = ConsoleReporter(Console(file=out, width=200), interval=0.05)
    reporter.execution_started("x", the_plan)
    now = time.time()
    for spec in the_plan.runs:
        reporter.run_started(spec, 1)
        status = RunStatus.FAILED if spec.rel_input_path == "bad1.txt" else RunStatus.SUCCEEDED
        result = RunResult(
            spec.key, status, error="ValueError: bad", started_at=now, ended_at=now + 1
        )
        reporter.run_finished(spec, result)
    deadline = time.monotonic() + DEADLINE
    while "progress: 7/7" not in out.getvalue():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    reporter.close()
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "failed " in line and "bad1.txt" in line] == [
        next(line for line in lines if line.startswith("✗ failed"))
    ]
    assert not any("succeeded" in line for line in lines)  # no line per successful run
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress and "b: 6 done, 0 running, 1 failed" in progress[-1]


def test_quiet_prints_only_the_failures(project):
    root = make(project, ("a.txt", "bad1.txt"))
    done = qa(root, "batch", "b", "--quiet")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and "bad1.txt" in lines[0] and "ValueError" in lines[0], lines


def test_live_progress_on_a_real_terminal_ends_and_shows_an_eta(project):
    root = make(project, ("a.txt", "b.txt", "c.txt"))
    main, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "b"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "200"},
    ) as proc:
        os.close(follower)
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 65536):
                seen += chunk
        assert proc.wait(timeout=DEADLINE) == 0, seen.decode(errors="replace")
    os.close(main)
    text = seen.decode(errors="replace")
    assert "qa batch: planning" in text  # the first sign of life, before planning
    assert "ETA" in text and "3/3" in text
    assert "succeeded" in text and "wall time" in text


def test_qa_help_does_not_cut_descriptions(project):
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    commands = done.stdout.split("Commands:")[1]
    assert "..." not in commands
    assert "why" in commands and "upstream runs." in " ".join(commands.split())


def complete(root: Path, shell: str, words: str, cword: str) -> list[str]:
    env = {
        **os.environ,
        "_QA_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": cword,
    }
    done = subprocess.run(
        [sys.executable, "-m", "qaflow"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_completes_commands_and_batch_names(project):
    root = project(
        batches="calib:\n  inputs: [a.txt]\ncalibration-check:\n  inputs: [a.txt]\nother:\n  inputs: [a.txt]\n",
        files=["a.txt"],
    )
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert complete(root, "bash", "qa batch cal", "2") == ["plain,calib", "plain,calibration-check"]
    assert complete(root, "bash", "qa ba", "1") == ["plain,batch"]
    assert complete(root, "zsh", "qa dag o", "2") == ["plain", "other", "_"]
    assert complete(root, "fish", "qa why ", "") == [
        "plain,calib",
        "plain,calibration-check",
        "plain,other",
    ]
    assert complete(root, "bash", "qa batch -b ot", "3") == ["plain,other"]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written
    for shell in ("bash", "zsh", "fish"):
        script = subprocess.run(
            [sys.executable, "-m", "qaflow", "completion", shell],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "_QA_COMPLETE" in script and f"{shell}_complete" in script


def test_qa_why_json_and_qa_dag_json(project):
    root = project(
        batches="up:\n  inputs: [a.txt, b.txt]\ndown:\n  needs: up\n  inputs: [a.txt]\n",
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": "def run(context):\n    return {'ok': 1}\n"},
    )
    graph = json.loads(qa(root, "dag", "down", "--format", "json").stdout)
    assert graph["nodes"] == [{"name": "up", "runs": 2}, {"name": "down", "runs": 1}]
    assert graph["edges"] == [{"from": "up", "to": "down", "label": ""}]
    assert graph["runs"] == 3
    fresh = json.loads(qa(root, "why", "down", "--json").stdout)
    assert fresh["would_run"] == 3 and fresh["up_to_date"] == 0
    assert {r["reasons"][0] for r in fresh["runs"]} == {"it has never run"}
    assert qa(root, "batch", "down").returncode == 0
    (root / "b.txt").write_text("changed")
    changed = json.loads(qa(root, "why", "down", "--json").stdout)
    assert changed["up_to_date"] == 1 and changed["would_run"] == 1
    assert changed["waiting_on_upstream"] == 1  # reused if `up` produces the same outputs
    stale, downstream = changed["runs"]
    assert stale["batch"] == "up" and stale["input"] == "b.txt"
    assert any("content" in reason for reason in stale["reasons"])
    assert downstream["batch"] == "down" and "waits on up b.txt" in downstream["reasons"][0]


def test_qaflow_batch_from_python_prints_nothing_unless_asked(project, capfd):
    root = make(project, ("a.txt", "bad1.txt"))
    execution = qaflow.batch("b", project=root)
    assert execution.exit_code == 1
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    qaflow.batch("b", project=root, force=True, progress=True)
    out, _ = capfd.readouterr()
    assert "execution" in out and "bad1.txt" in out
    assert re.search(r"wall time", out)
