"""The inline executor: each task runs in the calling process on submit."""

from __future__ import annotations

import json
import os

import pytest
from test_local import make_task

from conftest import write_project
from qaflow.execution.executors import InlineExecutor
from qaflow.worker.model import RunStatus

MAIN = """
import os

def run(context):
    if context.params["mode"] == "raise":
        raise RuntimeError("no")
    return {"pid": os.getpid(), "x": 1}
"""


def test_submit_runs_the_task_now_in_this_process(tmp_path):
    root = write_project(tmp_path / "p", extra={"qa/main.py": MAIN})
    with InlineExecutor() as executor:
        future = executor.submit(make_task(root, "a"))
        assert future.done()
        result = future.result()
        failed = executor.submit(make_task(root, "b", "raise")).result()
    assert result.status is RunStatus.SUCCEEDED
    assert result.metrics["pid"] == os.getpid() == result.pid
    assert json.loads((root / "output" / "a" / "metrics.json").read_text())["x"] == 1
    assert failed.status is RunStatus.FAILED and failed.error_line == "RuntimeError: no"
    with pytest.raises(RuntimeError):
        executor.submit(make_task(root, "c"))
