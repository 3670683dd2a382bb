"""Reading what the user wrote: qaboard.yaml, batch files, the expression language, git facts.

The expression language: `evaluator` (safe evaluation of one expression), `expressions`
(`${…}` templating on top of it), `passes` (the interpolation passes at expansion, linking
and run start, and the names each may use). The lowest phase: it imports nothing of qaflow
but `errors`.
"""
