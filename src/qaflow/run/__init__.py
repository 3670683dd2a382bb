"""Executing a plan: from the options and the plan to an `Execution` with every result.

Imports the phases below it: `config`, `worker`, `plan`, `store`. What each module owns:
- `model`: the types handed on (`Options`, `Job`, `Run`, `Execution`) and the seams
  (`Executor`, `Events`); every other module imports it, none imports the driver.
- `driver`: `qaflow.batch()`, `qaflow.run()` and `execute()`, the named phases of an
  execution: preflight, settle, record, run, finish.
- `preflight`: what an execution refuses before anything starts (both paths).
- `settle`: which runs are decided without executing (reuse, --action-on-existing).
- `backends`: where runs execute (local pool or Dask), behind one `GraphRunner` contract.
- `scheduler`: our graph runner over an `Executor`; `prepare`: completing a run when it
  starts; `executors/`: the local pool, the in-process executor, Dask.
- `recorder`, `report`: the event sinks (the store, the console).
- `background`, `detached`: `--no-wait` executions and their detached driver.

`qaflow.run` is also the public function `qaflow.run(...)` (the facade's name: importing
any module of this package binds the package to that attribute), so calling the package
calls `driver.run`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _Package(types.ModuleType):
    """This package, callable as `qaflow.run(input_path, ...)`."""

    def __call__(self, input_path: Any, **options: Any) -> Any:
        from qaflow.run.driver import run

        return run(input_path, **options)


sys.modules[__name__].__class__ = _Package
