"""Checks of values that the YAML types accept but that cannot run: caught before planning.

pydantic checks the shapes of a batch (`config.models.BatchSection`); what is checked here
needs the project or the batch as a whole, so a batch that would fail every run, or plan
more runs than anyone can execute, exits 2 before anything starts:
- `type:` (of the batch, of an input, or `qa --type`) names an input type of `inputs.types`
  (or, for a batch, `script` or `pipeline`);
- `resources.cpus` is a positive number; `local.concurrency` is -1 or a positive integer;
- configurations are strings or mappings (a number is not a configuration), and a script's
  commands are strings, not lists;
- a matrix has at most `max_runs` points (its size is computed, never built);
- the file-level defaults of a batch file (`database`, `configs`/`configurations`/
  `configuration` and `platform` at its top level, for each batch of the file that sets
  none) have the types a batch's own have and pass the same checks, whether or not the
  batch asked for overrides them. (qaboard.yaml's defaults, `inputs.configs` included, are
  checked when the project loads: `config.project`.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qaflow.config import validated, yamlfile
from qaflow.config.project import Project, did_you_mean
from qaflow.config.values import concurrency_value, flatten, not_a_configuration
from qaflow.errors import BatchSpecError, UsageError

BATCH_TYPES = ("script", "pipeline")  # batch types that are not input types
CONFIG_KEYS = ("configs", "configurations", "configuration")


def check_type_option(project: Project, name: str | None) -> None:
    """`qa --type NAME`: NAME must be an input type of the project."""
    if name is not None and name not in project.types:
        raise UsageError(
            f"--type {name!r}: there is no such input type in {project.config_path}"
            f"{did_you_mean(name, project.types)} Input types: {', '.join(sorted(project.types))} "
            "(define more under inputs.types)."
        )


def check_batch(project: Project, name: str, where: Any, data: dict[str, Any]) -> None:
    """Refuse the values of batch `name` (its YAML mapping `data`) that cannot run.
    `where(keys)` is the `file:line` of the value at `keys` in the batch."""
    _check_type(project, name, where, data.get("type"), ("type",))
    _check_inputs(project, name, where, data.get("inputs", data.get("tests")))
    _check_resources(name, where, data.get("resources"))
    _check_local(name, where, data.get("local"))
    key = next((k for k in CONFIG_KEYS if data.get(k) is not None), None)
    if key is not None:
        _check_configs(name, where, key, data[key], script=data.get("type") == "script")
    _check_matrix(project, name, where, data.get("matrix"))


def check_file_defaults(
    file: Path, defaults: dict[str, Any], *, batch: str, script: bool, root: Path
) -> None:
    """Refuse the file-level defaults of `file` (see the module docstring) when batch `batch`
    of it is validated; `script`: the batch is a `type: script` batch taking the file's
    configurations as its commands. `root`: the project's (where validations are kept)."""
    if defaults:
        validated.cached(
            "file defaults", str(file), defaults, lambda: _types(file, defaults, batch), root=root
        )
    configs = next((k for k in CONFIG_KEYS if defaults.get(k) is not None), None)
    if configs is not None:
        where = lambda keys: yamlfile.where(file, keys)  # noqa: E731
        who = f"file-level `{configs}` (the default of every batch of this file, batch {batch!r} included)"
        _check_configs(batch, where, configs, defaults[configs], script=script, who=who)


def _types(file: Path, defaults: dict[str, Any], batch: str) -> None:
    from qaflow.config.models import check_file_defaults  # pydantic: only for a changed file

    check_file_defaults(file, defaults, batch)


def batch_locator(file: Any, key: str) -> Any:
    """`where(keys)` for a batch at top-level key `key` of YAML file `file`."""
    return lambda keys: yamlfile.where(file, (key, *keys))


def _fail(
    where: Any, keys: tuple[Any, ...], name: str, message: str, who: str | None = None
) -> BatchSpecError:
    return BatchSpecError(f"{where(keys)}: {who or f'batch {name!r}'}: {message}")


def _check_type(project: Project, name: str, where: Any, value: Any, keys: tuple[Any, ...]) -> None:
    if value is None or value in project.types or (keys == ("type",) and value in BATCH_TYPES):
        return
    known = sorted(project.types) + (list(BATCH_TYPES) if keys == ("type",) else [])
    raise _fail(
        where,
        keys,
        name,
        f"`{'.'.join(map(str, keys))}: {value}` is not an input type of {project.config_path.name}"
        f"{did_you_mean(str(value), known)} Use one of {', '.join(known)}, or define "
        f"{value!r} under inputs.types in {project.config_path.name}.",
    )


def _check_inputs(project: Project, name: str, where: Any, inputs: Any) -> None:
    """Per-input settings: `- a.jpg: {type: T, configs: […]}`, `- a.jpg: […]`, `- [a.jpg, …]`."""
    entries: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(inputs, dict):
        entries = [(("inputs", loc), cfg) for loc, cfg in inputs.items()]
    elif isinstance(inputs, list):
        for index, item in enumerate(inputs):
            if isinstance(item, dict):
                entries += [(("inputs", index, loc), cfg) for loc, cfg in item.items()]
            elif isinstance(item, list) and item:
                entries.append((("inputs", index), item[1:]))
    for keys, configs in entries:
        if isinstance(configs, dict):
            _check_type(project, name, where, configs.get("type"), (*keys, "type"))
            configs = next((configs[k] for k in CONFIG_KEYS if k in configs), None)
        if configs is not None and not isinstance(configs, dict):
            _check_configs(name, where, keys, configs, script=False)


def _check_resources(name: str, where: Any, resources: Any) -> None:
    if not isinstance(resources, dict) or "cpus" not in resources:
        return
    cpus = resources["cpus"]
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus > 0:
        raise _fail(
            where,
            ("resources", "cpus"),
            name,
            f"`resources.cpus` must be a positive number of CPUs a run takes, got {cpus!r}. "
            "Write e.g. `resources: {cpus: 2}`.",
        )


def _check_local(name: str, where: Any, local: Any) -> None:
    if not isinstance(local, dict):  # None; pydantic refused any other shape
        return
    value = local.get("concurrency")
    if value is None:
        return
    try:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number of runs, got {value!r}")
        concurrency_value(value)
    except ValueError as exc:
        raise _fail(
            where,
            ("local", "concurrency"),
            name,
            f"invalid `local.concurrency`: {exc}. Write e.g. `local: {{concurrency: 4}}`.",
        ) from None


def _check_configs(
    name: str, where: Any, key: Any, configs: Any, *, script: bool, who: str | None = None
) -> None:
    keys = key if isinstance(key, tuple) else (key,)
    items = configs if isinstance(configs, list) else [configs]
    for index, item in enumerate(items):
        if script and isinstance(item, list):
            raise _fail(
                where,
                (*keys, index),
                name,
                f"a script's commands are strings, one per line of `{keys[-1]}`; item #{index + 1} is "
                f"a list ({item!r}). Write the command as one string, e.g. `- echo hello`.",
                who,
            )
        for leaf in flatten(item):
            problem = not_a_configuration(leaf)
            if problem is not None:
                at = f" in `{'.'.join(map(str, keys))}`"
                raise _fail(
                    where, (*keys, index), name, f"{problem.replace(' is ', at + ' is ', 1)}.", who
                )


def _check_matrix(project: Project, name: str, where: Any, matrix: Any) -> None:
    if not isinstance(matrix, dict):
        return
    sizes = [len(v) for v in matrix.values() if isinstance(v, list)]
    points = math.prod(sizes)
    if points > project.max_runs:
        raise _fail(
            where,
            ("matrix",),
            name,
            f"its matrix has {points:,} points ({' x '.join(map(str, sizes))}), more than the "
            f"{project.max_runs:,} runs a plan may have (`max_runs` in qaboard.yaml, or "
            "QA_MAX_RUNS). Use fewer values, or raise the limit.",
        )


def too_many_runs(project: Project, batch: str) -> BatchSpecError:
    """The error of a plan that grows past `max_runs` runs (while batch `batch` expands)."""
    return BatchSpecError(
        f"batch {batch!r}: the plan would have more than {project.max_runs:,} runs, the most a "
        f"plan may have (`max_runs` in {project.config_path}, or QA_MAX_RUNS). Plan fewer "
        "inputs or configurations, or raise the limit."
    )
