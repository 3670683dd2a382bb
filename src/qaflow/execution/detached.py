"""The driver of a background execution: `python -m qaflow.execution.detached STORAGE ID`.

`background.start` recorded execution ID and wrote its project, targets and options to
STORAGE/executions/ID.options.json; this process reads them, plans the targets again (as
the foreground did, the inputs' hashes cached) and executes the plan as execution ID, its
output appended to the execution's log. An error is printed there as `qa` prints it
(`error: …`); its exit code is the execution's (0: every run ok).
"""

from __future__ import annotations

import sys
from pathlib import Path

from qaflow.config.project import Project
from qaflow.errors import QaflowError, shown_warnings
from qaflow.execution.background import read_options
from qaflow.execution.driver import execute
from qaflow.execution.executors.forkserver import may_execute, warm_up
from qaflow.execution.options import runner_of
from qaflow.interpreter import pause_gc, restore_gc
from qaflow.plan.planner import plan


def main(args: list[str]) -> int:
    """Drive execution `args[1]` of the storage folder `args[0]`; the exit code."""
    storage, execution_id = Path(args[0]), args[1]
    pause_gc()  # as `qa` does while planning: see `qaflow.interpreter`
    try:
        with shown_warnings(lambda text: print(text, file=sys.stderr, flush=True)):
            return _drive(storage, execution_id)
    except QaflowError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        restore_gc()


def _drive(storage: Path, execution_id: str) -> int:
    root, targets, options = read_options(storage, execution_id)
    project = Project.discover(root, share=options.share)
    local = runner_of(project, options) == "local"
    if local and not project.storage.exists():  # nothing ran here: runs will execute
        warm_up()  # the pool's processes start while we plan
    the_plan = plan(project, targets, options.plan, persist=True)
    if local and may_execute(
        (run.output_dir for run in reversed(the_plan.runs) if run.key not in the_plan.committed),
        force=options.force or bool(options.force_batches),
    ):
        warm_up()  # the pool's processes start while the store opens and records
    return execute(project, the_plan, options, execution_id=execution_id).exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
