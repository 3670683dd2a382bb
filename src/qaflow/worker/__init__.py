"""One run, in a worker process: its context, its execution, its run directory and locks.

`model` (RunTask with its RunPayload, RunResult, RunStatus, the Executor seam), `execute` (the
steps of a run, the pool worker's loop), `modes` (invoking the entrypoint or a command),
`context` (RunContext, captured output, metrics and manifest files), `rundir` (where a run's
directory is, its lock, whether it holds a completed result). Knows nothing of plans,
schedulers or stores: it receives a task and returns a result. Imports `config` (the
run-start interpolation pass).
"""
