"""The queue of `LocalPool`: tasks waiting for slots, the slots in use, and the pipe that
wakes the pool's manager thread when the queue changes (`WakeUp`).

Policy: tasks start in submission order when enough of the `concurrency` slots are free; a
task needs `cpus` slots (clamped to [1, concurrency]). When the oldest task does not fit,
younger ones that fit may start, but at most `concurrency` of them: then nothing starts
until the oldest does (no starvation).

State: one FIFO per slot count, so a pick looks at a few heads, not the whole queue. Not
thread-safe: the pool calls it under its lock, and only its manager thread picks and
releases slots.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from qaflow.worker.model import RunResult
from qaflow.worker.task import RunTask


@dataclass(eq=False)
class Pending:
    """A submitted task, until its future resolves."""

    seq: int  # submission order
    task: RunTask
    future: concurrent.futures.Future[RunResult]
    need: int  # slots: task.cpus clamped to [1, concurrency]
    running: bool = False  # its future was set running (it went back to the queue once)
    on_start: Callable[[], None] | None = None  # called once, right before it is sent


class SlotQueue:
    """The waiting tasks and the slots in use (see the module policy)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.used = 0  # slots of the running tasks
        self.queued = 0
        self._queues: dict[int, collections.deque[Pending]] = {}
        self._seq = 0
        self._bypass = (0, 0)  # (seq of the oldest task, how many younger ones started before it)

    def push(
        self,
        task: RunTask,
        future: concurrent.futures.Future[RunResult],
        on_start: Callable[[], None] | None = None,
    ) -> Pending:
        """Queue a new task, last."""
        self._seq += 1
        need = min(max(task.cpus, 1), self.concurrency)
        pending = Pending(self._seq, task, future, need, on_start=on_start)
        self._queues.setdefault(need, collections.deque()).append(pending)
        self.queued += 1
        return pending

    def push_back(self, pending: Pending) -> None:
        """Queue a picked task again, first in line (its worker died before taking it)."""
        self.used -= pending.need
        self._queues.setdefault(pending.need, collections.deque()).appendleft(pending)
        self.queued += 1

    def pick(self) -> Pending | None:
        """The next task to start, its slots taken; None if none may start now."""
        while self.queued:
            free = self.concurrency - self.used
            heads = self._heads()
            if free <= 0 or not heads:
                return None
            choice = next(((seq, need) for seq, need in heads if need <= free), None)
            if choice is None or (choice[0] != heads[0][0] and not self._may_bypass(heads[0][0])):
                return None
            if (pending := self._take(choice[1])) is not None:
                return pending
        return None

    def pick_ahead(self) -> Pending | None:
        """The oldest task if it needs one slot, to send ahead to a worker busy with a one-slot
        task: it takes that task's slot when it ends, so `used` counts it from now (and may
        exceed the concurrency by the tasks sent ahead). None if the oldest needs more."""
        while self.queued:
            heads = self._heads()
            if not heads or heads[0][1] != 1:
                return None
            if (pending := self._take(1)) is not None:
                return pending
        return None

    def _take(self, need: int) -> Pending | None:
        """The first task of the queue of `need` slots, set running and its slots taken;
        None if it was cancelled meanwhile (then it is dropped)."""
        queue = self._queues[need]
        pending = queue.popleft()
        self.queued -= 1
        if not queue:
            del self._queues[need]
        if pending.running or pending.future.set_running_or_notify_cancel():
            pending.running = True
            self.used += pending.need
            return pending
        return None

    def release(self, pending: Pending) -> None:
        """The task's slots are free again (it ended, or was never sent)."""
        self.used -= pending.need

    def clear(self) -> list[Pending]:
        """Remove every waiting task; them."""
        pendings = [pending for queue in self._queues.values() for pending in queue]
        self._queues.clear()
        self.queued = 0
        return pendings

    def _heads(self) -> list[tuple[int, int]]:
        """(seq, need) of the first task of each queue, oldest first; cancelled ones dropped."""
        heads = []
        for need in list(self._queues):
            queue = self._queues[need]
            while queue and queue[0].future.cancelled():
                queue.popleft()
                self.queued -= 1
            if queue:
                heads.append((queue[0].seq, need))
            else:
                del self._queues[need]
        return sorted(heads)

    def _may_bypass(self, oldest: int) -> bool:
        seq, count = self._bypass
        count = count if seq == oldest else 0
        if count >= self.concurrency:
            return False
        self._bypass = (oldest, count + 1)
        return True


class WakeUp:
    """A pipe that wakes the pool's manager thread in `connection.wait()` (`fd`).

    A byte is written only when none is pending (`set`), and the manager empties the pipe
    (`drain`) before it clears that flag (`clear`): so no wake-up is lost and the pipe never
    fills. `set` and `clear` are called under the pool's lock."""

    def __init__(self) -> None:
        self.fd, self._write = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write, False)
        self._pending = False

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def set(self) -> None:
        if not self._pending:
            self._pending = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._write, b"w")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass

    def clear(self) -> None:
        self._pending = False

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._write)
        self.fd = self._write = -1
