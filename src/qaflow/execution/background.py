"""Background executions (`qa batch --no-wait`): start a driver process, observe, await, cancel.

Policy
- `start()` (foreground) refuses what `execute()` would (the same `preflight`), records
  the execution, writes its targets and options as JSON to STORAGE/executions/ID.options.json,
  and starts its driver (`python -m qaflow.execution.detached STORAGE ID`: it reads them, plans
  again and adopts the record) in a new session (no SIGHUP from the terminal), stdin
  /dev/null, output appended to STORAGE/executions/ID.log, QA_BACKGROUND=1. No command line
  is rebuilt: any option the foreground accepts reaches the driver as it was given.
- A driver is dead when it ran on this host and its pid is gone (or a zombie), or when its
  last heartbeat is older than HEARTBEAT_TIMEOUT, whatever the host (`is_alive`).
- Observers (`qa status`, `qa wait`, `Handle`) persist what they see: a running execution
  whose driver is dead becomes interrupted, and so do its pending and running runs.
- Cancel: SIGTERM to a live driver on this host (`execute()` cancels its runs), SIGKILL
  after CANCEL_GRACE s; a driver dead without recording its end is recorded cancelled.

States: running → succeeded | failed | cancelled (by the driver) | interrupted (by an
observer) | cancelled (by `qa cancel`, the driver being dead).

Invariants: only an execution whose driver is dead on a read made after the liveness check
is settled (one that ended meanwhile keeps the status its driver wrote); the recorded pid is
the driver's from its spawn on (None before: the new record's fresh heartbeat vouches for
it); the exit code is 0 if it succeeded with every run ok, else 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, STDOUT, Popen
from typing import TYPE_CHECKING

from qaflow.errors import ExecutorError, UsageError
from qaflow.store.records import ExecutionRecord, RunRecord
from qaflow.worker.model import RunStatus, hostname

if TYPE_CHECKING:
    from qaflow.config.project import Project
    from qaflow.execution.model import Options
    from qaflow.plan.model import Plan
    from qaflow.store import Store

HOST = hostname()
HEARTBEAT_TIMEOUT = 60.0  # seconds without a heartbeat (the recorder beats every 5 s): dead
CANCEL_GRACE = 10.0  # seconds a driver has to end after SIGTERM before it is killed
POLL = 0.2  # seconds between two reads of the store while waiting
_OK = {RunStatus.SUCCEEDED.value, RunStatus.CACHED.value}


def is_alive(record: ExecutionRecord, *, now: float | None = None) -> bool:
    """Whether the execution's driver process may still be running (see the module policy)."""
    if record.host == HOST and record.pid is not None and not pid_exists(record.pid):
        return False
    beat = record.heartbeat_at if record.heartbeat_at is not None else record.started_at
    return (time.time() if now is None else now) - beat <= HEARTBEAT_TIMEOUT


def pid_exists(pid: int) -> bool:
    """Whether process `pid` of this host is alive (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # an exited child nobody reaped yet is a zombie: it answers signals, but is dead
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
    except (OSError, IndexError):
        return True


def exit_code(record: ExecutionRecord) -> int | None:
    """0 if it succeeded with every run ok, 1 if it ended otherwise, None while it runs."""
    if record.status == "running":
        return None
    ok = all(status in _OK for status, count in record.counts.items() if count)
    return 0 if ok and record.status == "succeeded" else 1


def observe(store: Store, ref: str) -> ExecutionRecord:
    """The execution as stored, after recording it interrupted if its driver died."""
    record = store.lookups.execution(ref)
    if record.status != "running" or is_alive(record):
        return record
    record = store.lookups.execution(record.id)  # a driver that ended meanwhile has written its end
    if record.status == "running":
        settle(store, record.id, RunStatus.INTERRUPTED, "its driver died")
    return store.lookups.execution(record.id)


def settle(store: Store, execution_id: str, status: RunStatus, error: str) -> None:
    """End an execution whose driver is dead: its unfinished runs and itself get `status`."""
    keys = [run.key for run in store.lookups.runs(execution_id) if not run.status.finished]
    store.writes.set_status(execution_id, keys, status, error=error)  # no keys: a no-op
    store.writes.finish_execution(execution_id, status.value)


def wait_for(store: Store, ref: str, timeout: float | None = None) -> ExecutionRecord:
    """Poll until the execution has ended (or is found interrupted); TimeoutError after `timeout`."""
    execution_id = store.lookups.execution(ref).id
    _await_end(store, execution_id, math.inf if timeout is None else timeout)
    record = observe(store, execution_id)
    if record.status == "running":
        raise TimeoutError(f"execution {record.id} is still running after {timeout:g} s")
    return record


def cancel(store: Store, ref: str, *, grace: float = CANCEL_GRACE) -> tuple[ExecutionRecord, bool]:
    """Stop the execution; return it as it ended, and whether it was running."""
    record = store.lookups.execution(ref)
    if record.status != "running":
        return record, False
    if is_alive(record):
        if record.host != HOST:
            raise UsageError(
                f"Execution {record.id} is driven by pid {record.pid} on host {record.host}, "
                f"which is alive: run `qa cancel {record.id}` there."
            )
        for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if record.status == "running" and is_alive(record):
                _signal(record.pid, signum)
                record = _await_end(store, record.id, seconds)
    if record.status == "running":
        settle(store, record.id, RunStatus.CANCELLED, "cancelled")
    return store.lookups.execution(record.id), True


def _signal(pid: int | None, signum: int) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _await_end(store: Store, execution_id: str, seconds: float) -> ExecutionRecord:
    """Poll until the execution ended or its driver died, for up to `seconds`."""
    deadline = time.monotonic() + seconds
    record = store.lookups.execution(execution_id)
    while record.status == "running" and is_alive(record) and time.monotonic() < deadline:
        time.sleep(POLL)
        record = store.lookups.execution(execution_id)
    return record


@dataclass(frozen=True)
class ExecutionStatus:
    """How a background execution stands; `exit_code` is None while it runs."""

    id: str
    status: str  # running, succeeded, failed, cancelled or interrupted
    counts: dict[str, int]  # run status -> number of runs
    exit_code: int | None
    record: ExecutionRecord


@dataclass(frozen=True)
class Handle:
    """A background execution, as `qaflow.batch(..., wait=False)` returns it."""

    id: str
    pid: int
    log: Path
    storage: Path
    database_url: str | None = None

    def status(self) -> ExecutionStatus:
        with self._store() as store:
            r = observe(store, self.id)
        return ExecutionStatus(r.id, r.status, r.counts, exit_code(r), r)

    def wait(self, timeout: float | None = None) -> int:
        """Block until it ends; its exit code (0: every run ok). TimeoutError after `timeout`."""
        with self._store() as store:
            record = wait_for(store, self.id, timeout)
        return exit_code(record) or 0

    def cancel(self) -> None:
        with self._store() as store:
            cancel(store, self.id)

    def runs(self) -> list[RunRecord]:
        with self._store() as store:
            return store.lookups.runs(self.id)

    def _store(self) -> Store:
        from qaflow.store import Store

        return Store.open(self.database_url, storage=self.storage)


def start(project: Project, the_plan: Plan, targets: Sequence[str], options: Options) -> Handle:
    """Record the execution, write its options beside it, and start its driver in the
    background; return at once."""
    from qaflow.config.git import git_info
    from qaflow.execution.preflight import preflight
    from qaflow.store import Store

    preflight(project, the_plan, options)
    text = options_json(project.root, targets, options)
    with Store.open(project.database_url, storage=project.storage) as store:
        execution_id = store.writes.create_execution(
            label=options.label,
            project=project.name,
            argv=list(options.argv or sys.argv),
            git=git_info(project.root),
            pid=None,  # not yet known: the heartbeat of the new record vouches for it
            host=HOST,
        )
        log = log_path(project.storage, execution_id)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            options_path(project.storage, execution_id).write_text(text, encoding="utf-8")
            pid = _spawn([str(project.storage), execution_id], log)
        except OSError as exc:
            store.writes.finish_execution(execution_id, "failed")
            raise ExecutorError(f"cannot start the background process: {exc}") from exc
        store.writes.adopt_execution(execution_id, pid=pid, host=HOST)
    return Handle(execution_id, pid, log, project.storage, project.database_url)


def log_path(storage: Path, execution_id: str) -> Path:
    """Where a background execution's driver writes its output."""
    return storage / "executions" / f"{execution_id}.log"


def options_path(storage: Path, execution_id: str) -> Path:
    """Where a background execution's targets and options are, for its driver to read."""
    return storage / "executions" / f"{execution_id}.options.json"


def options_json(root: Path, targets: Sequence[str], options: Options) -> str:
    """What the detached driver needs to plan and execute as the foreground would have: the
    project, the targets, the options (`read_options` reads them back)."""
    data = {"root": str(root), "targets": list(targets), "options": options.to_json()}
    try:
        return json.dumps(data, indent=1)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"The options of a background execution must be JSON data (strings, numbers, "
            f"lists, mappings): {exc}. Pass them so, or use wait=True."
        ) from exc


def read_options(storage: Path, execution_id: str) -> tuple[Path, list[str], Options]:
    """(project root, targets, options) of a background execution, as `start` wrote them."""
    from qaflow.execution.model import Options

    data = json.loads(options_path(storage, execution_id).read_text(encoding="utf-8"))
    return Path(data["root"]), list(data["targets"]), Options.from_json(data["options"])


def spawn(module: str, args: list[str], log: Path) -> int:
    """Start `python -m MODULE ARGS` detached, as a background execution's driver; its pid."""
    return _spawn(args, log, module)


def _spawn(args: list[str], log: Path, module: str = "qaflow.execution.detached") -> int:
    """Start `python -m qaflow.execution.detached ARGS` detached; its pid. A thread reaps it if we
    outlive it."""
    command = [sys.executable, "-m", module, *args]
    env = {**os.environ, "QA_BACKGROUND": "1"}
    with open(log, "ab") as out:  # a new session: no SIGHUP from the terminal
        process = Popen(
            command, stdin=DEVNULL, stdout=out, stderr=STDOUT, env=env, start_new_session=True
        )
    threading.Thread(target=process.wait, name=f"qaflow-reap-{process.pid}", daemon=True).start()
    return process.pid
