"""The first sign of life of `qa batch` on a terminal, before its imports and planning.

A spinner on stderr starts as soon as `qa` has parsed nothing but its own name, so a user
sees progress within a fraction of a second, not after planning; it is cleared as soon as
the command prints anything of its own (or ends). Only on a terminal: logs get no spinner.
Plain writes, no rich: importing rich would delay the very thing it is for.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import TextIO

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_QUIET_FLAGS = {
    "--list", "--list-inputs", "--list-output-dirs", "--no-wait", "--quiet", "-q",
    "--help", "-h", "--dryrun", "--version",
}  # fmt: skip


class Spinner:
    """`⠋ planning…` on a terminal, redrawn every `interval` s by a thread until `stop()`."""

    def __init__(self, text: str, stream: TextIO | None = None, interval: float = 0.08) -> None:
        self.text = text
        self.stream = stream or sys.stderr
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Spinner:
        try:
            tty = self.stream.isatty()
        except (OSError, ValueError):
            tty = False
        if tty and self._thread is None:
            self._draw(0)
            self._thread = threading.Thread(target=self._spin, name="qaflow-spinner", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Clear the line; idempotent, callable from any thread."""
        with self._lock:
            if self._thread is None or self._stop.is_set():
                return
            self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with contextlib.suppress(OSError, ValueError):
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _spin(self) -> None:
        frame = 1
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._stop.is_set():
                    return
                self._draw(frame)
            frame += 1

    def _draw(self, frame: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(f"\r{_FRAMES[frame % len(_FRAMES)]} {self.text}")
            self.stream.flush()


def for_command(args: list[str]) -> Spinner:
    """The spinner of this command line: `qa … batch …` that executes runs, on a terminal."""
    wanted = "batch" in args and not _QUIET_FLAGS.intersection(args)
    spinner = Spinner("qa batch: planning…")
    return spinner.start() if wanted else spinner
