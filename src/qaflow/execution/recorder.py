"""Recording an execution in the store, as a reporter, with writes coalesced off the hot path.

Policy: events are queued and written by one thread, which takes everything queued so far
and writes it in one transaction (`Writes.record`), at most every `interval` seconds. A
2,000-run batch then costs tens of commits instead of 4,000, and the scheduler never waits
on the database. Between its first event and the write, the thread sleeps (woken early only
by `flush`), rather than waking for each event: two wake-ups per run took the GIL from the
scheduler and the pool. Each transaction is atomic, so a killed driver leaves the store consistent:
it only lacks the last fraction of a second of events. A run is recorded as finished only
after its result (and metrics.json) exists. `ended_on_error`: an execution whose driver
fails after recording it is recorded interrupted, not left "running".
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from qaflow.execution.reserve import disk_full
from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import RunResult, hostname

if TYPE_CHECKING:
    from qaflow.execution.model import Execution
    from qaflow.execution.report import Reporters
    from qaflow.store import Store
    from qaflow.store.direct import DirectStore

HEARTBEAT = 5.0  # seconds between signs of life of a driver; `qa status` allows several missed
_STOP = object()


def planned_specs(
    plan: Plan, settled: Mapping[str, RunResult], known: Collection[str]
) -> list[dict[str, Any]]:
    """The specs of the plan's runs as the store records them: a reused run of a fingerprint
    with a successful run in the store (`known`) without its fingerprint parts, which that
    run holds (`Lookups.fingerprint_parts`): a third of the row."""
    return [
        plan.describe(run)
        if run.key in settled and run.fingerprint in known
        else {**plan.describe(run), "fingerprint_parts": run.parts}
        for run in plan.runs
    ]


class StoreRecorder:
    """Writes the planned runs, their starts and results, and the execution's end to the store."""

    def __init__(
        self,
        *,
        store: Store | DirectStore,
        execution_id: str,
        interval: float = 0.2,
        heartbeat: float = HEARTBEAT,
        settled: Mapping[str, RunResult] | None = None,
        known: Collection[str] = (),
        on_full: Callable[[], bool] | None = None,
    ) -> None:
        """`settled`: results known before anything runs (reused ones), recorded with the
        planned runs by one insert instead of one update each. `known`: fingerprints with a
        successful run in the store; a reused run of one is recorded without its fingerprint
        parts, which that run holds (`Lookups.fingerprint_parts`): a third of the row."""
        self.store = store
        self.settled = settled or {}
        self.known = known
        self.on_full = on_full  # frees room when the disk is full (`reserve`); True if it did
        self.execution_id = execution_id
        self.interval = interval
        self.heartbeat = heartbeat
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()  # set by flush(): the writer stops waiting at once
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._planned: dict[str, str | None] = {}  # run key -> fingerprint when planned
        # starts and results not written yet because the disk was full
        self._backlog: tuple[list[tuple[str, float, str, int]], list[RunResult]] = ([], [])

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        self._planned = {run.key: run.fingerprint for run in plan.runs}
        self.store.writes.add_runs(
            self.execution_id,
            planned_specs(plan, self.settled, self.known),
            fingerprints=[run.fingerprint for run in plan.runs],
            results=self.settled,
        )
        self._thread = threading.Thread(
            target=self._write_loop, name="qaflow-recorder", daemon=True
        )
        self._thread.start()

    def run_started(self, run: RunSpec, attempt: int) -> None:
        self._queue.put((run.key, time.time(), hostname(), attempt))

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        if self.settled.get(run.key) is not result:  # a settled one is in the store already
            self._queue.put(result)

    def execution_finished(self, execution: Execution) -> None:
        def finish() -> None:
            self.store.writes.finish_execution(
                self.execution_id, execution.status, ended_at=execution.ended_at
            )

        try:
            self.flush()
        except BaseException:
            # results were lost, but the execution must not stay `running`: end it if we can
            with contextlib.suppress(Exception):
                self._with_room(finish)
            raise
        self._with_room(finish)

    def flush(self) -> None:
        """Write everything queued, stop the writer thread, re-raise its error if it had one.
        What could not be written for lack of room is written now, the runs having stopped,
        with the room of the reserve if need be."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._stopping.set()
            self._thread.join()
            self._thread = None
        if self._error is None and (self._backlog[0] or self._backlog[1]):
            started, finished = self._backlog
            try:
                self._with_room(functools.partial(self._record, started, finished))
            except BaseException as exc:
                self._error = exc
            self._backlog = ([], [])
        if self._error is not None:
            raise self._error

    def _record(
        self, started: list[tuple[str, float, str, int]], finished: list[RunResult]
    ) -> None:
        parts = [  # a fingerprint made final when the run started (what upstream produced)
            (r.key, r.parts)
            for r in finished
            if r.parts and r.fingerprint and r.fingerprint != self._planned.get(r.key)
        ]
        self.store.writes.record(self.execution_id, started=started, finished=finished, parts=parts)

    def _write_loop(self) -> None:
        stop = False
        beat = time.monotonic()
        while not stop:
            try:
                items = [self._queue.get(timeout=self.heartbeat)]
            except queue.Empty:
                items = []
            if time.monotonic() - beat >= self.heartbeat:  # a sign of life for `qa status`
                beat = time.monotonic()
                self._safely(lambda: self.store.writes.heartbeat(self.execution_id))
                if self._error is not None:
                    return
            if not items:
                continue
            if items[-1] is not _STOP:  # what comes meanwhile is taken at once, after
                self._stopping.wait(self.interval)
            with contextlib.suppress(queue.Empty):
                while items[-1] is not _STOP:
                    items.append(self._queue.get_nowait())
            stop = items[-1] is _STOP
            started = [*self._backlog[0], *(i for i in items if isinstance(i, tuple))]
            finished = [*self._backlog[1], *(i for i in items if isinstance(i, RunResult))]
            if self._safely(functools.partial(self._record, started, finished)):
                self._backlog = ([], [])
            elif self._error is None:  # the disk is full: kept, for the next write or flush()
                self._backlog = (started, finished)
            else:
                return

    def _safely(self, write: Callable[[], None]) -> bool:
        """write(); False if it failed: for lack of room (retried later: the reserve is kept
        for the end, when runs no longer eat the room it frees), else with `_error` set."""
        try:
            write()
        except BaseException as exc:  # surfaced by flush(), in the driver's thread
            if not (self.on_full is not None and isinstance(exc, Exception) and disk_full(exc)):
                self._error = exc
            return False
        return True

    def _with_room(self, write: Callable[[], None]) -> None:
        """write(); if it failed because the disk is full, free the reserve and write again."""
        try:
            write()
        except Exception as exc:
            if not (disk_full(exc) and self.on_full is not None and self.on_full()):
                raise
            write()


@contextlib.contextmanager
def ended_on_error(
    store: Store | DirectStore, execution_id: str, events: Reporters
) -> Iterator[None]:
    """An execution that fails after it was recorded (a full disk, a bug) is recorded
    interrupted, its unfinished runs too, rather than left "running" until someone looks.
    The recorder writes what it holds first (a run's start must not come after). Best
    effort: the store may be what failed."""
    try:
        yield
    except BaseException:
        from qaflow.execution.background import settle as settle_ended
        from qaflow.worker.model import RunStatus

        for sink in events.reporters:
            flush = getattr(sink, "flush", None)
            with contextlib.suppress(Exception):
                if callable(flush):
                    flush()
        with contextlib.suppress(Exception), _full(store) as full:
            if full.lookups.execution(execution_id).status == "running":
                settle_ended(full, execution_id, RunStatus.INTERRUPTED, "its driver failed")
        raise


@contextlib.contextmanager
def _full(store: Store | DirectStore) -> Iterator[Store]:
    """The store with all its queries: a `DirectStore`'s file opened as `Store`."""
    full = getattr(store, "full", None)
    if full is None:
        yield store  # type: ignore[misc]
        return
    with full() as opened:
        yield opened
