"""When the local pool sends a busy worker its next task ahead (`Ahead`).

A worker of the pool runs one task at a time and sends back its result; the pool then sends
it the next one. With runs of a few milliseconds that round trip through the driver's
threads is a good part of each run: the worker waits for it. So while runs are short, a
worker busy with a one-slot run is also sent the next one-slot task, which waits in its pipe,
and the worker starts it as soon as it sent its result.

Policy: a task is sent ahead only while the recent runs (an exponential moving average of
their durations, as the pool sees them) lasted less than `below` seconds, only to a worker
whose current run started less than `below` ago, and only while the pool's queue holds more
tasks than it has workers: a stream of runs, where a worker that frees up always
finds one queued. A run that turns out long thus delays at most the one task sent ahead of
it, and a few ready runs (a DAG's next step) never wait behind a long one while a worker is
idle. A task sent ahead counts as started when the run before it ends.

What it changes for the pool's callers: a task's `on_start` is called when it becomes a
worker's run, before its result; without tasks sent ahead that is also before it can start,
with them it may be just after (the worker started it while its previous result was on its
way). A caller that must know a run never started when its process died (the Dask worker's
ledger) makes its pool with `ahead_below=0`: nothing is sent ahead.
"""

from __future__ import annotations

import time

from qaflow.execution.executors.local_queue import Pending, SlotQueue
from qaflow.execution.executors.local_workers import Worker

AHEAD_BELOW = 0.02  # seconds: the default `below`
WEIGHT = 0.2  # of the last run in the recent duration


class Ahead:
    """The pool's recent run durations, and whether a worker gets its next task now."""

    def __init__(self, below: float = AHEAD_BELOW) -> None:
        self.below = below
        self.recent: float | None = None  # no run ended yet: nothing is sent ahead

    def learn(self, seconds: float) -> None:
        """A run ended after `seconds` (from its start to its result)."""
        recent = self.recent
        self.recent = seconds if recent is None else recent + WEIGHT * (seconds - recent)

    def assign(
        self, busy: list[Worker], queue: SlotQueue, workers: int
    ) -> list[tuple[Worker, Pending]]:
        """Tasks of the queue to send ahead to `busy` workers that want one (`wanted`), while
        the queue holds more than `workers` (see the policy). Under the pool's lock."""
        pairs: list[tuple[Worker, Pending]] = []
        while busy and queue.queued > workers and (pending := queue.pick_ahead()) is not None:
            pairs.append((busy.pop(), pending))
        return pairs

    def wanted(self, worker: Worker) -> bool:
        """Whether to send `worker` its next task now (see the policy)."""
        job = worker.job
        return (
            job is not None
            and worker.next is None
            and not (worker.eof or worker.retiring)
            and job.pending.need == 1
            and self.recent is not None
            and self.recent < self.below
            and time.time() - job.started_at < self.below
        )
