"""A no-op re-run on the console (ConsoleReporter.show_settled): plain lines when every run
is up to date and no summary metric is asked for, the events and the table otherwise; and
then `qa batch` imports neither rich nor PyYAML, pydantic or SQLAlchemy."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import qaflow
from importing import packages, qa_importing
from qaflow.config.git import may_be_in_git
from qaflow.execution.model import Execution
from qaflow.execution.report import (
    ConsoleReporter,
    NullReporter,
    RecordingReporter,
    Reporters,
    SummaryMetric,
)
from qaflow.worker.model import RunStatus

BATCHES = (
    "first:\n  type: script\n  inputs: [a.txt, b.txt]\n"
    "  configs: ['echo 1 > $QA_OUTPUT_DIR/out.txt']\n"
    "second:\n  type: script\n  needs: first\n"
    "  configs: ['echo 2 > $QA_OUTPUT_DIR/out.txt']\n"
)


def settled(project) -> tuple[Path, Execution]:
    """A project run once, then its no-op re-run (every run CACHED)."""
    root = project(batches=BATCHES, files=["a.txt", "b.txt"])
    assert qaflow.batch("second", project=root, reporter=NullReporter()).status == "succeeded"
    again = qaflow.batch("second", project=root, reporter=NullReporter())
    assert {r.status for r in again.results.values()} == {RunStatus.CACHED}
    return root, again


def test_an_up_to_date_execution_is_shown_as_plain_lines(project, capsys, monkeypatch):
    root, execution = settled(project)
    monkeypatch.chdir(root)
    assert ConsoleReporter().show_settled(execution) is True
    assert capsys.readouterr().out.splitlines() == [
        f"execution {execution.id}: 3 run(s) in first (2), second (1)",
        "= cached    first: 2 run(s) up to date",
        "= cached    second: 1 run(s) up to date",
        f"execution {execution.id} ({execution.label}): succeeded, nothing to run: "
        "3 run(s) up to date",
        "outputs: output/runs/  logs: <output dir>/log.txt, or `qa logs RUN`",
    ]


def test_quiet_shows_nothing_and_the_spinner_is_cleared(project, capsys):
    _, execution = settled(project)
    cleared: list[bool] = []
    reporter = ConsoleReporter(quiet=True, before_output=lambda: cleared.append(True))
    assert reporter.show_settled(execution) is True
    assert capsys.readouterr().out == "" and cleared == [True]


@pytest.mark.parametrize("why", ["summary metric", "a failed run", "qa run"])
def test_otherwise_the_events_show_it(project, capsys, why):
    """A summary metric is a column only the table has; a run that did not succeed is a
    line and a count the events give; `qa run` ends with its own line."""
    _, execution = settled(project)
    reporter = ConsoleReporter()
    if why == "summary metric":
        reporter = ConsoleReporter(summary_metrics=[SummaryMetric("psnr", "PSNR")])
    elif why == "qa run":
        reporter = ConsoleReporter(single=True)
    else:
        key = next(iter(execution.results))
        failed = dataclasses.replace(execution.results[key], status=RunStatus.FAILED)
        execution = dataclasses.replace(execution, results={**execution.results, key: failed})
    assert reporter.show_settled(execution) is False
    assert capsys.readouterr().out == ""


def test_a_no_op_qa_batch_imports_no_rich_yaml_pydantic_or_sqlalchemy(project, tmp_path):
    root = project(batches=BATCHES, files=["a.txt", "b.txt"])
    env = {**os.environ, "QA_CONFIG_CACHE_DIR": str(tmp_path / "kept")}
    env.pop("QA_CONFIG_CACHE", None)
    first, _ = qa_importing(root, "batch", "second", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "wall time" in first.stdout  # something ran: the table
    again, imported = qa_importing(root, "batch", "second", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to run: 3 run(s) up to date" in again.stdout
    assert "wall time" not in again.stdout
    assert not packages(imported) & {"rich", "yaml", "pydantic", "sqlalchemy"}
    # nor what only executing runs needs: the tasks for workers, their preparation
    assert "qaflow.store.direct" in imported  # the no-op was recorded
    assert not imported & {"qaflow.worker.task", "qaflow.execution.prepare", "socket"}
    # no configuration has a ${…} template: nothing imports the interpolation code
    assert not imported & {"qaflow.config.expressions", "qaflow.config.evaluator"}
    if not may_be_in_git(root):  # git would find no repository: it is not started
        assert "subprocess" not in imported
    assert "qaflow.store.rows" in imported and "qaflow.store.records" not in imported  # writes only
    dry, imported = qa_importing(root, "--dryrun", "batch", "second", env=env)
    assert dry.returncode == 0 and "3 run(s) planned, 0 to run, 3 cached" in dry.stdout, dry.stdout
    assert "qaflow.plan.planner" in imported and "qaflow.execution.options" in imported
    # a dry run records nothing and executes nothing: none of the execution's other types
    assert not imported & {
        "qaflow.worker.task",
        "qaflow.execution.prepare",
        "qaflow.execution.model",
        "qaflow.execution.preflight",  # its checks are the execution's
        "qaflow.config.expressions",
        "qaflow.config.evaluator",
    }
    first_run = "wall time"  # an execution that runs imports them, and shows its table
    assert first_run in first.stdout


def test_a_no_op_with_summary_metrics_still_shows_the_table(project, tmp_path):
    root = project(
        batches=BATCHES,
        files=["a.txt", "b.txt"],
        extra={
            "qa/metrics.yaml": "available_metrics: {psnr: {label: PSNR}}\nsummary_metrics: [psnr]\n"
        },
    )
    for _ in range(2):
        done, _ = qa_importing(root, "batch", "second")
        assert done.returncode == 0, done.stderr[-2000:]
    assert "wall time" in done.stdout and "cached" in done.stdout
    assert "nothing to run" not in done.stdout


class Warming(RecordingReporter):
    def warm_up(self) -> None:
        self.events.append(("warm_up", "", ""))


def test_reporters_warm_up_once_before_an_execution_runs_and_not_for_a_no_op(project):
    """The driver lets each reporter import what it shows with (`warm_up`) before it starts
    the backend (whose pool waits for its fork server), through a fan-out too; a no-op
    starts no backend and shows nothing running."""
    root = project(batches=BATCHES, files=["a.txt", "b.txt"])
    shown = Warming()
    first = qaflow.batch("second", project=root, reporter=Reporters(NullReporter(), shown))
    assert first.status == "succeeded"
    kinds = [event[0] for event in shown.events]
    assert kinds[:2] == ["warm_up", "execution_started"] and kinds.count("warm_up") == 1
    again = Warming()
    assert qaflow.batch("second", project=root, reporter=again).status == "succeeded"
    assert "warm_up" not in [event[0] for event in again.events]


def test_a_warmed_console_has_made_its_console(capsys):
    reporter = ConsoleReporter()
    assert reporter._console is None  # nothing made until shown or warmed
    reporter.warm_up()
    assert reporter._console is not None
    assert capsys.readouterr().out == ""  # warming shows nothing
