"""Executing a plan: the driver, the scheduler, the executors (local pool, Dask), recording and reporting.

Imports the phases below it: `config`, `plan`, `worker`, `store`.
"""
