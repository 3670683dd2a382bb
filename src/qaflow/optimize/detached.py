"""The driver of a background study: `python -m qaflow.optimize.detached STORAGE ID`.

It reads the request `background.start` wrote, checks it again, adopts execution ID, beats
its heartbeat while the trials run (so `qa status` knows it is alive), and records how it
ended: succeeded, failed (no trial completed, or an error) or cancelled (`qa cancel` sends
SIGTERM: the trials' executions are cancelled). Its output goes to the execution's log.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from qaflow.errors import QaflowError, shown_warnings
from qaflow.execution.background import options_path
from qaflow.optimize.request import Request
from qaflow.optimize.study import optimize
from qaflow.worker.model import hostname

if TYPE_CHECKING:
    from qaflow.store import Store

BEAT = 5.0  # seconds between two heartbeats (an execution is dead after 60 s without one)


def main(args: list[str]) -> int:
    """Drive the study of execution `args[1]` of the storage folder `args[0]`; the exit code."""
    storage, execution_id = Path(args[0]), args[1]
    try:
        with shown_warnings(lambda text: print(text, file=sys.stderr, flush=True)):
            return _drive(storage, execution_id)
    except QaflowError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


def _drive(storage: Path, execution_id: str) -> int:
    from qaflow.store import Store

    request = Request.from_json(options_path(storage, execution_id).read_text(encoding="utf-8"))
    prepared = request.prepare()
    project = prepared.project
    with Store.open(project.database_url, storage=project.storage) as store:
        store.writes.adopt_execution(execution_id, pid=os.getpid(), host=hostname())
        stop = threading.Event()
        beat = threading.Thread(target=_beat, args=(store, execution_id, stop), daemon=True)
        beat.start()
        status = "failed"
        try:
            progress = lambda text: print(text, flush=True)  # noqa: E731
            result = optimize(prepared, progress=progress, execution_id=execution_id)
            status = (
                "cancelled" if result.cancelled else "failed" if result.exit_code else "succeeded"
            )
            print(f"study {result.study!r}: {result.completed} trial(s) completed", flush=True)
            return result.exit_code
        finally:
            stop.set()
            beat.join()
            store.writes.finish_execution(execution_id, status)


def _beat(store: Store, execution_id: str, stop: threading.Event) -> None:
    while not stop.wait(BEAT):
        try:
            store.writes.heartbeat(execution_id)
        except QaflowError as exc:  # a store hiccup: the next beat may succeed
            print(f"warning: heartbeat: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
