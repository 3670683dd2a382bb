"""The project: find `qaboard.yaml`, validate every key of it, expose typed settings.

Validation happens once, at the YAML boundary, with pydantic models that mirror the file
(`config.models`; an unchanged file's validation is kept between processes by
`config.validated`). What the rest of qaflow sees is the frozen `Project` dataclass, with paths resolved:
relative paths in qaboard.yaml are relative to the project root, and `{linux: …,
windows: …}` values are resolved for the host we run on. Unknown keys are not errors (a
QA-Board project may carry keys qaflow has no use for): each one is a warning naming it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from qaflow.config import layers, validated, yamlfile
from qaflow.config.git import is_ci
from qaflow.config.values import MAX_RUNS, flatten, kind_of
from qaflow.errors import ConfigError

CONFIG_FILENAME = "qaboard.yaml"
BUILTIN_TYPES = ("script", "pipeline")  # batch types qaflow runs itself, not input types
HOST = {"win32": "windows", "darwin": "darwin"}.get(sys.platform, "linux")


# ---------------------------------------------------------------- what qaflow uses
@dataclass(frozen=True)
class InputType:
    """How folders expand into inputs for one input type."""

    name: str
    globs: tuple[str, ...]
    use_parent_folder: bool
    database: Path
    # QA-Board's `runners:` of the type: its runs' job options per runner (`{lsf: {…}}`)
    runners: dict[str, Any] = field(default_factory=dict)


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
    local_timeout: float | None = None  # runners.local.timeout: seconds, 0: no limit
    dask: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    lsf: dict[str, Any] = field(default_factory=dict)  # runners.lsf, as written
    # QA-Board parity: where --share/CI runs go (`storage` is where this execution's go), the
    # subproject's folder under the root project, and the merged settings as written
    shared_storage: Path | None = None
    artifacts_storage: Path | None = None  # where `qa save-artifacts` copies a commit's files
    subproject: Path = Path()
    settings: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    max_runs: int = MAX_RUNS

    @classmethod
    def discover(cls, start: Path | None = None, *, share: bool = False) -> Project:
        """Load the project whose qaboard.yaml is in `start` or the nearest parent folder."""
        return cls.load(find_root(start or Path.cwd()), share=share)

    @classmethod
    def load(cls, root: Path, *, share: bool = False) -> Project:
        """Load and validate `root/qaboard.yaml` (merged over the qaboard.yaml of the projects
        it is a subproject of, as QA-Board). `share`: runs go to `storage:` (--share, or CI)."""
        root = root.resolve()
        path = root / CONFIG_FILENAME
        if not path.is_file():
            raise ConfigError(
                f"No {CONFIG_FILENAME} in {str(root)!r}. Run `qa init` there to create a project."
            )
        files = layers.config_files(root)
        data = yamlfile.load(path, root=root)
        if len(files) > 1 or (isinstance(data, dict) and data.get("include")):
            data = layers.merged(files)
            root = files[0].parent
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping of settings at the top level, got {kind_of(data)}."
            )
        settings = validated.cached(
            "qaboard.yaml", str(path), data, lambda: _validate(path, data), root=root
        )
        subproject = path.parent.relative_to(root)
        return cls._from_settings(root, path, settings, data, subproject, share or is_ci())

    @classmethod
    def _from_settings(
        cls,
        root: Path,
        path: Path,
        settings: dict[str, Any],
        data: dict[str, Any],
        subproject: Path,
        share: bool,
    ) -> Project:
        """The project from qaboard.yaml's validated settings (`config.models.project_settings`)."""
        database = (
            resolve_path(root, settings["database"]) if settings["database"] is not None else root
        )
        base_type = InputType(
            name="default",
            globs=_as_tuple(settings["globs"]),
            use_parent_folder=settings["use_parent_folder"],
            database=database,
            runners=settings["runners"] or {},
        )
        default_type = "default"
        types = {"default": base_type}
        for name, spec in settings["types"].items():
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
                globs=_as_tuple(spec["globs"]) or base_type.globs,
                use_parent_folder=spec["use_parent_folder"],
                database=resolve_path(root, spec["database"])
                if spec["database"] is not None
                else database,
                runners=base_type.runners if spec["runners"] is None else spec["runners"],
            )
        if default_type not in types:
            raise ConfigError(
                f"{yamlfile.where(path, ('inputs', 'types', 'default'))}: inputs.types.default names "
                f"the input type {default_type!r}, which inputs.types does not define"
                f"{did_you_mean(default_type, types)} Define it (e.g. `{default_type}: {{globs: '*.jpg'}}` "
                "under inputs.types) or name one of the types defined there."
            )
        configs = settings["configs"]
        name = str(PurePosixPath(settings["name"] or root.name, subproject.as_posix()))
        shared = shared_storage(root, settings["storage"], name, subproject)
        return cls(
            root=root,
            config_path=path,
            name=name,
            entrypoint=root / settings["entrypoint"],
            database=database,
            default_type=default_type,
            types=types,
            batch_patterns=_as_tuple(settings["batches"]),
            default_configs=tuple(flatten([] if configs is None else configs)),
            allow_duplicate_batches=settings["allow_duplicate_batches"],
            metrics_path=root / settings["metrics"],
            storage=shared if share else root / "output",
            database_url=os.environ.get("QA_DATABASE_URL") or settings["database_url"],
            runner=settings["runner"],
            local_concurrency=settings["local_concurrency"],
            local_timeout=settings["local_timeout"],
            dask=settings["dask"],
            deps=_as_tuple(settings["deps"]),
            lsf=settings["lsf"],
            shared_storage=shared,
            artifacts_storage=shared_storage(
                root, settings["storage"], name, subproject, "artifacts"
            ),
            subproject=subproject,
            settings=data,
            max_runs=_max_runs(settings["max_runs"]),
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

    def batch_environment(self) -> dict[str, str]:
        """What QA-Board's `qa batch` sets in the environment of its planning and its runs:
        QA_BATCH=true and QA_BATCHES_FILES, a JSON list of the batch files (absolute here)."""
        files = [str(path) for path in self.batch_files()]
        return {"QA_BATCH": "true", "QA_BATCHES_FILES": json.dumps(files)}

    def input_type(self, name: str | None) -> InputType:
        """The settings of input type `name` (the project's default type when None)."""
        name = name or self.default_type
        if name in self.types:
            return self.types[name]
        if name not in BUILTIN_TYPES:  # as QA-Board: a type must be declared
            declared = ", ".join(t for t in self.types if t != "default") or "none"
            raise ConfigError(
                f"Unknown input type {name!r}: it is not defined in {self.config_path} (inputs.types declares: {declared}). Declare it under `inputs.types`, or fix the batch's `type:` (or --type)."
            )
        return InputType(
            name,
            self.types["default"].globs,
            self.types["default"].use_parent_folder,
            self.database,
            self.types["default"].runners,
        )


def shared_storage(
    root: Path, storage: Any, name: str, subproject: Path, entry: str = "outputs"
) -> Path:
    """Where shared runs go: QA_STORAGE, else `storage:` (its `outputs` entry if it has one),
    `{project}`, `{subproject}`, `{user}` filled in. An absolute root shared by several projects
    (no `{project}` in it) gets the project's name appended, as QA-Board does."""
    spec: Any = os.environ.get("QA_STORAGE") or storage
    if isinstance(spec, dict) and entry in spec:
        spec = spec[entry]
    elif isinstance(spec, dict) and {"outputs", "artifacts"} & set(spec):
        spec = spec.get("outputs") or spec.get("artifacts")
    raw = (
        str(spec.get(HOST) or spec.get("linux") or spec.get("path") or "")
        if isinstance(spec, dict)
        else str(spec)
    )
    variables = {"project": name, "subproject": subproject.as_posix(), "user": _user()}
    try:
        filled = raw.format(**variables)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{yamlfile.where(root / CONFIG_FILENAME, ('storage',))}: `storage: {raw}` has an unknown placeholder ({exc}); the known ones are {{project}}, {{subproject}} and {{user}}."
        ) from None
    path = resolve_path(root, filled)
    if Path(os.path.expandvars(filled)).expanduser().is_absolute() and "{project}" not in raw:
        path = path / name
    return path


def _validate(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    from qaflow.config.models import project_settings  # pydantic: only for a changed file

    return project_settings(path, data)


def _user() -> str:
    if os.environ.get("QA_USER"):
        return os.environ["QA_USER"]
    import getpass  # only for a {user} placeholder

    return getpass.getuser()


def did_you_mean(name: str, known: Any) -> str:
    """'. Did you mean 'x'?' for the closest of `known`, else '.' (for messages)."""
    import difflib  # only for an error message

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


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
