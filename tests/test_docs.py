"""The README's commands stay true: CI runs the same test command, the example plans."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README starts with a bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_the_two_commands_and_ci_runs_them():
    example, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci
    assert example in ci
    assert "examples/" in example


def test_the_example_project_plans(qa):
    runs = qa("-C", str(ROOT / "examples" / "images"), "batch", "all", "--list").json()
    by_batch: dict[str, int] = {}
    for run in runs:
        by_batch[run["batch"]] = by_batch.get(run["batch"], 0) + 1
    assert by_batch == {"calibration-images": 4, "evaluation": 3, "sweep": 3 * 3 * 2}
    sweep = [r for r in runs if r["batch"] == "sweep"]
    assert sorted({r["params"]["threshold"] for r in sweep}) == [50, 100, 128]
