"""Interpreter-wide switches: when the cyclic garbage collector is paused, frozen and resumed.

Policy
- A plan is a large graph of long-lived, acyclic objects: the cyclic collector would only
  traverse it, again and again, while it grows (a third of planning 10,000 runs). So a `qa`
  command starts with the collector paused (`pause_gc`).
- A command that lasts turns it back on: `qa serve` and `qa wait` at once (`resume_gc`),
  an execution once planning is done, after freezing what planning built
  (`freeze_planned`): the collector then never traverses it.
- When the command ends, `restore_gc` undoes both: what was frozen is collectable again
  and the collector is on, as a program calling `qa`'s `main()` expects.
- A program calling `qaflow.batch()` with the collector on (the interpreter's default)
  has nothing of its own frozen: `freeze_planned` only acts on a paused collector.
- Within a lasting command, building one large acyclic structure at once (a comparison of
  2 x 10,000 runs on the board) pauses the collector for that while (`gc_paused`): its
  full passes over the growing structure cost as much as building it.

Imports nothing of qaflow: every layer may use it.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


def pause_gc() -> None:
    """Pause the cyclic collector for a short command (see the module policy)."""
    gc.disable()


def resume_gc() -> None:
    """Turn the collector back on for a command that lasts (`qa serve` runs for days,
    `qa wait` may wait for hours): what it allocates meanwhile must be collected."""
    gc.enable()


def freeze_planned() -> None:
    """Before an execution, which may last hours: if the collector was paused while
    planning, freeze everything alive (what planning built lives as long as the execution;
    frozen, the collector never traverses it: its first pass after the pause walked every
    object, ~0.05 s) and turn the collector back on. A collector left on is left alone."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def restore_gc() -> None:
    """The interpreter's default again, once a command is done: what `freeze_planned`
    froze is collectable again, and the collector is on (for a caller of `main()`)."""
    gc.unfreeze()
    gc.enable()


_pausing = threading.Lock()
_paused = 0  # gc_paused blocks under way, in all threads
_resume = False  # whether the collector was on when the first of them began


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The collector paused while the block runs, and as it was afterwards. Blocks may
    overlap, in one thread or several: the collector resumes when the last one ends, and
    only if it was on when the first began."""
    global _paused, _resume
    with _pausing:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pausing:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()
