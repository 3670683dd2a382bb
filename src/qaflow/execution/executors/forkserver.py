"""The fork server the local pool's workers start from, and when to start it early.

Light on purpose: `qa batch` imports this before it knows whether anything will run, so
it imports `multiprocessing` only to start the server, and never the worker's modules (the fork server imports
those, `PRELOAD`, in its own process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext

# what a worker runs (`serve`, unpickled in each forked worker) and all it imports; not the
# pool's own module, which no worker uses: the server is ready sooner
PRELOAD = ["qaflow.worker.execute"]


def context() -> ForkServerContext:
    """The multiprocessing context of the workers: forked from a server that imported
    what they need (`PRELOAD`) once."""
    import multiprocessing

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    return mp


def warm_up() -> None:
    """Start the fork server now: it imports what workers need in its own process, on
    another core, while the driver is still importing and recording; the pool created later
    forks its workers from it at once. Idempotent (`qa batch` calls it before planning when
    nothing ran in the project yet, and after, when `may_execute`), and cheap for the caller."""
    import multiprocessing.forkserver

    from qaflow.execution.interrupts import hangup_ignored

    context()
    with hangup_ignored():  # the fork server must outlive the terminal that started it
        multiprocessing.forkserver.ensure_running()


def may_execute(output_dirs: Iterable[Path], *, force: bool = False) -> bool:
    """Whether a plan may execute something, cheaply: forced, or a run's output directory
    (addressed by its fingerprint) does not exist yet. False means probably nothing runs
    (every run has a folder: the cache decides), so no fork server is started for nothing;
    if something does run, the pool starts its fork server then. (Callers leave out the runs
    whose committed result planning verified.)"""
    isdir = os.path.isdir
    return force or any(not isdir(folder) for folder in output_dirs)
