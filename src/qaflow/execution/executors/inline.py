"""`InlineExecutor`: runs each task synchronously in the calling process (tests, `qa run`)."""

from __future__ import annotations

import concurrent.futures
from types import TracebackType

from qaflow.worker.model import RunResult
from qaflow.worker.task import RunTask


class InlineExecutor:
    """Executes a task in this process as soon as it is submitted; the future is already done.

    No timeout is enforced (a run cannot be stopped safely from inside its own process) and
    `cpus` is ignored. A crash of the run (os._exit, a segfault) ends this process: use
    `LocalPool` where that matters. KeyboardInterrupt propagates out of submit().
    """

    def __init__(self) -> None:
        self._closed = False

    def submit(self, task: RunTask) -> concurrent.futures.Future[RunResult]:
        if self._closed:
            raise RuntimeError("cannot submit a run: the executor is shut down")
        future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        from qaflow.worker.execute import execute_safely  # not for a plan with nothing to run

        future.set_result(execute_safely(task))
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        """Nothing runs in the background: only refuse later submissions."""
        self._closed = True

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(cancel=exc_type is not None)
