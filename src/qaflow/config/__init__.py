"""Reading what the user wrote: qaboard.yaml, batch files, the expression language, git facts.

The lowest phase: it imports nothing of qaflow but `errors`.
"""
