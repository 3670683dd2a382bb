"""Packing short runs on Dask: consecutive ready runs of a batch go to a worker as one task.

A Dask task costs the scheduler and the driver a few milliseconds whatever it does; runs of
10 ms, one task each, leave the workers idle most of the time. So the runs that nothing in
the execution needs (leaves of the graph, not settled up front) are queued by the driver
in groups (same batch, same upstream runs, same resources: consecutive runs of a batch)
and handed out as packs: one Dask task (`run_pack`) whose runs the worker's pool executes
one after the other, each exactly as its own task would (`dask_worker.run_many`: its own
result, log, timeout, retries, its start recorded when it starts, and its own process in
the pool, so a crash fails that run only).

Sizing: a pack lasts about TARGET seconds, from the durations measured so far in this
execution (a run's started_at to ended_at, as the worker saw it); until the first runs
finish, packs hold one run. Packs are handed out as workers need them (WINDOW packs per
worker thread in flight), so later packs are sized from more measurements.

A worker that dies mid-pack: Dask runs the pack's task again elsewhere. That task finds the
pack's ledger (`STORAGE/executions/ID.dask/packs/`) and executes nothing: it returns the
results of the runs that finished (their own ledgers hold them), and the driver submits each
other run as a task of its own, where its ledger says whether it was running when the
worker died (an attempt, retried if `retries` allows, as without packing).
"""

from __future__ import annotations

import contextlib
import hashlib
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.execution.model import Job, RunResult

if TYPE_CHECKING:
    from distributed import Client, Future

    from qaflow.execution.executors.dask_worker import Work

TARGET = 0.15  # seconds a pack should last
MAX_RUNS = 500  # runs in one pack at most
WINDOW = 2  # packs in flight per worker thread: one running, one waiting on the worker
SAMPLE = 50  # the last durations sizing the next pack


@dataclass(frozen=True)
class Pack:
    """One Dask task of several runs. Plain data: it pickles."""

    works: tuple[Work, ...]
    upstream: tuple[str, ...]  # keys of the runs passed as the task's arguments (shared)
    ledger: str  # its file: it exists once the pack started on a worker


def run_pack(pack: Pack, *upstream: RunResult) -> dict[str, RunResult]:
    """The Dask task of a pack: its runs queued in the worker's pool (`dask_worker.run_many`),
    each result sent as an event as soon as it is known. Run again after its worker died, it executes
    nothing and returns only the results of the runs that had finished."""
    from distributed import get_worker

    from qaflow.execution.executors.dask_worker import Ledger, finished_result, run_many

    worker = get_worker()
    ledger = Path(pack.ledger)
    if ledger.exists():  # an earlier attempt of this pack died with its worker
        done = {work.job.key: finished_result(work) for work in pack.works}
        return {key: result for key, result in done.items() if result is not None}
    Ledger(ledger).start(1, str(getattr(worker, "address", "")))
    results = dict(zip(pack.upstream, upstream, strict=True))
    return run_many(
        [(work, tuple(results[k] for k in work.upstream)) for work in pack.works], worker
    )


@dataclass
class _Group:
    """Consecutive queued jobs that can share a pack."""

    upstream: tuple[str, ...]
    resources: dict[str, float] | None
    jobs: deque[Job] = field(default_factory=deque)


class Packer:
    """The driver's side: queued leaf jobs, the packs in flight, the durations measured.

    `work_of(job)` makes a job's `Work`; `argument(key)` is what a task gets for an upstream
    run (its future, or its settled result); `on_done(future)` is called when a pack's task
    ends (from Dask's thread); `submit_one(job)` submits a job as a task of its own (a pack
    of one run, or a run of a pack whose worker died)."""

    def __init__(
        self,
        scratch: Path,
        work_of: Callable[[Job], Work],
        argument: Callable[[str], Any],
        on_done: Callable[[Future], None],
        submit_one: Callable[[Job], None],
        *,
        target: float = TARGET,
    ) -> None:
        self.scratch = scratch
        self.work_of = work_of
        self.argument = argument
        self.on_done = on_done
        self.submit_one = submit_one
        self.target = target
        self.groups: deque[_Group] = deque()
        self.packs: dict[object, tuple[Future, list[Job]]] = {}  # Dask key -> pack in flight
        self.by_key: dict[str, Job] = {}  # the jobs queued or in a pack, not finished
        self.singles: set[str] = set()  # jobs handed out alone, not finished
        self.durations: deque[float] = deque(maxlen=SAMPLE)
        self._slots = (0, -1.0)  # (packs in flight at most, when it was asked)
        self._count = 0

    @staticmethod
    def leaves(jobs: Sequence[Job]) -> set[str]:
        """Keys of the jobs no other job needs: those can be packed."""
        needed = {key for job in jobs for key in job.needs}
        return {job.key for job in jobs if job.key not in needed}

    def queue(self, job: Job, resources: dict[str, float] | None) -> None:
        upstream = tuple(sorted(job.needs))
        last = self.groups[-1] if self.groups else None
        if (
            last is None
            or last.upstream != upstream
            or last.resources != resources
            or last.jobs[-1].run.batch != job.run.batch
        ):
            last = _Group(upstream, resources)
            self.groups.append(last)
        last.jobs.append(job)
        self.by_key[job.key] = job

    @property
    def pending(self) -> bool:
        return bool(self.groups or self.packs)

    def packed(self, key: str) -> Job | None:
        """The job of a run handed out in a pack and not finished yet."""
        return self.by_key.get(key)

    def finished(self, key: str, result: RunResult) -> None:
        """A run's final result: it sizes the next packs."""
        self.by_key.pop(key, None)
        self.singles.discard(key)
        if result.started_at and result.ended_at and result.ended_at >= result.started_at:
            self.durations.append(result.ended_at - result.started_at)

    def size(self) -> int:
        """Runs in the next pack: TARGET seconds of the median run measured, 1 before any."""
        if not self.durations:
            return 1
        median = statistics.median(self.durations)
        return max(1, min(MAX_RUNS, int(self.target / max(median, 1e-4))))

    def fill(self, client: Client) -> None:
        """Hand out packs while fewer than WINDOW per worker thread are in flight."""
        slots = self.slots(client)
        while self.groups and len(self.packs) + len(self.singles) < slots:
            group = self.groups[0]
            jobs = [group.jobs.popleft() for _ in range(min(self.size(), len(group.jobs)))]
            if not group.jobs:
                self.groups.popleft()
            if len(jobs) == 1:
                self.singles.add(jobs[0].key)
                self.by_key.pop(jobs[0].key, None)
                self.submit_one(jobs[0])
                continue
            self._count += 1
            name = f"qaflow-pack{self._count}-{jobs[0].key}-{self.scratch.stem}"
            pack = Pack(
                works=tuple(self.work_of(job) for job in jobs),
                upstream=group.upstream,
                ledger=str(self.scratch / "packs" / _digest(name)),
            )
            args = [self.argument(key) for key in group.upstream]
            future = client.submit(
                run_pack, pack, *args, key=name, resources=group.resources, pure=False
            )
            self.packs[future.key] = (future, jobs)
            future.add_done_callback(self.on_done)

    def slots(self, client: Client) -> int:
        """Packs in flight at most: WINDOW per worker thread, the count asked again each second
        (an adaptive cluster grows)."""
        count, asked = self._slots
        now = time.monotonic()
        if now - asked > 1.0:
            with contextlib.suppress(Exception):
                count = sum(client.nthreads().values())
            self._slots = count, now
        return WINDOW * max(1, count)

    def done(self, client: Client, future: Future) -> list[tuple[Job, RunResult]]:
        """A pack's task ended: the results of its runs not reported yet; the runs it gave no
        result for (its worker died) are submitted one by one. Its value is fetched only if
        a run's result event is missing: the events come first, on the task's stream, so a
        pack whose runs were all reported costs no round trip to its worker."""
        _, jobs = self.packs.pop(future.key, (None, []))
        results: dict[str, RunResult] = {}
        if future.status == "finished" and any(job.key in self.by_key for job in jobs):
            with contextlib.suppress(Exception):
                results = client.gather(future)
        out = []
        for job in jobs:
            if job.key not in self.by_key:  # reported already, on its event
                continue
            if job.key in results:
                out.append((job, results[job.key]))
            else:
                self.by_key.pop(job.key)
                self.submit_one(job)
        return out

    def cancel(self) -> list[Future]:
        """Forget the queued jobs; the futures of the packs in flight."""
        futures = [future for future, _ in self.packs.values()]
        self.groups.clear()
        self.packs.clear()
        self.by_key.clear()
        return futures


def _digest(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=10).hexdigest()
