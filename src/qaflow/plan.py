"""Planning: from batch names to the exact list of runs, with no execution and no I/O but reads.

Policy (QA-Board's, so existing batch files plan identically):
- configurations: the batch's `configs` if it has any, else the defaults (`qa --config`, else
  `inputs.configs`); nested lists are flattened; per-input configurations are appended.
- a matrix is the cartesian product of its lists, keys in sorted order, the last key varying
  fastest; `matrix.configs` is appended to the batch's configs (or replaces the defaults when
  the batch has none); `matrix.platform` sets the platform; `${matrix.x}` is interpolated
  into the configurations.
- database: the batch's `database`, else its type's, else `qa --database`, else the project's.

Invariants: the order of runs is stable (batches in the order asked, then matrix points,
inputs in the order listed, paths sorted within a folder or pattern); a run's output
directory is a pure function of its identity (batch, batch file, input, platform, input
type, configurations), so two different runs never share one and a re-plan finds the same.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaflow import interpolation, yamlfile
from qaflow.batches import Batch, Catalog, FolderTarget, InputEntry
from qaflow.errors import BatchSpecError, InterpolationError
from qaflow.inputs import FoundInput, find_inputs
from qaflow.project import HOST, Project, flatten, resolve_path

MATRIX_CONFIG_KEYS = ("configs", "configurations", "configuration")


@dataclass(frozen=True)
class PlanOptions:
    """What the command line adds to the batch files."""

    configs: tuple[Any, ...] | None = None  # --config: the default configurations
    platform: str | None = None
    database: Path | None = None
    type: str | None = None
    label: str = "default"
    extra_parameters: dict[str, Any] = field(default_factory=dict)  # --tuning


@dataclass(frozen=True)
class RunSpec:
    """One planned run: what to run it on, with what, and where its outputs go."""

    batch: str
    batch_file: Path | None
    input_path: Path | None
    rel_input_path: str | None
    database: Path
    type: str
    configurations: tuple[Any, ...]
    params: dict[str, Any]
    platform: str
    matrix: dict[str, Any]
    output_dir: Path
    key: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by `qa batch --list`."""
        return {
            "batch": self.batch,
            "batch_file": None if self.batch_file is None else str(self.batch_file),
            "input_path": None if self.input_path is None else str(self.input_path),
            "rel_input_path": self.rel_input_path,
            "database": str(self.database),
            "type": self.type,
            "configurations": list(self.configurations),
            "configs": list(self.configurations),
            "params": self.params,
            "platform": self.platform,
            "matrix": self.matrix,
            "output_dir": str(self.output_dir),
            "id": self.key,
        }


@dataclass(frozen=True)
class BatchSettings:
    """How the runs of one batch execute."""

    timeout: float | None = None  # seconds
    retries: int = 0
    cpus: int = 1
    concurrency: int | None = None  # `local: {concurrency: N}`: at most N of its runs at once


@dataclass(frozen=True)
class Plan:
    """Every run to execute, in a stable order, and the batches they come from."""

    runs: list[RunSpec]
    batches: list[str]
    settings: dict[str, BatchSettings] = field(default_factory=dict)

    def to_json(self) -> str:
        """A JSON array, one run object per line (fast to write, easy to grep)."""
        if not self.runs:
            return "[]"
        dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode
        return "[\n" + ",\n".join(dumps(run.to_dict()) for run in self.runs) + "\n]"


def plan(
    project: Project,
    targets: list[str],
    options: PlanOptions | None = None,
    *,
    catalog: Catalog | None = None,
) -> Plan:
    """Plan the runs of the batches (or aliases, wildcards, folders) named by `targets`."""
    options = options or PlanOptions()
    catalog = catalog or Catalog.load(project)
    if not targets:
        raise BatchSpecError(
            f"No batch given. Name one of: {', '.join(catalog.names[:20]) or '(no batch is defined)'}."
        )
    runs: list[RunSpec] = []
    names: list[str] = []
    settings: dict[str, BatchSettings] = {}
    seen: set[str] = set()
    found = _InputCache()
    for target in catalog.resolve(targets):
        if isinstance(target, FolderTarget):
            planned = _plan_folder(project, target, options, found)
            names.append(target.location)
            settings[target.location] = BatchSettings()
        else:
            batch = catalog.batch(target)
            planned = _plan_batch(project, batch, options, found)
            names.append(target)
            settings[target] = _settings(batch)
        for run in planned:
            if run.key not in seen:  # the same input and configs listed twice is one run
                seen.add(run.key)
                runs.append(run)
    return Plan(runs=runs, batches=names, settings=settings)


def _settings(batch: Batch) -> BatchSettings:
    cpus = batch.resources.get("cpus", 1)
    return BatchSettings(
        timeout=batch.timeout,
        retries=batch.retries,
        cpus=max(1, int(cpus)) if isinstance(cpus, int | float) else 1,
        concurrency=batch.local_concurrency,
    )


# ---------------------------------------------------------------- one batch
@dataclass(frozen=True)
class _Context:
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


class _InputCache:
    """Input discovery memoised for one plan: matrix points and batches share folder walks."""

    def __init__(self) -> None:
        self._found: dict[tuple[Any, ...], list[FoundInput]] = {}

    def __call__(
        self,
        location: str,
        *,
        database: Path,
        globs: tuple[str, ...],
        use_parent_folder: bool,
        recurse_without_globs: bool = False,
    ) -> list[FoundInput]:
        key = (location, database, globs, use_parent_folder, recurse_without_globs)
        if key not in self._found:
            self._found[key] = find_inputs(
                location,
                database=database,
                globs=globs,
                use_parent_folder=use_parent_folder,
                recurse_without_globs=recurse_without_globs,
            )
        return self._found[key]


def _plan_batch(
    project: Project, batch: Batch, options: PlanOptions, find: _InputCache
) -> Iterator[RunSpec]:
    base = _batch_context(project, batch, options)
    entries = batch.inputs if batch.inputs is not None else (InputEntry("*"),)
    for point in _matrix_points(batch.matrix):
        context = _apply_point(base, batch, point)
        for entry in entries:
            yield from _plan_entry(project, batch, context, entry, options, find)


def _batch_context(project: Project, batch: Batch, options: PlanOptions) -> _Context:
    type_name = batch.type or options.type or project.default_type
    itype = project.input_type(type_name)
    if batch.database is not None:
        database = batch.database
    elif batch.type is None and options.database is not None:
        database = options.database
    else:
        database = itype.database
    configs = batch.configs if batch.configs is not None else _default_configs(project, options)
    return _Context(
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


def _default_configs(project: Project, options: PlanOptions) -> tuple[Any, ...]:
    return options.configs if options.configs is not None else project.default_configs


def _matrix_points(matrix: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product, keys sorted and the last varying fastest (as sklearn's ParameterGrid)."""
    keys = sorted(matrix)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(matrix[k] for k in keys))
    ]


def _apply_point(base: _Context, batch: Batch, point: dict[str, Any]) -> _Context:
    if not batch.matrix:
        return base
    configs = base.configs
    matrix_configs = next((point[k] for k in MATRIX_CONFIG_KEYS if k in point), None)
    if matrix_configs is not None:
        extra = tuple(flatten(matrix_configs))
        configs = (*configs, *extra) if batch.configs is not None else extra
    platform = str(point["platform"]) if "platform" in point else base.platform
    return _Context(**{**base.__dict__, "configs": configs, "platform": platform, "matrix": point})


def _plan_entry(
    project: Project,
    batch: Batch,
    context: _Context,
    entry: InputEntry,
    options: PlanOptions,
    find: _InputCache,
) -> Iterator[RunSpec]:
    settings = entry.settings
    database = context.database
    if "database" in settings:
        database = resolve_path(project.root, settings["database"])
    type_name = str(settings.get("type", context.type))
    itype = project.input_type(type_name) if "type" in settings else None
    globs = _settings_globs(settings) or (itype.globs if itype else context.globs)
    use_parent = bool(
        settings.get(
            "use_parent_folder", itype.use_parent_folder if itype else context.use_parent_folder
        )
    )
    configs = _interpolate_configs((*context.configs, *entry.configs), context, batch)
    where = f"{batch.file}: batch {batch.name!r}"
    try:
        found = find(entry.location, database=database, globs=globs, use_parent_folder=use_parent)
    except BatchSpecError as exc:
        raise BatchSpecError(f"{where}: {exc}") from None
    platform = str(settings.get("platform", context.platform))
    yield from _runs(project, context, found, configs, type_name, platform, options)


def _settings_globs(settings: dict[str, Any]) -> tuple[str, ...]:
    value = settings.get("globs", settings.get("glob"))
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _plan_folder(
    project: Project, target: FolderTarget, options: PlanOptions, find: _InputCache
) -> Iterator[RunSpec]:
    itype = project.input_type(options.type)
    database = (
        options.database
        if options.database is not None and options.type is None
        else itype.database
    )
    context = _Context(
        batch=target.location,
        batch_file=None,
        type=itype.name,
        database=database,
        globs=itype.globs,
        use_parent_folder=itype.use_parent_folder,
        platform=options.platform or HOST,
        configs=_default_configs(project, options),
        matrix={},
        has_matrix=False,
    )
    found = find(
        target.location,
        database=database,
        globs=itype.globs,
        use_parent_folder=itype.use_parent_folder,
        recurse_without_globs=True,
    )
    yield from _runs(
        project, context, found, context.configs, itype.name, context.platform, options
    )


def _interpolate_configs(
    configs: tuple[Any, ...], context: _Context, batch: Batch
) -> tuple[Any, ...]:
    """`${matrix.…}` now; names only known when a run starts (needs…) are left for later."""
    if not interpolation.has_templates(list(configs)):
        return tuple(flatten(list(configs)))
    names = {"matrix": context.matrix} if context.has_matrix else {}
    try:
        value = interpolation.interpolate(list(configs), names, roots=frozenset({"matrix"}))
    except InterpolationError as exc:
        field_name = next(
            (k for k in ("configs", "configurations", "configuration") if k in _keys_of(batch)),
            "configs",
        )
        hint = (
            "Add the variable to the batch's `matrix:`, or fix the expression."
            if context.has_matrix
            else "This batch has no `matrix:`; define one, or remove the expression."
        )
        where = yamlfile.where(batch.file, (batch.yaml_key, field_name))
        raise InterpolationError(
            f"{where}: batch {batch.name!r}: invalid `{field_name}`: {exc}. {hint}"
        ) from None
    return tuple(flatten(value))


def _keys_of(batch: Batch) -> set[str]:
    data = yamlfile.load(batch.file).get(batch.yaml_key)  # only on the error path
    return set(data) if isinstance(data, dict) else set()


# ---------------------------------------------------------------- runs of one entry
def _runs(
    project: Project,
    context: _Context,
    found: list[FoundInput],
    configs: tuple[Any, ...],
    type_name: str,
    platform: str,
    options: PlanOptions,
) -> Iterator[RunSpec]:
    if options.extra_parameters:
        configs = (*configs, options.extra_parameters)
    params = merge_params(configs)
    identity = json.dumps(
        [context.batch, str(context.batch_file), type_name, platform, configs],
        sort_keys=True,
        default=str,
    ).encode()
    prefix = hashlib.blake2b(identity, digest_size=8)
    runs_dir = f"{project.storage}/runs/{_slug(context.batch)}"
    for item in found:
        rel = item.rel
        digest = prefix.copy()
        digest.update(f"\0{item.database}\0{rel}".encode())
        key = digest.hexdigest()
        yield RunSpec(
            batch=context.batch,
            batch_file=context.batch_file,
            input_path=item.path,
            rel_input_path=rel,
            database=item.database,
            type=type_name,
            configurations=configs,
            params=params,
            platform=platform,
            matrix=context.matrix,
            output_dir=Path(f"{runs_dir}/{_rel_dir(rel)}/{key[:12]}"),
            key=key,
        )


def merge_params(configs: tuple[Any, ...]) -> dict[str, Any]:
    """QA-Board's `context.params`: the deep merge of the dict configurations, later ones win."""
    params: dict[str, Any] = {}
    for config in configs:
        if isinstance(config, dict):
            _deep_merge(params, config)
    return params


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


def _slug(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "_"


def _rel_dir(rel: str) -> str:
    """The input's relative path as folders under the batch; `..` cannot climb out."""
    parts = [_slug(p) if p not in (".", "..") else "_" for p in rel.split("/") if p]
    return "/".join(parts) or "_"


def plan_single(project: Project, location: str, options: PlanOptions | None = None) -> Plan:
    """The one run of `qa run -i LOCATION`: that exact path (no glob expansion), default configs."""
    options = options or PlanOptions()
    itype = project.input_type(options.type)
    database = options.database if options.database is not None else itype.database
    path = Path(location) if Path(location).is_absolute() else database / location
    if not path.exists():
        raise BatchSpecError(
            f"Input {location!r} does not exist: there is no {str(path)!r}. Give a path relative to the database {str(database)!r}, or an absolute path."
        )
    if not path.is_relative_to(database):
        database = Path(path.anchor)
    context = _Context(
        batch=SINGLE_RUN_BATCH,
        batch_file=None,
        type=itype.name,
        database=database,
        globs=(),
        use_parent_folder=False,
        platform=options.platform or HOST,
        configs=_default_configs(project, options),
        matrix={},
        has_matrix=False,
    )
    found = [FoundInput.under(path, database)]
    runs = list(
        _runs(project, context, found, context.configs, itype.name, context.platform, options)
    )
    return Plan(runs=runs, batches=[SINGLE_RUN_BATCH], settings={SINGLE_RUN_BATCH: BatchSettings()})


SINGLE_RUN_BATCH = "@run"
