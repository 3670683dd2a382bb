"""The local pool sends a busy worker its next task ahead while runs are short and more are
queued than it has workers: the worker starts it without waiting for the driver, and a task
sent ahead is never lost nor run twice (crash, timeout, cancel); a few ready runs never wait
behind a long one, nor do runs after long runs.

With one worker, a task is sent ahead only while another one waits in the queue behind it:
the tests queue a last task `filler` for that."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import write_project
from qaflow.execution.executors.local import LocalPool
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.task import RunTask

WAIT = 120.0  # generous: a loaded 2-core machine


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p")


def task(root: Path, name: str, command: str, **kwargs: Any) -> RunTask:
    return conftest.make_task(root, name, command=command, **kwargs)


def until_go(root: Path, then: str = "true") -> str:
    """A command that waits for the file `go` in the project (the test creates it), then `then`."""
    return f"until [ -e {root}/go ]; do sleep 0.01; done; {then}"


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class Log:
    """What the pool's thread did, in order: ("start", key) from on_start, ("done", key)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, event: str, key: str) -> None:
        with self._lock:
            self.events.append((event, key))

    def submit(self, pool: LocalPool, task: RunTask) -> Future[RunResult]:
        future = pool.submit(task, on_start=lambda: self.add("start", task.key))
        future.add_done_callback(lambda _: self.add("done", task.key))
        return future

    def index(self, event: str, key: str) -> int:
        return self.events.index((event, key))


def warmed(pool: LocalPool, root: Path, command: str = "true") -> None:
    """One run done, so the pool knows how long runs last."""
    assert pool.submit(task(root, "warm", command)).result(WAIT).status is RunStatus.SUCCEEDED


@pytest.fixture
def eager(root: Path) -> Iterator[LocalPool]:
    """One worker, sending ahead whatever the runs last (cancelled at the end: a failed test
    leaves no run waiting for its `go`)."""
    pool = LocalPool(1, ahead_below=math.inf)
    try:
        warmed(pool, root)
        yield pool
    finally:
        pool.shutdown(cancel=True)


def filler(pool: LocalPool, root: Path) -> Future[RunResult]:
    return pool.submit(task(root, "filler", "true"))


def test_a_worker_starts_the_task_sent_ahead_without_the_driver(root, eager):
    log = Log()
    first = log.submit(eager, task(root, "first", until_go(root)))
    second = log.submit(eager, task(root, "second", "touch $QA_OUTPUT_DIR/ran"))
    rest = filler(eager, root)
    wait_for(lambda: eager.tasks_ahead == 1)
    ran = Path(root, "output", "second.run-1", "ran")
    seen: list[bool] = []

    def hold(_: object) -> None:  # runs in the pool's thread: nothing is sent meanwhile
        deadline = time.monotonic() + WAIT
        while not ran.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(ran.exists())

    first.add_done_callback(hold)
    Path(root, "go").touch()
    assert first.result(WAIT).status is RunStatus.SUCCEEDED
    assert second.result(WAIT).status is RunStatus.SUCCEEDED
    assert seen == [True]  # the second run ran while the pool's thread was held
    assert log.index("start", "second") < log.index("done", "first")  # started, then ended
    assert second.result().pid == first.result().pid
    assert rest.result(WAIT).status is RunStatus.SUCCEEDED


def test_a_task_sent_ahead_of_a_crash_runs_on_the_replacement(root, eager):
    crash = eager.submit(task(root, "crash", until_go(root, "kill -9 $PPID")))
    after = eager.submit(task(root, "after", "echo after > $QA_OUTPUT_DIR/out.txt"))
    rest = filler(eager, root)
    wait_for(lambda: eager.tasks_ahead == 1)
    crashed_pid = eager.worker_pids[0]
    Path(root, "go").touch()
    assert crash.result(WAIT).status is RunStatus.FAILED
    assert "killed by signal SIGKILL" in (crash.result().error or "")
    done = after.result(WAIT)
    assert done.status is RunStatus.SUCCEEDED
    assert done.pid != crashed_pid
    assert done.attempt == 1
    assert (Path(done.output_dir or "") / "out.txt").read_text() == "after\n"
    assert rest.result(WAIT).status is RunStatus.SUCCEEDED


def test_a_task_sent_ahead_of_a_timeout_still_runs(root, eager):
    blocker = eager.submit(task(root, "blocker", until_go(root)))
    slow = eager.submit(task(root, "slow", "sleep 60", timeout=3.0))
    after = eager.submit(task(root, "after", "echo after > $QA_OUTPUT_DIR/out.txt"))
    rest = filler(eager, root)
    # `slow` waits behind the blocker: its timeout has not started, nothing races a clock
    wait_for(lambda: eager.tasks_ahead == 1)
    Path(root, "go").touch()
    # the blocker's result starts `slow`, and the pool's thread sends `after` ahead of it
    # in its next round, before it ever checks a deadline
    assert blocker.result(WAIT).status is RunStatus.SUCCEEDED
    assert slow.result(WAIT).error_line == "timed out after 3 s"
    done = after.result(WAIT)
    assert done.status is RunStatus.SUCCEEDED
    assert (Path(done.output_dir or "") / "out.txt").read_text() == "after\n"
    assert rest.result(WAIT).status is RunStatus.SUCCEEDED


def test_cancel_cancels_a_task_sent_ahead_which_never_ran(root):
    pool = LocalPool(1, ahead_below=math.inf)
    try:
        warmed(pool, root)
        running = pool.submit(task(root, "running", until_go(root)))
        ahead = pool.submit(task(root, "ahead", "touch $QA_OUTPUT_DIR/ran"))
        queued = filler(pool, root)
        wait_for(lambda: pool.tasks_ahead == 1)
    finally:
        pool.shutdown(cancel=True)
    assert running.result(WAIT).status is RunStatus.CANCELLED
    assert queued.result(WAIT).status is RunStatus.CANCELLED
    never = ahead.result(WAIT)
    assert (never.status, never.metrics) == (RunStatus.CANCELLED, {})
    assert not Path(root, "output", "ahead.run-1").exists()


def test_runs_that_last_are_not_sent_ahead(root):
    """With the default threshold, runs lasting longer than it are sent one at a time: a
    queued run starts only after a run ended, on the worker that is free."""
    with LocalPool(2) as pool:
        warmed(pool, root, "sleep 0.2")
        log = Log()
        first = log.submit(pool, task(root, "first", until_go(root)))
        second = log.submit(pool, task(root, "second", until_go(root)))
        third = log.submit(pool, task(root, "third", "true"))
        wait_for(lambda: ("start", "second") in log.events)
        assert pool.tasks_ahead == 0
        Path(root, "go").touch()
        for future in (first, second, third):
            assert future.result(WAIT).status is RunStatus.SUCCEEDED
    ends = [log.index("done", key) for key in ("first", "second")]
    assert log.index("start", "third") > min(ends)


def test_a_few_ready_runs_never_wait_behind_a_long_one(root):
    """Both workers busy, one long run; the one queued run is not sent ahead (as many queued
    as workers or fewer): it starts on the worker that frees up first, the long run going on."""
    with LocalPool(2, ahead_below=math.inf) as pool:
        warmed(pool, root)
        log = Log()
        long = log.submit(pool, task(root, "long", until_go(root)))
        short = log.submit(
            pool, task(root, "short", f"until [ -e {root}/go-short ]; do sleep 0.01; done")
        )
        ready = log.submit(pool, task(root, "ready", "true"))
        wait_for(lambda: ("start", "short") in log.events)
        assert pool.tasks_ahead == 0
        Path(root, "go-short").touch()
        assert ready.result(WAIT).status is RunStatus.SUCCEEDED
        assert not long.done()  # it ran while the long run goes on, on the other worker
        assert ready.result().pid == short.result(WAIT).pid
        Path(root, "go").touch()
        assert long.result(WAIT).status is RunStatus.SUCCEEDED
    # sent once a worker was free, not ahead (then it is started before the run before it ends)
    assert log.index("start", "ready") > log.index("done", "short")


def test_many_short_runs_each_run_once_with_a_start_before_its_end(root):
    with LocalPool(2, ahead_below=math.inf) as pool:
        log = Log()
        futures = [
            log.submit(pool, task(root, f"r{i}", f"echo {i} > $QA_OUTPUT_DIR/out.txt"))
            for i in range(40)
        ]
        results = [future.result(WAIT) for future in futures]
    assert all(result.status is RunStatus.SUCCEEDED for result in results)
    for i, result in enumerate(results):
        assert (Path(result.output_dir or "") / "out.txt").read_text() == f"{i}\n"
        assert log.events.count(("start", f"r{i}")) == 1
        assert log.index("start", f"r{i}") < log.index("done", f"r{i}")
