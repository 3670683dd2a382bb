"""What signals do to a running execution.

- SIGINT (Ctrl-C) and SIGTERM (`qa cancel`): cancel it. Runs not started are recorded
  cancelled, runs in flight are killed, the execution ends "cancelled" (exit status 130)
  and can be resumed by running the same command again. A second Ctrl-C stops waiting for
  the runs being killed.
- SIGHUP (the terminal closed): only the display stops (fds 1 and 2 go to /dev/null); the
  execution goes on to its end and records true statuses.
Handlers are installed for the time of the execution, in the main thread only (Python
allows no other); elsewhere the caller's handlers stay, and so does a signal the caller
ignores (`nohup`, a background job of a script).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from qaflow.execution.display import silence


@dataclass
class Interrupts:
    """What happened while the execution ran."""

    signal: int | None = None  # the signal that cancelled it
    hangup: bool = False


@contextlib.contextmanager
def handled(cancel: Callable[[], None], close_display: Callable[[], None]) -> Iterator[Interrupts]:
    """While the execution runs: SIGINT/SIGTERM call `cancel`, SIGHUP `close_display`."""
    caught = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def on_cancel(signum: int, frame: FrameType | None) -> None:
        if caught.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop waiting
        if caught.signal is None:
            caught.signal = signum
        cancel()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        caught.hangup = True
        silence(1, 2)
        with contextlib.suppress(Exception):
            close_display()

    handlers = {signal.SIGINT: on_cancel, signal.SIGTERM: on_cancel, signal.SIGHUP: on_hangup}
    previous = {
        number: signal.signal(number, handler)
        for number, handler in handlers.items()
        if signal.getsignal(number) is not signal.SIG_IGN  # nohup, `&` in a script: kept
    }
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def hangup_ignored() -> Iterator[None]:
    """SIGHUP ignored meanwhile, by this process and the processes it starts (a process
    keeps an ignored signal ignored across exec): the pool's fork server must outlive the
    terminal that started it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
