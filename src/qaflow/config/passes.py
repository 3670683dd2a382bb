"""The interpolation passes: which `${…}` names are known when, and who evaluates them.

A batch's configurations (and a run's command) are interpolated in up to three passes, each
offering the names known at its point; `interpolate`/`interpolate_command` of
`qaflow.config.expressions` do the work. Strings are shell commands (single-brace forms too,
values shell-quoted) for script batches, pipeline steps and commands.

1. `at_expansion` (planning, `plan/expand.py`), once per matrix point of a batch.
   Names: `matrix` (only if the batch has a `matrix:`). Only templates naming `matrix` are
   evaluated; templates naming a `later` name (see `later_names`) are left as written for
   pass 2, as are templates naming no known name (`${HOME}` stays for the shell).
2. `at_linking` (planning, `plan/link.py`), once per run.
   Names: `needs` and `depends` (the needed runs by alias and by batch name), each alias of
   `needs:` as a bare name, `input_path`, `rel_input_path`, `output_dir`, `matrix` (if the run
   has a matrix point) and, in pipeline steps, `previous`. A template naming a root that is
   not given here (`previous` outside pipelines) is an InterpolationError. Reading an
   upstream run's `metrics` raises `Deferred` while planning (they do not exist yet): the
   caller marks the run `deferred`, and runs this pass again when the run starts
   (`execution/prepare.py`), with the upstream results, where `metrics` are known.
3. `at_run_start` (the worker, `worker/execute.py`), for a run given a shell command.
   Names: `output_dir`, `params`, `configs`, `matrix`, `input_path`, `rel_input_path` (the
   last two if the run has an input). `needs`, `depends`, `previous` are not known here: a
   command naming them is an InterpolationError (the run fails with it).

In every pass, a template naming none of the pass's names nor a root (`KNOWN_ROOTS`: needs,
depends, matrix, previous, input_path, output_dir) is left as written, for the shell.
Every failure is an InterpolationError; the callers add where (batch file, batch, field).
`Deferred` is not an error: it is a signal, and it never escapes pass 2's caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qaflow.config.templates import KNOWN_ROOTS, Deferred, has_templates

__all__ = ["Deferred", "at_expansion", "at_linking", "at_run_start", "later_names"]

EXPANSION_ROOTS = frozenset({"matrix"})


def later_names(aliases: Iterable[str]) -> frozenset[str]:
    """The names pass 1 leaves for pass 2, given the aliases of a batch's `needs:`."""
    return (KNOWN_ROOTS - EXPANSION_ROOTS) | frozenset(aliases) | {"rel_input_path"}


def at_expansion(
    configs: Iterable[Any],
    *,
    matrix: Mapping[str, Any] | None,
    later: frozenset[str],
    commands: bool,
) -> list[Any]:
    """Pass 1: `${matrix.…}` in a batch's configurations (matrix None: the batch has none)."""
    names = {} if matrix is None else {"matrix": matrix}
    return _configurations(configs, names, commands, roots=EXPANSION_ROOTS, later=later)


def at_linking(
    configs: Iterable[Any],
    *,
    upstream: Mapping[str, Any],
    input_path: object,
    rel_input_path: object,
    output_dir: object,
    matrix: Mapping[str, Any] | None,
    previous: object | None,
    commands: bool,
) -> list[Any]:
    """Pass 2: the rest of a run's configurations. `upstream`: `needs`, `depends` and the
    bare aliases; matrix None: the run has no matrix point; previous None: not a pipeline step.
    Raises Deferred if an expression reads metrics that do not exist yet."""
    names: dict[str, Any] = dict(upstream)
    names.update(input_path=input_path, rel_input_path=rel_input_path, output_dir=output_dir)
    if matrix:
        names["matrix"] = matrix
    if previous is not None:
        names["previous"] = previous
    return _configurations(configs, names, commands)


def at_run_start(
    command: str,
    *,
    output_dir: str,
    params: Mapping[str, Any],
    configs: list[Any],
    matrix: Mapping[str, Any],
    input_path: str | None,
    rel_input_path: str | None,
) -> str:
    """Pass 3: a run's shell command, once its output directory is known to the worker."""
    if "{" not in command:
        return command
    names: dict[str, object] = {
        "output_dir": output_dir,
        "params": params,
        "configs": configs,
        "matrix": matrix,
    }
    if input_path is not None:
        names["input_path"] = input_path
    if rel_input_path is not None:
        names["rel_input_path"] = rel_input_path
    from qaflow.config.expressions import interpolate_command  # a template: the evaluator

    return interpolate_command(command, names)


def _configurations(
    configs: Iterable[Any],
    names: Mapping[str, Any],
    commands: bool,
    *,
    roots: frozenset[str] | None = None,
    later: frozenset[str] = frozenset(),
) -> list[Any]:
    """Each configuration interpolated (strings as shell commands when `commands`)."""
    configs = list(configs)
    if not any(_maybe_template(c, commands) for c in configs):
        return configs  # nothing to interpolate: the evaluator is not even imported
    from qaflow.config.expressions import interpolate, interpolate_command

    return [
        interpolate_command(c, names, roots=roots, later=later)
        if commands and isinstance(c, str)
        else interpolate(c, names, roots=roots, later=later)
        for c in configs
    ]


def _maybe_template(config: Any, commands: bool) -> bool:
    if commands and isinstance(config, str):
        return "{" in config
    return has_templates(config)
