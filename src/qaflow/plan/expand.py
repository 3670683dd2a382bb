"""Expanding one batch into its runs: matrix points × inputs, with QA-Board's precedence rules.

Policy (QA-Board's, so existing batch files plan identically):
- configurations: the batch's `configs` if it has any, else the defaults (`qa --config`, else
  `inputs.configs`); nested lists are flattened; per-input configurations are appended.
- a matrix is the cartesian product of its lists, keys in sorted order, the last key varying
  fastest; `matrix.configs` is appended to the batch's configs (or replaces the defaults when
  the batch has none); `matrix.platform` sets the platform. `${matrix.x}` is interpolated
  here; templates that use names known only per run or from upstream runs (`needs`,
  `input_path`…) are left for `link`.
- database: the batch's `database`, else its type's, else `qa --database`, else the project's.
- `type: script`: configurations are shell commands; without `inputs`, one run with no input.

Invariant: a run's key (and so its output directory) is a pure function of its identity:
batch, batch file, input, platform, input type and configurations as written (after the
matrix): two different runs never share one, and planning again finds the same.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from qaflow.config import passes, yamlfile
from qaflow.config.batches import Batch, FolderTarget, InputEntry
from qaflow.config.project import HOST, Project, flatten, resolve_path
from qaflow.errors import BatchSpecError, InterpolationError
from qaflow.plan.hooks import entrypoint_hooks, iter_inputs, matches, metadata_of
from qaflow.plan.inputs import FoundInput, find_inputs
from qaflow.plan.model import PlanOptions, RunSpec, merge_params

MATRIX_CONFIG_KEYS = ("configs", "configurations", "configuration")
SCRIPT = "script"
PIPELINE = "pipeline"


@dataclass(frozen=True)
class Context:
    """The settings shared by the runs of one matrix point of one batch."""

    batch: str
    batch_file: Path | None
    type: str
    database: Path
    globs: tuple[str, ...]
    use_parent_folder: bool
    platform: str
    configs: tuple[Any, ...]
    matrix: dict[str, Any]
    has_matrix: bool


Find = Callable[..., list[FoundInput]]


def input_cache() -> Find:
    """`find_inputs` memoised for one plan: matrix points and batches share folder walks."""
    return functools.lru_cache(maxsize=None)(find_inputs)


def expand_batch(
    project: Project, batch: Batch, options: PlanOptions, find: Find, *, later: frozenset[str]
) -> Iterator[RunSpec]:
    """The runs of `batch`; `later`: names its templates may use that `link` provides."""
    base = _batch_context(project, batch, options)
    if batch.inputs is not None:
        entries: tuple[InputEntry | None, ...] = batch.inputs
    else:
        entries = (None,) if batch.type == SCRIPT else (InputEntry("*"),)
    for point in matrix_points(batch.grids or (batch.matrix,)):
        context = _apply_point(base, batch, point)
        plain: list[InputEntry] = []  # consecutive entries that add nothing: expanded together
        for entry in entries:
            if entry is not None and not entry.configs and not entry.settings:
                plain.append(entry)
                continue
            if plain:
                yield from _expand_plain(project, batch, context, plain, options, find, later)
                plain = []
            yield from _expand_entry(project, batch, context, entry, options, find, later)
        if plain:
            yield from _expand_plain(project, batch, context, plain, options, find, later)


def _batch_context(project: Project, batch: Batch, options: PlanOptions) -> Context:
    type_name = batch.type or options.type or project.default_type
    itype = project.input_type(type_name)
    if batch.database is not None:
        database = batch.database
    elif batch.type is None and options.database is not None:
        database = options.database
    else:
        database = itype.database
    configs = batch.configs if batch.configs is not None else default_configs(project, options)
    return Context(
        batch=batch.name,
        batch_file=batch.file,
        type=type_name,
        database=database,
        globs=batch.globs if batch.globs is not None else itype.globs,
        use_parent_folder=itype.use_parent_folder
        if batch.use_parent_folder is None
        else batch.use_parent_folder,
        platform=batch.platform or options.platform or HOST,
        configs=configs,
        matrix={},
        has_matrix=bool(batch.matrix),
    )


def default_configs(project: Project, options: PlanOptions) -> tuple[Any, ...]:
    return options.configs if options.configs is not None else project.default_configs


def matrix_points(grids: tuple[dict[str, list[Any]], ...]) -> list[dict[str, Any]]:
    """Each grid's cartesian product, grid after grid; the keys vary in the order of the YAML,
    the last one fastest (QA-Board 1.1.1)."""
    return [
        dict(zip(grid, values, strict=True))
        for grid in grids
        for values in itertools.product(*grid.values())
    ]


def _apply_point(base: Context, batch: Batch, point: dict[str, Any]) -> Context:
    if not batch.matrix:
        return base
    configs = base.configs
    matrix_configs = next((point[k] for k in MATRIX_CONFIG_KEYS if k in point), None)
    if matrix_configs is not None:
        extra = tuple(flatten(matrix_configs))
        configs = (*configs, *extra) if batch.configs is not None else extra
    platform = str(point["platform"]) if "platform" in point else base.platform
    return replace(base, configs=configs, platform=platform, matrix=point)


def _expand_entry(
    project: Project,
    batch: Batch,
    context: Context,
    entry: InputEntry | None,
    options: PlanOptions,
    find: Find,
    later: frozenset[str],
) -> Iterator[RunSpec]:
    configs = _configs(batch, context, entry.configs if entry else (), later)
    if entry is None:
        yield from runs_of(
            project, context, [None], configs, context.type, context.platform, options
        )
        return
    settings = entry.settings
    database = (
        resolve_path(project.root, settings["database"])
        if "database" in settings
        else context.database
    )
    type_name = str(settings.get("type", context.type))
    itype = project.input_type(type_name) if "type" in settings else None
    globs = _settings_globs(settings) or (itype.globs if itype else context.globs)
    use_parent = bool(
        settings.get(
            "use_parent_folder", itype.use_parent_folder if itype else context.use_parent_folder
        )
    )
    hooks = _hooks(project, batch)
    found = _find(hooks, find, batch, entry.location, database, globs, use_parent)
    platform = str(settings.get("platform", context.platform))
    yield from runs_of(project, context, list(found), configs, type_name, platform, options)


def _expand_plain(
    project: Project,
    batch: Batch,
    context: Context,
    entries: list[InputEntry],
    options: PlanOptions,
    find: Find,
    later: frozenset[str],
) -> Iterator[RunSpec]:
    """`_expand_entry` of each entry, for entries with neither configurations nor settings of
    their own (a long list of input files): the batch's configurations are interpolated, and
    the runs' shared parts computed, once for all of them."""
    configs = _configs(batch, context, (), later)
    found: list[FoundInput | None] = []
    hooks = _hooks(project, batch)  # once for the list, not once per file
    for entry in entries:
        found += _find(
            hooks,
            find,
            batch,
            entry.location,
            context.database,
            context.globs,
            context.use_parent_folder,
        )
    yield from runs_of(project, context, found, configs, context.type, context.platform, options)


def _configs(
    batch: Batch, context: Context, extra: tuple[Any, ...], later: frozenset[str]
) -> tuple[Any, ...]:
    """The configurations of the batch (at the context's matrix point) and of an entry."""
    matrix = context.matrix if context.has_matrix else None
    try:
        configs = passes.at_expansion(
            (*context.configs, *extra),
            matrix=matrix,
            later=later,
            commands=batch.type in (SCRIPT, PIPELINE),
        )
    except InterpolationError as exc:
        raise InterpolationError(config_error(batch, exc, bool(matrix))) from None
    return tuple(flatten(configs))


def _hooks(project: Project, batch: Batch) -> ModuleType | None:
    """The entrypoint's QA-Board hooks (`plan.hooks`) that finding `batch`'s inputs needs."""
    return entrypoint_hooks(project, filtering=bool(batch.only or batch.exclude))


def _find(
    hooks: ModuleType | None,
    find: Find,
    batch: Batch,
    location: str,
    database: Path,
    globs: tuple[str, ...],
    use_parent_folder: bool,
) -> list[FoundInput]:
    """The inputs at `location`; a missing one is an error naming the batch and its file.
    The entrypoint's QA-Board hooks (`_hooks`) may find them, or filter them."""
    try:
        if hooks is not None and callable(getattr(hooks, "iter_inputs", None)):
            settings = {
                "globs": list(globs),
                "use_parent_folder": use_parent_folder,
                "database": database,
                "only": batch.only,
                "exclude": batch.exclude,
            }
            return [
                FoundInput.under(path, db)
                for path, db in iter_inputs(hooks, location, database, settings)
            ]
        found = find(location, database=database, globs=globs, use_parent_folder=use_parent_folder)
        if globs and (batch.only or batch.exclude):  # as QA-Board: on glob-found inputs
            found = [f for f in found if _kept(hooks, batch, f)]
        return found
    except BatchSpecError as exc:
        raise BatchSpecError(f"{batch.file}: batch {batch.name!r}: {exc}") from None


def _kept(hooks: Any, batch: Batch, found: FoundInput) -> bool:
    meta = metadata_of(hooks, found.path, found.database, found.rel)
    if batch.only and not matches(meta, batch.only):
        return False
    return not (batch.exclude and matches(meta, batch.exclude))


def _settings_globs(settings: dict[str, Any]) -> tuple[str, ...]:
    value = settings.get("globs", settings.get("glob"))
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def expand_folder(
    project: Project, target: FolderTarget, options: PlanOptions, find: Find
) -> Iterator[RunSpec]:
    """`qa batch some/folder`: a run of the default configurations per input found there."""
    itype = project.input_type(options.type)
    database = (
        options.database
        if options.database is not None and options.type is None
        else itype.database
    )
    context = Context(
        batch=target.location,
        batch_file=None,
        type=itype.name,
        database=database,
        globs=itype.globs,
        use_parent_folder=itype.use_parent_folder,
        platform=options.platform or HOST,
        configs=default_configs(project, options),
        matrix={},
        has_matrix=False,
    )
    found = find(
        target.location,
        database=database,
        globs=itype.globs,
        use_parent_folder=itype.use_parent_folder,
    )  # as QA-Board: with no globs, the folder is one input
    yield from runs_of(
        project, context, list(found), context.configs, itype.name, context.platform, options
    )


def config_error(batch: Batch, exc: InterpolationError, has_matrix: bool) -> str:
    """The message of an error in a batch's configurations: where, which field, what to do."""
    field_name = next((k for k in MATRIX_CONFIG_KEYS if k in _keys_of(batch)), "configs")
    if "matrix" in str(exc):
        hint = (
            "Add the variable to the batch's `matrix:`, or fix the expression."
            if has_matrix
            else "This batch has no `matrix:`; define one, or remove the expression."
        )
    else:
        hint = "Fix the expression: it may use `needs`/`depends` (and the aliases of `needs:`), `matrix`, `input_path`, `output_dir`, and `previous` in pipelines."
    where = yamlfile.where(batch.file, (batch.yaml_key, field_name))
    return f"{where}: batch {batch.name!r}: invalid `{field_name}`: {exc}. {hint}"


def _keys_of(batch: Batch) -> set[str]:
    data = yamlfile.load(batch.file).get(batch.yaml_key)  # only on the error path
    return set(data) if isinstance(data, dict) else set()


def runs_of(
    project: Project,
    context: Context,
    found: list[FoundInput | None],
    configs: tuple[Any, ...],
    type_name: str,
    platform: str,
    options: PlanOptions,
) -> Iterator[RunSpec]:
    """One RunSpec per input (None: a run without input), keyed by its identity."""
    # QA-Board: --tuning and forwarded args are extra parameters, merged into params last,
    # not configurations; they are part of the run's identity
    extra = options.tuning_of(context.batch)  # `qa optimize` tunes its targets only
    params = merge_params((*configs, extra) if extra else configs)
    described: list[Any] = [context.batch, str(context.batch_file), type_name, platform, configs]
    if context.matrix:  # a matrix key no configuration uses still makes a distinct run
        described.append(context.matrix)
    identity = json.dumps(
        [*described, extra] if extra else described, sort_keys=True, default=str
    ).encode()
    prefix = hashlib.blake2b(identity, digest_size=8)
    shared = RunSpec(  # what the runs share; each run is a copy with its input and key
        batch=context.batch,
        batch_file=context.batch_file,
        input_path=None,
        rel_input_path=None,
        database=context.database,
        type=type_name,
        configurations=configs,
        params=params,
        platform=platform,
        matrix=context.matrix,
        # the batch's folder of runs (parsed once); `Fingerprints.assign` completes it
        output_dir=Path(f"{project.storage}/runs/{slug(context.batch)}"),
        key=prefix.hexdigest(),
        extra_parameters=extra or None,
    )
    for item in found:
        if item is None:
            yield shared
            continue
        digest = prefix.copy()
        digest.update(f"\0{item.database}\0{item.rel}".encode())
        yield shared.evolve(
            input_path=item.path,
            rel_input_path=item.rel,
            database=item.database,
            key=digest.hexdigest(),
        )


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


def slug(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "_"


@functools.lru_cache(maxsize=1 << 16)  # the runs of one input share it (matrix points)
def rel_dir(rel: str) -> str:
    """The input's relative path as folders under the batch; `..` cannot climb out."""
    parts = [slug(p) if p not in (".", "..") else "_" for p in rel.split("/") if p]
    return "/".join(parts) or "_"
