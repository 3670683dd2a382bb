"""The local pool with real worker processes: crashes stay isolated, timeouts, slots, cancel."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import write_project
from qaflow.execution.executors.local import LocalPool
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.task import RunTask

MAIN = """
import os, subprocess, sys, time

def run(context):
    mode = context.params.get("mode", "ok")
    (context.output_dir / "started").write_text(str(os.getpid()))
    if mode == "raise":
        raise ValueError("boom")
    if mode == "exit":
        sys.exit(3)
    if mode == "os_exit":
        print("before os._exit", flush=True)
        os._exit(4)
    if mode == "segfault":
        import ctypes
        ctypes.string_at(0)
    if mode == "sleep":
        time.sleep(context.params.get("seconds", 0.5))
    if mode == "meet":  # until `count` runs of its group have started (a minute at most)
        from pathlib import Path
        marks, group = Path(context.database), context.params["group"]
        (marks / f"meet-{group}-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(marks.glob(f"meet-{group}-*"))) < context.params["count"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    if mode == "child":
        child = subprocess.Popen(["sleep", "60"])
        (context.output_dir / "child").write_text(str(child.pid))
        time.sleep(60)
    if mode == "irreversible":  # a hard limit lowered cannot be raised again: the worker retires
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), min(hard, 256)))
    if mode == "leak":
        os.environ["LEAK"] = "1"
        os.environ["PATH"] = "/nowhere:" + os.environ["PATH"]
        os.chdir("/")
    return {
        "mode": mode,
        "leak": os.environ.get("LEAK"),
        "k": os.environ.get("K"),
        "path": os.environ.get("PATH"),
        "cwd": os.getcwd(),
        "driver_var": os.environ.get("QAFLOW_DRIVER_VAR"),
    }
"""


def make_task(root: Path, name: str, mode: str = "ok", **kwargs: Any) -> RunTask:
    configs: tuple[Any, ...] = (
        {"mode": mode, **kwargs.pop("params", {})},
        *kwargs.pop("configs", ()),
    )
    return conftest.make_task(root, name, configs, **kwargs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", extra={"qa/main.py": MAIN})


@pytest.fixture
def pool() -> Iterator[LocalPool]:
    with LocalPool(2) as pool:
        yield pool


def results(pool: LocalPool, tasks: list[RunTask]) -> dict[str, RunResult]:
    futures = [pool.submit(task) for task in tasks]
    return {future.result(60).key: future.result() for future in futures}


def attempt(root: Path, name: str) -> Path:
    """Where the first attempt of the run `name` works (tasks made here have no attempt id)."""
    return root / "output" / f"{name}.run-1"


def metrics_file(root: Path, name: str) -> dict[str, Any]:
    return json.loads((attempt(root, name) / "metrics.json").read_text())


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (no psutil)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_each_crash_fails_only_its_run_and_workers_are_replaced(root, pool):
    tasks = [
        make_task(root, "ok1"),
        make_task(root, "raise", "raise"),
        make_task(root, "exit", "exit"),
        make_task(root, "os_exit", "os_exit"),
        make_task(root, "ok2"),
        make_task(root, "segfault", "segfault"),
        make_task(root, "timeout", "sleep", params={"seconds": 30}, timeout=1.0),
        make_task(root, "command", command="echo going; exit 1"),
        make_task(root, "ok3"),
    ]
    got = results(pool, tasks)
    assert {k: got[k].status for k in ("ok1", "ok2", "ok3")} == dict.fromkeys(
        ("ok1", "ok2", "ok3"), RunStatus.SUCCEEDED
    )
    expected = {
        "raise": "ValueError: boom",
        "exit": "run() called sys.exit(3)",
        "os_exit": "the run's process exited with status 4 (os._exit or a crash)",
        "segfault": "the run's process was killed by signal SIGSEGV (segmentation fault)",
        "timeout": "timed out after 1 s",
        "command": "command exited with status 1",
    }
    for name, error in expected.items():
        assert got[name].status is RunStatus.FAILED, name
        assert got[name].error_line == error
        assert got[name].metrics["is_failed"] is True
        assert metrics_file(root, name)["is_failed"] is True
    assert "before os._exit" in (attempt(root, "os_exit") / "log.txt").read_text()
    assert "timed out" in (attempt(root, "timeout") / "log.txt").read_text()
    assert "Segmentation fault" in (attempt(root, "segfault") / "log.txt").read_text()
    again = results(pool, [make_task(root, f"after{i}") for i in range(4)])
    assert all(r.status is RunStatus.SUCCEEDED for r in again.values())
    assert len(pool.worker_pids) == 2


def test_a_retiring_worker_s_result_is_read_when_its_exit_is_seen_with_it(root, monkeypatch):
    """A worker that cannot put its process back sends RETIRING, then its result, then exits:
    the pool may see its exit in the same round as its first message, the result still in the
    pipe. That result is the run's, not a crash. (Here the pool's wait lingers so that each
    round sees all that arrived: the worker's exit with its messages.)"""
    from qaflow.execution.executors import local

    real = local.wait

    def lingering(objects: Any, timeout: float | None = None) -> list[Any]:
        real(objects, timeout)
        time.sleep(0.3)
        return real(objects, 0)  # readiness is level-triggered: all that is ready now

    monkeypatch.setattr(local, "wait", lingering)
    with LocalPool(1) as pool:
        first = pool.worker_pids
        done = results(pool, [make_task(root, "a", "irreversible"), make_task(root, "b")])
        wait_for(lambda: pool.worker_pids and pool.worker_pids != first)
    assert {key: r.status for key, r in done.items()} == {
        "a": RunStatus.SUCCEEDED,
        "b": RunStatus.SUCCEEDED,
    }, {key: r.error for key, r in done.items()}
    assert done["a"].metrics["mode"] == "irreversible"
    assert done["b"].pid not in first  # the retired worker's successor ran it


def test_a_worker_dying_while_idle_is_replaced(root, pool):
    first = results(pool, [make_task(root, "one")])["one"]
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: first.pid not in pool.worker_pids)
    got = results(pool, [make_task(root, f"n{i}") for i in range(3)])
    assert all(r.status is RunStatus.SUCCEEDED for r in got.values())


def test_env_and_cwd_do_not_leak_to_the_next_run_of_the_worker(root, monkeypatch):
    monkeypatch.setenv("QAFLOW_DRIVER_VAR", "from the driver")
    with LocalPool(1) as pool:
        got = results(
            pool,
            [
                make_task(root, "before"),
                make_task(root, "leak", "leak", configs=({"ENV": {"K": "V"}},)),
                make_task(root, "after"),
            ],
        )
    assert len({r.pid for r in got.values()}) == 1
    assert got["leak"].metrics["k"] == "V" and got["leak"].metrics["leak"] == "1"
    after = got["after"].metrics
    assert after["leak"] is None and after["k"] is None
    assert after["path"] == got["before"].metrics["path"]
    assert after["cwd"] == str(root)
    assert after["driver_var"] == "from the driver"  # workers take the driver's environment


def test_runs_overlap_and_a_two_cpu_run_runs_alone(root, pool):
    # each waits for the other to start (a minute at most): they overlap unless one waits
    got = results(
        pool,
        [make_task(root, f"s{i}", "meet", params={"group": "s", "count": 2}) for i in range(2)],
    )
    assert max(r.started_at for r in got.values()) < min(r.ended_at for r in got.values())
    tasks = [
        make_task(root, "a", "sleep", params={"seconds": 0.3}),
        make_task(root, "big", "sleep", params={"seconds": 0.3}, cpus=2),
        make_task(root, "b", "sleep", params={"seconds": 0.3}),
        make_task(root, "huge", "sleep", params={"seconds": 0.1}, cpus=8),
    ]
    got = results(pool, tasks)
    assert all(r.status is RunStatus.SUCCEEDED for r in got.values())
    for alone in ("big", "huge"):
        for other in got.values():
            if other.key != alone:
                overlap = min(got[alone].ended_at, other.ended_at) - max(
                    got[alone].started_at, other.started_at
                )
                assert overlap <= 0, (alone, other.key)


def test_slots_in_use_never_exceed_the_concurrency_with_threads_submitting(root):
    needs = [1, 2, 3, 1, 1, 2, 1, 3, 2, 1, 1, 1, 2, 1, 3, 1, 2, 1, 1, 2]
    with LocalPool(3) as pool, concurrent.futures.ThreadPoolExecutor(4) as submitters:
        tasks = [
            make_task(root, f"t{i}", "sleep", params={"seconds": 0.05}, cpus=need)
            for i, need in enumerate(needs)
        ]
        futures = list(submitters.map(pool.submit, tasks))
        got = [future.result(60) for future in futures]
    assert all(r.status is RunStatus.SUCCEEDED for r in got)
    for result in got:  # at each run's start, the runs then in progress fit in 3 slots
        during = [
            needs[int(other.key[1:])]
            for other in got
            if other.started_at <= result.started_at < other.ended_at
        ]
        assert sum(during) <= 3, (result.key, during)


def test_shutdown_after_many_concurrent_submissions_does_not_hang(root):
    """A wake-up of the manager must never be lost, whatever the interleaving."""
    for rep in range(6):
        pool = LocalPool(2)
        tasks = [make_task(root, f"r{rep}-{i}") for i in range(100)]
        with concurrent.futures.ThreadPoolExecutor(8) as submitters:
            futures = list(submitters.map(pool.submit, tasks))
        assert all(f.result(60).status is RunStatus.SUCCEEDED for f in futures)
        stopping = threading.Thread(target=pool.shutdown)
        stopping.start()
        stopping.join(10)
        hung = stopping.is_alive()
        if hung:
            pool.shutdown(cancel=True)
        assert not hung, f"shutdown() hung (repetition {rep})"


def test_a_task_that_does_not_pickle_is_errored_and_the_pool_goes_on(root, pool):
    bad = pool.submit(make_task(root, "bad", extra_parameters={"f": lambda: 1})).result(30)
    assert bad.status is RunStatus.ERRORED and "cannot send the run" in bad.error
    assert pool.submit(make_task(root, "good")).result(30).status is RunStatus.SUCCEEDED


def test_cancel_resolves_queued_and_running_runs_and_kills_the_workers(root):
    pool = LocalPool(2)
    try:
        futures = [pool.submit(make_task(root, f"c{i}", "child")) for i in range(5)]
        running = [attempt(root, f"c{i}") / "child" for i in range(2)]
        wait_for(lambda: all(path.exists() and path.read_text() for path in running))
        pids = pool.worker_pids + [int(path.read_text()) for path in running]
    finally:
        pool.shutdown(cancel=True)
    got = [future.result(1) for future in futures]
    assert [r.status for r in got] == [RunStatus.CANCELLED] * 5
    assert all(r.error == "cancelled" for r in got)
    assert metrics_file(root, "c0")["is_failed"] is True
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=60)
    assert pool.worker_pids == []
    with pytest.raises(RuntimeError):
        pool.submit(make_task(root, "late"))


def test_keyboard_interrupt_in_the_with_block_cancels_promptly(root):
    with pytest.raises(KeyboardInterrupt), LocalPool(2) as pool:
        future = pool.submit(make_task(root, "long", "sleep", params={"seconds": 30}))
        wait_for(lambda: (attempt(root, "long") / "started").exists())
        raise KeyboardInterrupt
    assert future.result(1).status is RunStatus.CANCELLED  # its 30 s sleep was not awaited


def test_done_callbacks_may_submit_and_cancelled_futures_are_skipped(root):
    with LocalPool(1) as pool:
        chained: list[Any] = []
        first = pool.submit(make_task(root, "first", "sleep", params={"seconds": 0.2}))
        dropped = pool.submit(make_task(root, "dropped"))
        assert dropped.cancel()
        first.add_done_callback(lambda _: chained.append(pool.submit(make_task(root, "second"))))
        assert first.result(30).status is RunStatus.SUCCEEDED
        wait_for(lambda: chained)  # callbacks run just after the waiters wake
        assert chained[0].result(30).status is RunStatus.SUCCEEDED
    assert not (root / "output" / "dropped").exists()


def test_invalid_concurrency_is_refused():
    with pytest.raises(ValueError):
        LocalPool(0)


DRIVER = """
import sys, time
sys.path[:0] = [{tests!r}, {tests_root!r}]
from pathlib import Path
from test_local import make_task
from qaflow.execution.executors.local import LocalPool

if __name__ == "__main__":
    pool = LocalPool(1)
    pool.submit(make_task(Path({root!r}), "orphan", "child"))
    time.sleep(60)
"""


def test_workers_and_their_runs_die_with_the_driver(root, tmp_path):
    script = tmp_path / "driver.py"
    here = Path(__file__).parent
    script.write_text(
        DRIVER.format(tests=str(here), tests_root=str(here.parents[1]), root=str(root))
    )
    driver = subprocess.Popen([sys.executable, str(script)])
    try:
        child_file = attempt(root, "orphan") / "child"
        wait_for(lambda: child_file.exists() and child_file.read_text(), timeout=60)
        pids = [
            int((attempt(root, "orphan") / "started").read_text()),
            int(child_file.read_text()),
        ]
        assert all(alive(pid) for pid in pids)
    finally:
        driver.kill()
        driver.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=60)
