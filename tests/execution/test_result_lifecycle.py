"""The life of a run's result, as a hypothesis state machine over real `qa batch` processes.

Random sequences of: run, force, a forced run that fails, a forced run cancelled (SIGTERM,
what `qa cancel` sends) or its driver killed (SIGKILL) while its runs are executing, deleting
a committed result's files, editing an input. Invariants: `qa batch` never records a run as
succeeded or cached whose directory lacks its files or whose metrics say it failed, and a
committed result is never lost by a later attempt (only by deleting its files by hand).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from conftest import write_project
from qaflow.store import Store

MAIN = """
import time
from pathlib import Path

def run(context):
    root = Path(context.database)
    with open(root / "calls.log", "a") as f:
        f.write(f"{context.rel_input_path}\\n")
    if (root / "slow").exists():
        time.sleep(60)
    if (root / "fail").exists():
        raise RuntimeError("asked to fail")
    (context.output_dir / "out.txt").write_text(context.input_path.read_text().upper())
    return {"size": len(context.input_path.read_text())}
"""
INPUTS = ("a.raw", "b.raw")


class ResultLifecycle(RuleBasedStateMachine):
    """The storage of one project, driven by `qa batch b` processes."""

    def __init__(self) -> None:
        super().__init__()
        self.good: dict[Path, str] = {}  # committed results -> the out.txt they hold

    @initialize(tmp=st.uuids())
    def make(self, tmp) -> None:
        self.root = write_project(
            Path(TMP) / str(tmp),
            batches="b: {inputs: [a.raw, b.raw]}\n",
            files=list(INPUTS),
            extra={"qa/main.py": MAIN},
        )

    # ------------------------------------------------------------ actions
    @rule()
    def run(self) -> None:
        self._batch(expect=0)

    @rule()
    def force(self) -> None:
        self._batch("--force", expect=0)

    @rule()
    def failing_run(self) -> None:
        (self.root / "fail").write_text("")
        try:
            self._batch("--force", expect=1)
        finally:
            (self.root / "fail").unlink()

    @rule(kill=st.sampled_from([signal.SIGTERM, signal.SIGKILL]))
    def interrupted_run(self, kill: signal.Signals) -> None:
        (self.root / "slow").write_text("")
        before = self._calls()
        driver = subprocess.Popen(
            [sys.executable, "-m", "qaflow", "-C", str(self.root), "batch", "b", "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while self._calls() < before + 1:  # a forced run is executing
                assert driver.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            driver.send_signal(kill)
            driver.wait(timeout=60)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
            (self.root / "slow").unlink()
        time.sleep(0.3)  # the workers notice their driver died, and exit

    @rule(which=st.sampled_from(INPUTS))
    def delete_result_files(self, which: str) -> None:
        for folder in [f for f in self.good if f.parent.name == which]:
            (folder / "out.txt").unlink()
            del self.good[folder]  # lost by hand, not by qaflow

    @rule(which=st.sampled_from(INPUTS), text=st.sampled_from(["x", "yy", "zzz"]))
    def edit_input(self, which: str, text: str) -> None:
        (self.root / which).write_text(text)

    # ------------------------------------------------------------ invariants
    @invariant()
    def good_results_are_never_lost(self) -> None:
        for folder, text in self.good.items():
            assert (folder / "out.txt").read_text() == text, folder
            assert json.loads((folder / "metrics.json").read_text())["is_failed"] is False

    # ------------------------------------------------------------ helpers
    def _batch(self, *args: str, expect: int) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "qaflow", "-C", str(self.root), "batch", "b", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == expect, done.stdout + done.stderr
        self._check_recorded()

    def _check_recorded(self) -> None:
        """Every run the last execution recorded as succeeded or cached has its files."""
        with Store.open(None, storage=self.root / "output") as store:
            [last] = store.lookups.executions(limit=1)
            runs = store.lookups.runs(last.id)
        for record in runs:
            if record.status.value not in ("succeeded", "cached"):
                continue
            folder = Path(record.output_dir)
            metrics = json.loads((folder / "metrics.json").read_text())
            assert metrics["is_failed"] is False, folder
            text = (folder / "out.txt").read_text()  # present
            self.good[folder] = text

    def _calls(self) -> int:
        path = self.root / "calls.log"
        return len(path.read_text().splitlines()) if path.exists() else 0


TMP = ""


def test_the_result_lifecycle(tmp_path):
    global TMP
    TMP = str(tmp_path)
    machine = settings(
        max_examples=2,
        stateful_step_count=4,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )(ResultLifecycle)
    machine.TestCase().runTest()
