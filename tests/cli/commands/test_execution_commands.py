"""`qa batch` (executing), `qa run`, `qa init` and `qa logs` from the command line."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

import qaflow
from qaflow.execution.report import ConsoleReporter

MAIN = """
def run(context):
    print("processing", context.rel_input_path)
    if "bad" in str(context.input_path):
        raise ValueError("bad input")
    return {"n": 1}
"""


def test_qa_init_then_qa_batch_my_batch_succeeds(tmp_path, qa):
    created = qa("init", str(tmp_path / "new"))
    assert created.exit_code == 0, created.stderr
    result = qa("-C", str(tmp_path / "new"), "batch", "my-batch")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert re.search(r"my-batch\s*│\s*2\s*│\s*2\s*│", result.stdout), result.stdout  # 2 succeeded
    assert "✓ succeeded" not in result.stdout  # off a terminal: no line per successful run
    found = (tmp_path / "new" / "output" / "runs" / "my-batch").glob("*/*/output.txt")
    outputs = sorted(p for p in found if p.parent.is_symlink())  # committed results
    assert [p.read_text() for p in outputs] == ["HELLO WORLD\n" * 2, "THE QUICK BROWN FOX\n" * 2]
    sweep = qa("-C", str(tmp_path / "new"), "batch", "my-sweep")
    assert sweep.exit_code == 0 and "6 run(s)" in sweep.stdout


def test_qa_init_refuses_to_overwrite(tmp_path, qa):
    assert qa("init", str(tmp_path)).exit_code == 0
    again = qa("init", str(tmp_path))
    assert again.exit_code == 2 and "writes nothing over existing files" in again.stderr


def test_batch_prints_plain_lines_and_a_summary_when_not_a_terminal(project, qa):
    root = project(
        batches="b:\n  inputs: [ok.txt, bad.txt]\n",
        files=["ok.txt", "bad.txt"],
        extra={"qa/main.py": MAIN},
    )
    result = qa("-C", str(root), "batch", "b", "--local-concurrency", "1")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("execution ") and "2 run(s) in b (2)" in lines[0]
    # one line per failure as it happens, none per successful run
    assert lines[1].startswith("✗ failed    b  bad.txt") and "ValueError: bad input" in lines[1]
    assert not any("ok.txt" in line for line in lines)
    [failure] = [line for line in lines if line.startswith("✗ b bad.txt: ")]
    assert failure.startswith("✗ b bad.txt: ValueError: bad input  → ")
    assert failure.endswith("/log.txt") and "/runs/b/bad.txt/" in failure
    assert "execution" in result.stdout and "failed" in result.stdout


def test_live_progress_on_a_terminal(project):
    root = project(batches="b:\n  inputs: [ok.txt]\n", files=["ok.txt"], extra={"qa/main.py": MAIN})
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    execution = qaflow.batch("b", project=root, reporter=ConsoleReporter(console))
    assert execution.exit_code == 0
    text = out.getvalue()
    assert "1/1" in text and "1 done, 0 running, 0 failed" in text
    assert "[1/1] ✓" not in text  # bars, not lines


def test_qa_run_with_a_command(project, qa):
    root = project(files=["A.txt"])
    result = qa("-C", str(root), "run", "-i", "A.txt", 'echo "{input_path} => {output_dir}"')
    assert result.exit_code == 0, result.stderr
    found = (root / "output" / "runs" / "@run" / "A.txt").glob("*/log.txt")
    [log] = [p for p in found if p.parent.is_symlink()]  # the committed result
    assert (
        log.read_text().strip() == f"{root.resolve() / 'A.txt'} => {log.parent.resolve()}"
    )  # the attempt
    failing = qa("-C", str(root), "run", "-i", "A.txt", "exit 3")
    assert failing.exit_code == 1 and "command exited with status 3" in failing.stdout


def test_qa_run_the_entrypoint_and_errors(project, qa):
    root = project(files=["bad.txt", "ok.txt"], extra={"qa/main.py": MAIN})
    assert qa("-C", str(root), "run", "-i", "ok.txt").exit_code == 0
    failed = qa("-C", str(root), "run", "-i", "bad.txt")
    assert (
        failed.exit_code == 1
        and "✗ failed" in failed.stdout
        and "ValueError: bad input" in failed.stdout
    )
    missing = qa("-C", str(root), "run", "-i", "nope.txt")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    no_entry = project(files=["x"])
    result = qa("-C", str(no_entry), "run", "-i", "x")
    assert result.exit_code == 2 and "qa init" in result.stderr and "entrypoint" in result.stderr


def test_qa_logs_by_id_prefix_and_by_directory(project, qa):
    root = project(batches="b:\n  inputs: [ok.txt]\n", files=["ok.txt"], extra={"qa/main.py": MAIN})
    assert qa("-C", str(root), "batch", "b").exit_code == 0
    [run] = qa("-C", str(root), "batch", "b", "--list").json()
    by_id = qa("-C", str(root), "logs", run["id"][:6])
    assert by_id.exit_code == 0 and "processing ok.txt" in by_id.stdout
    by_dir = qa("-C", str(root), "logs", run["output_dir"])
    assert by_dir.stdout == by_id.stdout
    unknown = qa("-C", str(root), "logs", "ffffffff")
    assert unknown.exit_code == 2 and "No run matches 'ffffffff'" in unknown.stderr


def test_the_console_script_runs_a_batch(project):
    root = project(batches="b:\n  inputs: [ok.txt]\n", files=["ok.txt"], extra={"qa/main.py": MAIN})
    out = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "b"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(
        next(Path(root, "output", "runs", "b").glob("*/*/metrics.json")).read_text()
    )
    assert metrics["n"] == 1 and metrics["is_failed"] is False
