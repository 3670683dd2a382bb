"""The display of a running execution must never stop it.

A reader that leaves (`qa batch B | head -1`: EPIPE), a terminal that closes (SIGHUP, then
EIO), a stdout closed by the caller: the execution goes on to its end and records true
statuses; only the display stops. `GuardedStream` is what the console writes to: the first
write that fails silences the display for good, and `silence()` points the process's
fd 1 (and 2 on a hangup) at /dev/null so that nothing else written later fails either.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import IO


def silence(*fds: int) -> None:
    """Point these file descriptors at /dev/null; what Python still buffers for them goes
    there too."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
    finally:
        os.close(null)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None and stream.fileno() in fds:
                stream.flush()


class GuardedStream:
    """A text stream for the console that stops writing, silently, once a write fails."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        # taken now, not at each write: rich's live display swaps sys.stdout for a proxy
        # that writes to the console, which would write to the proxy…
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self.closed_display = False

    @property
    def stream(self) -> IO[str]:
        return self._stream

    def write(self, text: str) -> int:
        if self.closed_display:
            return len(text)
        try:
            return self.stream.write(text)
        except (OSError, ValueError):
            self._close()
            return len(text)

    def flush(self) -> None:
        if self.closed_display:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self._close()

    def isatty(self) -> bool:
        if self.closed_display:
            return False
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    def close_display(self) -> None:
        """Stop showing anything (the terminal went away)."""
        self.closed_display = True

    def _close(self) -> None:
        """The reader left: no more display; fd 1 goes to /dev/null so later writes
        (buffered text, the last lines of `qa`) fail no more."""
        with self._lock:
            if self.closed_display:
                return
            self.closed_display = True
        fd: int | None = None
        with contextlib.suppress(Exception):
            fd = self.stream.fileno()
        if fd is not None and fd >= 0:
            silence(fd)
