"""The JSON of `qa batch --list`: an array, one run object per line (fast to write, easy to
grep), each line `Plan.describe(run)` as `json.dumps` writes it, fast enough for 100,000
runs and streamed (`write_json`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from qaflow.plan.memo import ByObject
from qaflow.plan.model import Plan, RunSpec

LINES_PER_WRITE = 2000  # `write_json`: about 1 MB of text a write


def to_json(plan: Plan, statuses: Mapping[str, str] | None = None) -> str:
    """The plan's runs as a JSON array, one run object per line; with `statuses`, each
    object says whether the run would execute or is cached."""
    parts: list[str] = []
    write_json(plan, parts.append, statuses)
    return "".join(parts)


def write_json(
    plan: Plan, write: Callable[[str], object], statuses: Mapping[str, str] | None = None
) -> None:
    """`to_json`'s text, given to `write` a few thousand lines at a time: `qa batch --list`
    of 100,000 runs never holds its 50 MB of text at once, nor copies it."""
    if not plan.runs:
        write("[]")
        return
    line = RunLines(plan, statuses).line
    write("[\n")
    for start in range(0, len(plan.runs), LINES_PER_WRITE):
        chunk = plan.runs[start : start + LINES_PER_WRITE]
        write((",\n" if start else "") + ",\n".join(map(line, chunk)))
    write("\n]")


class RunLines:
    """Writes `Plan.describe(run)` as JSON (`json.dumps` with `default=str`, not ASCII-only)
    for `--list` of 100,000 runs: no dict is built per run, strings go through json's own C
    escaper, and what a batch's runs share (configurations, params, matrix) is encoded once
    per object. `tests/plan/test_listing.py` holds each line equal to `json.dumps`'s."""

    def __init__(self, plan: Plan, statuses: Mapping[str, str] | None) -> None:
        self.plan, self.statuses = plan, statuses
        self.encode = json.JSONEncoder(default=str, ensure_ascii=False).encode
        self.shared = ByObject(self.encode).of  # a value many runs hold, encoded once

    def line(self, run: RunSpec) -> str:
        string, shared, plan = _string, self.shared, self.plan
        configurations = shared(run.configurations)
        rel, fingerprint = run.rel_input_path, run.fingerprint
        text = (
            f'{{"batch": {string(run.batch)}, '
            f'"batch_file": {"null" if run.batch_file is None else string(str(run.batch_file))}, '
            f'"input_path": {"null" if run.input_path is None else string(str(run.input_path))}, '
            f'"rel_input_path": {"null" if rel is None else string(rel)}, '
            f'"database": {string(str(run.database))}, "type": {string(run.type)}, '
            f'"configurations": {configurations}, "configs": {configurations}, '
            f'"params": {shared(run.params)}, "platform": {string(run.platform)}, '
            f'"matrix": {shared(run.matrix)}, "output_dir": {string(str(run.output_dir))}, '
            f'"id": {string(run.key)}, '
            f'"fingerprint": {"null" if fingerprint is None else string(fingerprint)}'
        )
        if run.command is not None:
            text += f', "command": {string(run.command)}'
        if run.deferred:
            text += ', "deferred": true'
        if run.key in plan.edges:
            text += f', "needs": {self.encode(sorted(plan.edges[run.key]))}'
        if run.key in plan.env:
            text += f', "env": {self.encode(plan.env[run.key])}'
        if self.statuses:
            text += f', "status": {string(self.statuses[run.key])}'
        return text + "}"


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]  # json's C escaper
