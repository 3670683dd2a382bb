"""What came of executions, read back: metrics.yaml, comparisons between versions, history, garbage collection.

Imports `config`, `worker` and `store`; the CLI and the board present what it computes.
"""
