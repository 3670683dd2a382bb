"""One run, in a worker process: its context, its execution, its run directory and locks.

Knows nothing of plans, schedulers or stores: it receives a task and returns a result. Imports `config` (expressions evaluated at run start).
"""
