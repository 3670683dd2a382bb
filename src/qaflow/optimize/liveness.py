"""Trials whose process died: failed at once, not after Optuna's heartbeat grace.

A trial records the process that runs it (attributes `pid` and `host`) as it starts. While a
`qa optimize` process works on a study, it looks at the study's running trials when it
starts and then every POLL seconds (`Watch`, a thread): a trial whose process ran on this
host and is gone (kill -9, the OOM killer) is failed now: Optuna state FAIL, with the
attribute `interrupted` (so it does not count against the budget: another trial takes its
place), and its execution is recorded interrupted, with its unfinished runs, as `qa status`
records an execution whose driver died (`qaflow.execution.background.observe`). A trial run
on another host is left to Optuna's heartbeat check (`qaflow.optimize.storage.GRACE`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from qaflow.errors import QaflowError
from qaflow.execution.background import HOST, observe, pid_exists

if TYPE_CHECKING:
    import optuna

    from qaflow.config.project import Project

POLL = 1.0  # seconds between two looks at the study's running trials


def mark(trial: optuna.Trial) -> None:
    """Record on the trial the process that runs it."""
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("host", HOST)


def fail_dead_trials(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    project: Project,
    progress: Callable[[str], None] = print,
) -> list[int]:
    """Fail the study's running trials whose process on this host is gone; their numbers."""
    import optuna

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid, host = trial.user_attrs.get("pid"), trial.user_attrs.get("host")
        if host != HOST or not isinstance(pid, int) or pid == os.getpid() or pid_exists(pid):
            continue
        reason = f"its process {pid} on {host} died"
        study_id = storage.get_study_id_from_name(study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "interrupted", reason)
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        except RuntimeError:  # another process failed it first (UpdateFinishedTrialError)
            continue
        failed.append(trial.number)
        _interrupt(project, trial.user_attrs.get("execution"))
        label = trial.user_attrs.get("label", f"trial {trial.number}")
        progress(f"{label}: failed: {reason}; another trial takes its place")
    return failed


def _interrupt(project: Project, execution_id: object) -> None:
    """Record the dead trial's execution interrupted (its driver is the dead process)."""
    if not isinstance(execution_id, str):
        return  # it died before its execution was recorded
    from qaflow.store import Store

    with Store.open(project.database_url, storage=project.storage) as store:
        observe(store, execution_id)


@contextlib.contextmanager
def watched(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    project: Project,
    progress: Callable[[str], None],
) -> Iterator[None]:
    """Fail dead trials now, and every POLL seconds until the block ends."""
    stop = threading.Event()

    def watch() -> None:
        while True:
            try:
                fail_dead_trials(storage, study, project, progress)
            except QaflowError as exc:  # a store hiccup: the next look may succeed
                progress(f"warning: checking the study's running trials: {exc}")
            if stop.wait(POLL):
                return

    thread = threading.Thread(target=watch, name="qaflow-dead-trials", daemon=True)
    fail_dead_trials(storage, study, project, progress)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
