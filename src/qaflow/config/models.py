"""The pydantic models of the user's files (qaboard.yaml, a batch, a batch file's defaults),
and the validations that turn a document into the plain data the rest of qaflow reads.

Imported only when a document must be validated: `config.validated` keeps each validation's
result between processes, so an unchanged project never imports pydantic. Every function
here is therefore a function of its arguments alone: the same document gives the same data,
warnings and error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qaflow.config import batch_errors, yamlfile
from qaflow.config.schema import Section, explain, known_keys, warn_unknown_keys
from qaflow.config.values import (
    MAX_RUNS,
    concurrency_value,
    flatten,
    kind_of,
    misspelt,
    not_a_configuration,
)
from qaflow.errors import BatchSpecError, ConfigError, QaflowWarning

# a batch's runner sections: known to the runners, so no warning
RUNNER_KEYS = {"lsf", "celery", "jenkins", "dask", "windows"}
Configs = list[Any] | dict[str, Any] | str | None  # a batch's `configs`, as pydantic checks it
Database = str | dict[str, str] | None  # a path, or `{linux: …, windows: …}`


# ---------------------------------------------------------------- the file, as written
PlatformPath = str | dict[str, str]
StrList = str | list[str]


class ProjectSection(Section):
    name: str | None = None
    entrypoint: str = "qa/main.py"
    deps: StrList | None = None  # the files whose content is the code version (default: git)
    url: str | None = None
    reference_branch: str | None = None
    reference_platform: str | None = None
    # QA-Board's keys for its web application: accepted, not used
    type: str | None = None
    remote_type: str | None = None
    avatar_url: str | None = None
    description: str | None = None


class InputTypeSection(Section):
    globs: StrList | None = None
    glob: StrList | None = None
    use_parent_folder: bool = False
    database: PlatformPath | None = None
    runners: dict[str, Any] | None = None  # QA-Board's: {RUNNER: job options of its runs}


class InputsSection(Section):
    database: PlatformPath | None = None
    globs: StrList | None = None
    glob: StrList | None = None
    use_parent_folder: bool = False
    types: dict[str, str | InputTypeSection] = Field(default_factory=dict)
    batches: StrList = Field(default_factory=lambda: ["qa/batches.yaml", "qa/batches/*.yaml"])
    configs: list[Any] | str | None = None
    configurations: list[Any] | str | None = None
    allow_duplicate_batches: bool = False
    groups: StrList | None = None  # QA-Board's older name of `batches`
    runners: dict[str, Any] | None = None  # QA-Board's, for every input type (see the types')

    @field_validator("configs", "configurations")
    @classmethod
    def _configurations(cls, value: list[Any] | str | None) -> list[Any] | str | None:
        """The default configurations of every batch are checked as a batch's own are."""
        for index, leaf in enumerate(flatten(value)):
            problem = not_a_configuration(leaf)
            if problem is not None:
                raise ValueError(f"item #{index + 1}: {problem}")
        return value


class OutputsSection(Section):
    metrics: str = "qa/metrics.yaml"
    visualizations: list[Any] | None = None
    detailed_views: list[Any] | None = None
    style: dict[str, Any] | None = None
    controls: list[Any] | None = None
    # QA-Board: the defaults of --action-on-existing and --action-on-pending
    action_on_existing: Literal["run", "postprocess", "sync", "skip", "assert-exists"] | None = None
    action_on_pending: Literal["wait", "sync", "skip", "run"] | None = None


class LocalRunnerSection(Section):
    concurrency: int | None = None  # None: QA_BATCH_CONCURRENCY, else one per CPU
    # QA-Board's default of --local-timeout, after QA_BATCH_TIMEOUT: seconds; 0: no limit
    timeout: float | None = Field(default=None, ge=0)

    @field_validator("concurrency")
    @classmethod
    def _one_or_more(cls, value: int | None) -> int | None:
        return value if value is None else concurrency_value(value)


class DaskClusterSection(Section):
    """Options for dask-jobqueue (cores, memory, queue, walltime, job_extra…): passed through."""

    open_keys: ClassVar[bool] = True
    type: Literal["local", "slurm", "lsf", "pbs", "sge"] = "local"


class DaskRunnerSection(Section):
    scheduler_address: str | None = None
    cluster: DaskClusterSection | None = None
    concurrency: int | None = None  # QA-Board's default of --dask-concurrency; 0: no limit


class LsfRunnerSection(Section):
    """QA-Board's LSF settings: the worker jobs of an LSF cluster (see qaflow.config.lsf)."""

    queue: str | None = None
    project: str | None = None
    max_threads: int | None = None  # job slots (bsub -n); 0: unset
    max_memory: int | str | None = None  # MB; 0: unset
    memory: int | str | None = None  # QA-Board's other name of max_memory
    resources: str | None = None  # bsub -R
    priority: int | None = None  # bsub -sp
    options: str | None = None  # other bsub flags, as one string
    concurrency: int | None = None  # jobs at once; 0: unlimited
    concurrency_strategy: str | None = None  # QA-Board's job arrays: no use here


class RunnersSection(Section):
    default: str = "local"
    local: LocalRunnerSection = Field(default_factory=LocalRunnerSection)
    dask: DaskRunnerSection = Field(default_factory=DaskRunnerSection)
    lsf: LsfRunnerSection = Field(default_factory=LsfRunnerSection)


class ConfigFile(Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    inputs: InputsSection = Field(default_factory=InputsSection)
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    # where --share and CI runs go: a path, {linux, windows}, or {outputs, artifacts} of those
    storage: PlatformPath | dict[str, PlatformPath] = "output"
    database_url: str | None = None
    runners: RunnersSection = Field(default_factory=RunnersSection)
    # QA-Board's keys: `qa save-artifacts`, bit-accuracy checks, subprojects, its web app
    artifacts: dict[str, Any] | None = None
    bit_accuracy: dict[str, Any] | None = None
    integrations: list[Any] | None = None
    root: bool = False
    include: str | None = None
    ci_root: PlatformPath | None = None  # QA-Board's older name of `storage`
    lsf: dict[str, Any] | None = None  # QA-Board's older place of `runners.lsf`
    max_runs: int = Field(default=MAX_RUNS, ge=1)  # planning refuses plans of more runs


# ---------------------------------------------------------------- batch files
class BatchSection(BaseModel):
    """One batch as written in YAML."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    inputs: list[str | list[Any] | dict[str, Any] | None] | dict[str, Any] | str | None = None
    tests: list[str | list[Any] | dict[str, Any] | None] | dict[str, Any] | str | None = None
    configs: list[Any] | dict[str, Any] | str | None = None
    configurations: list[Any] | dict[str, Any] | str | None = None
    configuration: list[Any] | dict[str, Any] | str | None = None
    database: str | dict[str, str] | None = None
    type: str | None = None
    platform: str | None = None
    globs: str | list[str] | None = None
    glob: str | list[str] | None = None
    use_parent_folder: bool | None = None
    matrix: dict[str, list[Any]] | list[dict[str, list[Any]]] | None = None  # list: grids
    needs: str | list[str] | dict[str, str | dict[str, Any]] | None = None
    deps: str | list[str] | None = None
    resources: dict[str, int | float | str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0)
    local: dict[str, Any] | None = None
    only: Any = None
    exclude: Any = None

    @field_validator("matrix")
    @classmethod
    def _matrix_not_empty(
        cls, value: dict[str, list[Any]] | list[dict[str, list[Any]]] | None
    ) -> dict[str, list[Any]] | list[dict[str, list[Any]]] | None:
        for grid in value if isinstance(value, list) else [value or {}]:
            for key, values in grid.items():
                if not values:
                    raise ValueError(
                        f"matrix.{key} is an empty list, so the batch would have no runs"
                    )
        return value


class FileDefaults(BaseModel):
    """The top-level keys of a batch file that are defaults of each of its batches."""

    model_config = ConfigDict(extra="ignore", strict=True)

    database: Database = None
    platform: str | None = None
    configs: Configs = None
    configurations: Configs = None
    configuration: Configs = None


_DEFAULT_HINTS = {
    "database": "Give it as a path, or as `{linux: /path, windows: 'D:/path'}`.",
    "platform": "Give it as one name, e.g. `platform: linux`.",
}


# ---------------------------------------------------------------- validations
def project_settings(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """qaboard.yaml's `data` (merged over its parent projects') validated, as the plain
    settings `Project` is built from; unknown keys warned about, a bad value a ConfigError."""
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            explain(
                path,
                exc,
                "Fix that key in qaboard.yaml; see the README's configuration reference for "
                "the accepted forms.",
            )
        ) from exc
    warn_unknown_keys(path, config)
    inputs = config.inputs
    return {
        "database": inputs.database,
        "globs": inputs.globs if inputs.globs is not None else inputs.glob,
        "use_parent_folder": inputs.use_parent_folder,
        "types": {
            name: spec
            if isinstance(spec, str)
            else {
                "globs": spec.globs if spec.globs is not None else spec.glob,
                "use_parent_folder": spec.use_parent_folder,
                "database": spec.database,
                "runners": type_runners(path, name, spec.runners),
            }
            for name, spec in inputs.types.items()
        },
        "runners": type_runners(path, "default", inputs.runners),
        "batches": inputs.batches if inputs.groups is None else inputs.groups,
        "configs": inputs.configs if inputs.configs is not None else inputs.configurations,
        "allow_duplicate_batches": inputs.allow_duplicate_batches,
        "name": config.project.name,
        "entrypoint": config.project.entrypoint,
        "deps": config.project.deps,
        "metrics": config.outputs.metrics,
        # QA-Board's older `ci_root` counts only when `storage` is not written
        "storage": config.ci_root
        if config.ci_root is not None and "storage" not in config.model_fields_set
        else config.storage,
        "database_url": config.database_url,
        "runner": config.runners.default,
        "local_concurrency": config.runners.local.concurrency,
        "local_timeout": config.runners.local.timeout,
        "dask": config.runners.dask.model_dump(exclude_none=True),
        "lsf": config.runners.lsf.model_dump(exclude_none=True),
        "max_runs": config.max_runs,
    }


def type_runners(path: Path, name: str, runners: dict[str, Any] | None) -> dict[str, Any] | None:
    """QA-Board's `runners:` of an input type (`inputs.runners` for every type): the job
    options of its runs per runner, `{lsf: {queue: long}}`. Its `default` (a runner for the
    type's runs) is warned about and dropped: an execution runs on one runner."""
    if runners is None:
        return None
    keys = ("inputs", "runners") if name == "default" else ("inputs", "types", name, "runners")
    out = {}
    for runner, options in runners.items():
        if runner == "default":
            warnings.warn(
                f"{yamlfile.where(path, (*keys, 'default'))}: `{'.'.join(keys)}.default` is "
                "ignored: qaflow runs all the runs of an execution on one runner (--runner, "
                "else runners.default).",
                QaflowWarning,
                stacklevel=2,
            )
        elif isinstance(options, dict):
            out[str(runner)] = options
        else:
            raise ConfigError(
                f"{yamlfile.where(path, (*keys, runner))}: invalid value for "
                f"`{'.'.join(keys)}.{runner}`: expected a mapping of job options for the "
                f"{runner} runner, e.g. `{runner}: {{queue: long}}` (got {kind_of(options)})."
            )
    return out


def batch_settings(
    file: Path, key: str, name: str, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Batch `name` (at top-level `key` of `file`) validated: its declared fields, and the keys
    it has that no field declares (runner sections, QA-Board's keys: warned about, except a
    near miss of a field, which is an error)."""
    try:
        section = BatchSection.model_validate(data)
    except ValidationError as exc:
        raise BatchSpecError(batch_errors.explain(file, key, name, exc)) from exc
    extras = dict(section.model_extra or {})
    for extra in extras:
        typo = misspelt(str(extra), known_keys(BatchSection))
        if typo is not None:
            raise BatchSpecError(
                f"{yamlfile.where_key(file, (key, str(extra)))}: batch {name!r}: unknown key "
                f"`{extra}`: did you mean `{typo}`? Rename it (a misspelt key would be ignored, "
                "and its setting silently lost)."
            )
        if extra == "runner":  # QA-Board's runner of a batch
            warnings.warn(
                f"{file}: batch {name!r}: `runner` is ignored: qaflow runs all the runs of an "
                "execution on one runner (--runner, else runners.default).",
                QaflowWarning,
                stacklevel=2,
            )
        elif extra not in RUNNER_KEYS:
            warnings.warn(
                f"{file}: batch {name!r}: unknown key `{extra}` is ignored.",
                QaflowWarning,
                stacklevel=2,
            )
    return {field: getattr(section, field) for field in BatchSection.model_fields}, extras


def check_file_defaults(file: Path, defaults: dict[str, Any], batch: str) -> None:
    """The types of a batch file's top-level defaults (a BatchSpecError naming batch `batch`,
    the one being validated, for the first that is wrong)."""
    try:
        FileDefaults.model_validate(defaults)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        expected = error["msg"][:1].lower() + error["msg"][1:]
        hint = _DEFAULT_HINTS.get(
            key, f"Give it as a list of configurations, e.g. `{key}: [base]`."
        )
        raise BatchSpecError(
            f"{yamlfile.where(file, (key,))}: invalid file-level `{key}` (the default of every "
            f"batch of this file, batch {batch!r} included): {expected} (got "
            f"{kind_of(defaults[key])}). {hint}"
        ) from None
