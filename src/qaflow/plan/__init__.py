"""Planning: from batch names to a Plan (the graph of runs), with fingerprints and reuse decided up front.

Pure: reads files and hashes inputs, executes nothing and writes no store. Imports `config` and `worker` (what a run directory holds).
"""
