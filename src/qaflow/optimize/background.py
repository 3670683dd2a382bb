"""`qa optimize --no-wait`: the study runs in a detached driver, followed as an execution.

The foreground checks the request (`Request.prepare`: a mistake exits 2, nothing written),
records an execution for the study (label `LABEL`, no runs of its own: each trial is an
execution `LABEL|iterN`), writes the request beside it (STORAGE/executions/ID.options.json)
and starts `python -m qaflow.optimize.detached STORAGE ID`. `qa status`, `qa wait` and
`qa cancel` then work on that execution as on a background `qa batch`: the driver beats its
heartbeat, records how it ended, and cancels its trials on SIGTERM.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from qaflow.errors import ExecutorError
from qaflow.execution.background import HOST, log_path, options_path, spawn
from qaflow.optimize.request import Request
from qaflow.optimize.study import Prepared


@dataclass(frozen=True)
class Started:
    """A study started in the background."""

    execution_id: str
    study: str
    pid: int
    log: Path


def start(request: Request, prepared: Prepared) -> Started:
    """Record the study's execution, write the request, start its driver; return at once."""
    from qaflow.config.git import git_info
    from qaflow.store import Store

    project = prepared.project
    text = request.to_json()
    with Store.open(project.database_url, storage=project.storage) as store:
        execution_id = store.writes.create_execution(
            label=prepared.options.label,
            project=project.name,
            argv=list(prepared.options.argv or sys.argv),
            git=git_info(project.root),
            pid=None,
            host=HOST,
        )
        log = log_path(project.storage, execution_id)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            options_path(project.storage, execution_id).write_text(text, encoding="utf-8")
            pid = spawn("qaflow.optimize.detached", [str(project.storage), execution_id], log)
        except OSError as exc:
            store.writes.finish_execution(execution_id, "failed")
            raise ExecutorError(f"cannot start the background process: {exc}") from exc
        store.writes.adopt_execution(execution_id, pid=pid, host=HOST)
    return Started(execution_id, prepared.study, pid, log)
