"""The project: find `qaboard.yaml`, validate every key of it, expose typed settings.

Validation happens once, at the YAML boundary, with pydantic models that mirror the file.
What the rest of qaflow sees is the frozen `Project` dataclass, with paths resolved:
relative paths in qaboard.yaml are relative to the project root, and `{linux: …,
windows: …}` values are resolved for the host we run on. Unknown keys are not errors (a
QA-Board project may carry keys qaflow has no use for): each one is a warning naming it.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator

from qaflow.config import yamlfile
from qaflow.config.schema import Section, explain, kind_of, warn_unknown_keys
from qaflow.errors import ConfigError

CONFIG_FILENAME = "qaboard.yaml"
MAX_RUNS = 1_000_000  # default of `max_runs` (QA_MAX_RUNS): the most runs one plan may have
HOST = {"win32": "windows", "darwin": "darwin"}.get(sys.platform, "linux")


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


class InputTypeSection(Section):
    globs: StrList | None = None
    glob: StrList | None = None
    use_parent_folder: bool = False
    database: PlatformPath | None = None


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


class OutputsSection(Section):
    metrics: str = "qa/metrics.yaml"
    visualizations: list[Any] | None = None
    detailed_views: list[Any] | None = None


class LocalRunnerSection(Section):
    concurrency: int | None = None  # None: QA_BATCH_CONCURRENCY, else one per CPU

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


class RunnersSection(Section):
    default: str = "local"
    local: LocalRunnerSection = Field(default_factory=LocalRunnerSection)
    dask: DaskRunnerSection = Field(default_factory=DaskRunnerSection)


class ConfigFile(Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    inputs: InputsSection = Field(default_factory=InputsSection)
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    storage: PlatformPath = "output"
    database_url: str | None = None
    runners: RunnersSection = Field(default_factory=RunnersSection)
    max_runs: int = Field(default=MAX_RUNS, ge=1)  # planning refuses plans of more runs


# ---------------------------------------------------------------- what qaflow uses
@dataclass(frozen=True)
class InputType:
    """How folders expand into inputs for one input type."""

    name: str
    globs: tuple[str, ...]
    use_parent_folder: bool
    database: Path


@dataclass(frozen=True)
class Project:
    """A validated qaboard.yaml, with paths resolved against the project root."""

    root: Path
    config_path: Path
    name: str
    entrypoint: Path
    database: Path
    default_type: str
    types: dict[str, InputType]
    batch_patterns: tuple[str, ...]
    default_configs: tuple[Any, ...]
    allow_duplicate_batches: bool
    metrics_path: Path
    storage: Path
    database_url: str | None
    runner: str
    local_concurrency: int | None
    dask: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    max_runs: int = MAX_RUNS

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """Load the project whose qaboard.yaml is in `start` or the nearest parent folder."""
        return cls.load(find_root(start or Path.cwd()))

    @classmethod
    def load(cls, root: Path) -> Project:
        """Load and validate `root/qaboard.yaml`."""
        root = root.resolve()
        path = root / CONFIG_FILENAME
        if not path.is_file():
            raise ConfigError(
                f"No {CONFIG_FILENAME} in {str(root)!r}. Run `qa init` there to create a project."
            )
        data = yamlfile.load(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping of settings at the top level, got {kind_of(data)}."
            )
        try:
            config = ConfigFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                explain(
                    path,
                    exc,
                    f"Fix that key in {CONFIG_FILENAME}; see the README's configuration "
                    "reference for the accepted forms.",
                )
            ) from exc
        warn_unknown_keys(path, config)
        return cls._from_config(root, path, config)

    @classmethod
    def _from_config(cls, root: Path, path: Path, config: ConfigFile) -> Project:
        inputs = config.inputs
        database = resolve_path(root, inputs.database) if inputs.database is not None else root
        base_type = InputType(
            name="default",
            globs=_as_tuple(inputs.globs if inputs.globs is not None else inputs.glob),
            use_parent_folder=inputs.use_parent_folder,
            database=database,
        )
        default_type = "default"
        types = {"default": base_type}
        for name, spec in inputs.types.items():
            if isinstance(spec, str):
                if name != "default":
                    raise ConfigError(
                        f"{yamlfile.where(path, ('inputs', 'types', name))}: inputs.types.{name} must be "
                        "a mapping of input settings (globs, use_parent_folder, database); only "
                        "`default` may name another type."
                    )
                default_type = spec
                continue
            types[name] = InputType(
                name=name,
                globs=_as_tuple(spec.globs if spec.globs is not None else spec.glob)
                or base_type.globs,
                use_parent_folder=spec.use_parent_folder,
                database=resolve_path(root, spec.database)
                if spec.database is not None
                else database,
            )
        if default_type not in types:
            raise ConfigError(
                f"{yamlfile.where(path, ('inputs', 'types', 'default'))}: inputs.types.default names "
                f"the input type {default_type!r}, which inputs.types does not define"
                f"{did_you_mean(default_type, types)} Define it (e.g. `{default_type}: {{globs: '*.jpg'}}` "
                "under inputs.types) or name one of the types defined there."
            )
        configs = inputs.configs if inputs.configs is not None else inputs.configurations
        return cls(
            root=root,
            config_path=path,
            name=config.project.name or root.name,
            entrypoint=root / config.project.entrypoint,
            database=database,
            default_type=default_type,
            types=types,
            batch_patterns=_as_tuple(inputs.batches),
            default_configs=tuple(flatten([] if configs is None else configs)),
            allow_duplicate_batches=inputs.allow_duplicate_batches,
            metrics_path=root / config.outputs.metrics,
            storage=resolve_path(root, config.storage),
            database_url=os.environ.get("QA_DATABASE_URL") or config.database_url,
            runner=config.runners.default,
            local_concurrency=config.runners.local.concurrency,
            dask=config.runners.dask.model_dump(exclude_none=True),
            deps=_as_tuple(config.project.deps),
            max_runs=_max_runs(config.max_runs),
        )

    def batch_files(self) -> list[Path]:
        """The batch files named by `inputs.batches`, globs expanded, in the order given."""
        files: list[Path] = []
        for pattern in self.batch_patterns:
            if any(c in pattern for c in "*?["):
                base = Path(pattern).anchor if Path(pattern).is_absolute() else self.root
                rel = Path(pattern).relative_to(base) if Path(pattern).is_absolute() else pattern
                matches = sorted(Path(base).glob(str(rel)))
            else:
                matches = [self.root / pattern]
            files.extend(m for m in matches if m.is_file() and m not in files)
        return files

    def input_type(self, name: str | None) -> InputType:
        """The settings of input type `name` (the project's default type when None)."""
        name = name or self.default_type
        if name in self.types:
            return self.types[name]
        return InputType(
            name,
            self.types["default"].globs,
            self.types["default"].use_parent_folder,
            self.database,
        )


def concurrency_value(value: int) -> int:
    """A number of runs at once: -1 (one per CPU) or a positive number; else a ValueError."""
    if value == -1 or value >= 1:
        return value
    raise ValueError(
        f"expected -1 (one run per CPU) or a number of runs of at least 1, got {value}"
    )


def did_you_mean(name: str, known: Any) -> str:
    """'. Did you mean 'x'?' for the closest of `known`, else '.' (for messages)."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
    return f". Did you mean {close[0]!r}?" if close else "."


def _max_runs(configured: int) -> int:
    value = os.environ.get("QA_MAX_RUNS")
    if not value:
        return configured
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"QA_MAX_RUNS={value!r} is not a number of runs: set it to 1 or more.")
    return number


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding a qaboard.yaml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILENAME).is_file():
            return folder
    raise ConfigError(
        f"No {CONFIG_FILENAME} found in {str(start)!r} or any parent folder. Run qa from inside a "
        f"project, point at one with `qa -C DIR`, or create one with `qa init`."
    )


def resolve_path(root: Path, value: str | dict[str, str] | Path) -> Path:
    """A path from a config value: `{linux: …, windows: …}` picks the host's; relative is under root."""
    if isinstance(value, dict):
        chosen = value.get(HOST) or value.get("linux") or next(iter(value.values()), "")
        value = chosen
    path = Path(os.path.expandvars(str(value))).expanduser()
    return path if path.is_absolute() else root / path


def flatten(value: Any) -> list[Any]:
    """Flatten nested lists, as QA-Board does for configurations (dicts and strings are leaves)."""
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in flatten(item)]
    return [value]


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
