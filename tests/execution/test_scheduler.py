"""The scheduler's policy, on a fake executor: dependencies, failures, retries, capacity, cancel."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qaflow.errors import GraphError
from qaflow.execution.model import Job, Run
from qaflow.execution.prepare import payload_of
from qaflow.execution.report import RecordingReporter
from qaflow.execution.scheduler import Scheduler
from qaflow.plan.model import RunSpec
from qaflow.worker.model import RunResult, RunStatus
from qaflow.worker.task import RunTask


def spec(key: str, batch: str = "b") -> RunSpec:
    return RunSpec(
        batch=batch,
        batch_file=None,
        input_path=Path(f"/db/{key}"),
        rel_input_path=key,
        database=Path("/db"),
        type="default",
        configurations=(),
        params={},
        platform="linux",
        matrix={},
        output_dir=Path(f"/out/{key}"),
        key=key,
    )


def job(
    key: str,
    *,
    needs: tuple[str, ...] = (),
    batch: str = "b",
    cpus: int = 1,
    retries: int = 0,
    limit: int | None = None,
) -> Job:
    run = spec(key, batch)
    task = RunTask(key=key, payload=payload_of(run), project_root="/", entrypoint=None, cpus=cpus)
    return Job(run=run, task=task, needs=frozenset(needs), retries=retries, batch_limit=limit)


class FakeExecutor:
    """Runs `behaviour(task)` on threads; records when each task ran and how many ran at once."""

    def __init__(
        self, behaviour: Callable[[RunTask], RunStatus] | None = None, *, duration: float = 0.0
    ) -> None:
        self.behaviour = behaviour or (lambda task: RunStatus.SUCCEEDED)
        self.duration = duration
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak_slots = 0
        self.spans: dict[str, tuple[float, float]] = {}
        self.attempts: dict[str, int] = {}
        self.cancelled = False

    def submit(self, task: RunTask) -> concurrent.futures.Future[RunResult]:
        return self.pool.submit(self._run, task)

    def _run(self, task: RunTask) -> RunResult:
        with self.lock:
            self.running[task.key] = task.cpus
            self.peak_slots = max(self.peak_slots, sum(self.running.values()))
            self.attempts[task.key] = task.attempt
        start = time.monotonic()
        time.sleep(self.duration)
        status = self.behaviour(task)
        with self.lock:
            del self.running[task.key]
        self.spans[task.key] = (start, time.monotonic())
        return RunResult(key=task.key, status=status, attempt=task.attempt, pid=1)

    def shutdown(self, *, cancel: bool = False) -> None:
        self.cancelled = cancel
        self.pool.shutdown(wait=True, cancel_futures=cancel)


def test_independent_runs_all_succeed_and_are_reported_once():
    events = RecordingReporter()
    results = Scheduler(executor=FakeExecutor(), events=events, capacity=2).run(
        [job("a"), job("b"), job("c")]
    )
    assert {k: r.status for k, r in results.items()} == dict.fromkeys("abc", RunStatus.SUCCEEDED)
    assert sorted(e[2] for e in events.names("run_finished")) == [
        "a:succeeded",
        "b:succeeded",
        "c:succeeded",
    ]
    assert len(events.names("run_started")) == 3


def test_a_run_starts_only_after_what_it_needs():
    executor = FakeExecutor(duration=0.05)
    jobs = [job("a"), job("b"), job("c", needs=("a", "b")), job("d", needs=("c",))]
    Scheduler(executor=executor, events=RecordingReporter(), capacity=4).run(jobs)
    spans = executor.spans
    assert spans["c"][0] >= max(spans["a"][1], spans["b"][1])
    assert spans["d"][0] >= spans["c"][1]
    assert spans["b"][0] < spans["a"][1]  # independent runs overlap


def test_upstream_failure_skips_downstream_and_spares_independent_branches():
    executor = FakeExecutor(lambda t: RunStatus.FAILED if t.key == "a" else RunStatus.SUCCEEDED)
    jobs = [
        job("a"),
        job("b", needs=("a",)),
        job("c", needs=("b",)),
        job("x"),
        job("y", needs=("x",)),
    ]
    results = Scheduler(executor=executor, events=RecordingReporter(), capacity=2).run(jobs)
    assert results["a"].status is RunStatus.FAILED
    assert results["b"].status is RunStatus.SKIPPED and results["c"].status is RunStatus.SKIPPED
    assert results["b"].error == "skipped (upstream failed): b a"
    assert results["y"].status is RunStatus.SUCCEEDED
    assert set(executor.attempts) == {"a", "x", "y"}


def test_retries_re_execute_a_failed_run():
    tries: dict[str, int] = {}

    def flaky(task: RunTask) -> RunStatus:
        tries[task.key] = tries.get(task.key, 0) + 1
        return RunStatus.FAILED if tries[task.key] < 3 else RunStatus.SUCCEEDED

    results = Scheduler(executor=FakeExecutor(flaky), events=RecordingReporter(), capacity=1).run(
        [job("ok", retries=2), job("ko", retries=1)]
    )
    assert results["ok"].status is RunStatus.SUCCEEDED and results["ok"].attempt == 3
    assert results["ko"].status is RunStatus.FAILED and results["ko"].attempt == 2


def test_capacity_cpus_and_batch_limits_are_respected():
    executor = FakeExecutor(duration=0.03)
    jobs = [job(f"r{i}") for i in range(6)] + [job("big", cpus=3)]
    Scheduler(executor=executor, events=RecordingReporter(), capacity=3).run(jobs)
    assert executor.peak_slots <= 3
    big = executor.spans["big"]
    assert all(s[1] <= big[0] or s[0] >= big[1] for k, s in executor.spans.items() if k != "big")
    limited = FakeExecutor(duration=0.03)
    Scheduler(executor=limited, events=RecordingReporter(), capacity=4).run(
        [job(f"l{i}", batch="slow", limit=1) for i in range(3)]
    )
    spans = sorted(limited.spans.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_decide_settles_runs_without_executing_them():
    executor = FakeExecutor()
    cached = RunResult(key="a", status=RunStatus.CACHED)
    results = Scheduler(
        executor=executor,
        events=RecordingReporter(),
        capacity=1,
        decide=lambda j: cached if j.key == "a" else None,
    ).run([job("a"), job("b", needs=("a",))])
    assert results["a"].status is RunStatus.CACHED
    assert results["b"].status is RunStatus.SUCCEEDED
    assert set(executor.attempts) == {"b"}


def test_settled_runs_are_reported_first_and_never_submitted():
    executor = FakeExecutor()
    events = RecordingReporter()
    cached = RunResult(key="a", status=RunStatus.CACHED)
    failed = RunResult(key="b", status=RunStatus.FAILED, error="it failed before")
    settled = [Run(spec("a"), cached), Run(spec("b"), failed)]
    results = Scheduler(executor=executor, events=events, capacity=1).run(
        [job("c", needs=("a",)), job("d", needs=("a", "b"))], settled
    )
    assert results["a"] is cached and results["b"] is failed
    assert results["c"].status is RunStatus.SUCCEEDED
    assert results["d"].status is RunStatus.SKIPPED and "upstream failed" in (
        results["d"].error or ""
    )
    assert set(executor.attempts) == {"c"}
    assert events.names("run_finished")[:2] == [
        ("run_finished", "b", "a:cached"),
        ("run_finished", "b", "b:failed"),
    ]


def test_a_need_neither_planned_nor_settled_is_refused():
    settled = [Run(spec("a"), RunResult(key="a", status=RunStatus.CACHED))]
    scheduler = Scheduler(executor=FakeExecutor(), events=RecordingReporter(), capacity=1)
    with pytest.raises(GraphError, match="not planned"):
        scheduler.run([job("c", needs=("a", "zz"))], settled)


def test_cancel_marks_the_rest_cancelled():
    executor = FakeExecutor(duration=0.2)
    scheduler = Scheduler(executor=executor, events=RecordingReporter(), capacity=1)
    threading.Timer(0.05, scheduler.cancel).start()
    results = scheduler.run([job(f"r{i}") for i in range(5)])
    assert len(results) == 5
    assert sum(r.status is RunStatus.CANCELLED for r in results.values()) >= 4
    assert executor.cancelled


def test_unknown_needs_and_cycles_are_graph_errors():
    with pytest.raises(GraphError, match="not planned"):
        Scheduler(executor=FakeExecutor(), events=RecordingReporter(), capacity=1).run(
            [job("a", needs=("zz",))]
        )
    with pytest.raises(GraphError, match="cycle"):
        Scheduler(executor=FakeExecutor(), events=RecordingReporter(), capacity=1).run(
            [job("a", needs=("b",)), job("b", needs=("a",))]
        )


def test_ctrl_c_cancels_and_returns_every_result():
    def interrupt(task: RunTask) -> RunStatus:
        if task.key == "r0":
            import _thread

            _thread.interrupt_main()
        return RunStatus.SUCCEEDED

    scheduler = Scheduler(
        executor=FakeExecutor(interrupt, duration=0.05), events=RecordingReporter(), capacity=1
    )
    results = scheduler.run([job(f"r{i}") for i in range(4)])
    assert set(results) == {"r0", "r1", "r2", "r3"}
    assert results["r3"].status is RunStatus.CANCELLED


class AtOnce:
    """A queuing executor that starts and finishes each run within `submit` (so a run given
    ahead has started and ended before the scheduler next looks): the hardest order to keep."""

    def __init__(self, behaviour: Callable[[RunTask], RunStatus]) -> None:
        self.behaviour = behaviour

    def submit(
        self, task: RunTask, *, on_start: Callable[[], None] | None = None
    ) -> concurrent.futures.Future[RunResult]:
        assert on_start is not None
        on_start()
        future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
        future.set_result(
            RunResult(key=task.key, status=self.behaviour(task), attempt=task.attempt)
        )
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


class Ordered(RecordingReporter):
    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, str, int]] = []

    def run_started(self, run: RunSpec, attempt: int) -> None:
        self.order.append(("started", run.key, attempt))

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        self.order.append(("finished", run.key, result.attempt))


@pytest.mark.parametrize("capacity", [1, 3])
def test_a_run_given_ahead_is_reported_started_once_and_before_its_end(capacity: int) -> None:
    tries: dict[str, int] = {}

    def flaky(task: RunTask) -> RunStatus:
        tries[task.key] = tries.get(task.key, 0) + 1
        return (
            RunStatus.FAILED
            if task.key.startswith("f") and tries[task.key] == 1
            else RunStatus.SUCCEEDED
        )

    jobs = [job(f"r{i}") for i in range(5)] + [job("f0", retries=1), job("d", needs=("r0", "f0"))]
    jobs += [job(f"l{i}", batch="limited", limit=1) for i in range(3)]
    reporter = Ordered()
    results = Scheduler(
        executor=AtOnce(flaky), events=reporter, capacity=capacity, ahead=capacity
    ).run(jobs)
    assert {r.status for r in results.values()} == {RunStatus.SUCCEEDED}
    for key in results:
        mine = [(kind, attempt) for kind, k, attempt in reporter.order if k == key]
        if key == "f0":
            assert mine == [("started", 1), ("started", 2), ("finished", 2)]  # retried once
        else:
            assert mine == [("started", 1), ("finished", 1)]
