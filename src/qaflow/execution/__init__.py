"""The execution phase: from the options and a plan to an `Execution` with every result.

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
"""
