"""Batch files: load them, resolve aliases and wildcards, validate the batches asked for.

Policy, following QA-Board: batch files are read in the order `inputs.batches` lists them
and a later definition of a batch replaces an earlier one (or, with
`inputs.allow_duplicate_batches`, both are kept: `name` becomes an alias of `name@file`).
Top-level `database`, `configs` and `platform` of a file are defaults for the batches of
that file; `aliases`/`groups` of every file are merged; keys starting with `.` are hidden
(anchors). A batch is validated only when it is asked for, so a file may carry entries
that are not batches, as QA-Board files often do.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaflow.config import validated, yamlfile
from qaflow.config.checks import batch_locator, check_batch, check_file_defaults
from qaflow.config.project import Project, flatten, resolve_path
from qaflow.errors import BatchSpecError, ConfigError, GraphError

FILE_DEFAULTS = ("database", "configs", "configurations", "configuration", "platform")
RESERVED = {*FILE_DEFAULTS, "aliases", "groups"}
INPUT_SETTINGS = ("type", "database", "platform", "globs", "glob", "use_parent_folder")


@dataclass(frozen=True)
class InputEntry:
    """One item of a batch's `inputs`: a location, and what it adds to the batch's settings."""

    location: str
    configs: tuple[Any, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # type, database, platform, globs…


@dataclass(frozen=True)
class Need:
    """One entry of `needs:`: the batch needed, the name it goes by in expressions, and whether
    each run needs only the runs of that batch with the same input (`per: input`)."""

    alias: str
    batch: str
    per_input: bool = False


@dataclass(frozen=True)
class Step:
    """One step of a `type: pipeline` batch: a shell command, or batches run in parallel."""

    index: int
    command: str | None = None
    batches: tuple[str, ...] = ()
    label: str | None = None


@dataclass(frozen=True)
class Batch:
    """A validated batch definition."""

    name: str
    file: Path
    yaml_key: str  # the batch's key in its file (differs from name for duplicated batches)
    inputs: tuple[InputEntry, ...] | None  # None: every input of the database
    configs: tuple[Any, ...] | None  # None: the defaults (CLI --config, inputs.configs)
    database: Path | None
    type: str | None
    platform: str | None
    globs: tuple[str, ...] | None
    use_parent_folder: bool | None
    matrix: dict[str, list[Any]]  # the matrix (its first grid when `matrix:` lists several)
    needs: tuple[Need, ...]
    steps: tuple[Step, ...]  # type: pipeline only
    deps: tuple[str, ...]
    resources: dict[str, Any]
    timeout: float | None
    retries: int
    local_concurrency: int | None
    runner_options: dict[str, Any]
    grids: tuple[dict[str, list[Any]], ...] = ()  # QA-Board: `matrix:` may be a list of grids
    only: Any = None  # QA-Board: keep the inputs whose metadata() match
    exclude: Any = None  # QA-Board: leave out the inputs whose metadata() match


@dataclass(frozen=True)
class _Raw:
    name: str
    file: Path
    key: str  # the key in the file (differs from name for duplicated batches)
    data: Any
    defaults: dict[str, Any]


@dataclass(frozen=True)
class FolderTarget:
    """`qa batch some/folder`: every input found under that path of the database."""

    location: str


class Catalog:
    """Every batch and alias of a project's batch files."""

    def __init__(
        self, *, project: Project, raw: dict[str, _Raw], aliases: dict[str, list[str]]
    ) -> None:
        self.project = project
        self._raw = raw
        self.aliases = aliases
        self._parsed: dict[str, Batch] = {}

    @classmethod
    def load(cls, project: Project) -> Catalog:
        raw: dict[str, _Raw] = {}
        aliases: dict[str, list[str]] = {}
        for path in project.batch_files():
            data = yamlfile.load(path, root=project.root)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ConfigError(
                    f"{path}: a batch file must be a mapping of batch names to batches, got a {type(data).__name__}."
                )
            aliases.update(_aliases_of(path, data))
            defaults = {k: data[k] for k in FILE_DEFAULTS if k in data}
            for key, value in data.items():
                name = str(key)
                if name.startswith(".") or name in RESERVED:
                    continue
                entry = _Raw(name, path, name, value, defaults)
                if project.allow_duplicate_batches and (name in raw or name in aliases):
                    _keep_both(raw, aliases, entry)
                else:
                    raw[name] = entry
        return cls(project=project, raw=raw, aliases=aliases)

    @property
    def names(self) -> list[str]:
        return list(self._raw)

    def resolve(self, names: list[str]) -> list[str | FolderTarget]:
        """Batch names (aliases and wildcards expanded) or folder targets, first occurrence kept."""
        out: list[str | FolderTarget] = []
        for name in names:
            for target in self._resolve_one(name, ()):
                if target not in out:
                    out.append(target)
        return out

    def _resolve_one(self, name: str, stack: tuple[str, ...]) -> list[str | FolderTarget]:
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name) :], name))
            raise GraphError(
                f"The aliases form a cycle: {cycle}. Remove one of these names from the alias that lists it."
            )
        if name in self.aliases:
            return [
                t
                for member in self.aliases[name]
                for t in self._resolve_one(member, (*stack, name))
            ]
        if name in self._raw:
            return [name]
        if any(c in name for c in "*?["):
            matches = [n for n in self._raw if fnmatch.fnmatchcase(n, name)]
            if matches:
                return list(matches)
        if self._is_location(name):
            return [FolderTarget(name)]
        raise BatchSpecError(self._unknown(name, stack))

    def _is_location(self, name: str) -> bool:
        database = self.project.database
        if any(c in name for c in "*?["):
            return next(iter(database.glob(name)), None) is not None
        return (database / name).exists()

    def _unknown(self, name: str, stack: tuple[str, ...]) -> str:
        hint = near_misses(name, [*self._raw, *self.aliases])
        via = f" (listed by alias {stack[-1]!r})" if stack else ""
        files = ", ".join(
            str(p.relative_to(self.project.root)) if p.is_relative_to(self.project.root) else str(p)
            for p in self.project.batch_files()
        )
        return (
            f"Unknown batch {name!r}{via}: it is not defined in the batch files ({files or 'none found'}) "
            f"and is not a path under the database {str(self.project.database)!r}.{hint}"
        )

    def batch(self, name: str) -> Batch:
        """The validated batch `name` (validated once, then cached)."""
        if name not in self._parsed:
            self._parsed[name] = _parse(self.project, self._raw[name])
        return self._parsed[name]

    def file_of(self, name: str) -> Path:
        return self._raw[name].file


def _aliases_of(path: Path, data: dict[str, Any]) -> dict[str, list[str]]:
    section = data.get("aliases", data.get("groups")) or {}
    key = "aliases" if "aliases" in data else "groups"
    if not isinstance(section, dict):
        raise ConfigError(
            f"{yamlfile.where(path, (key,))}: `{key}` must map alias names to lists of batch names."
        )
    out: dict[str, list[str]] = {}
    for alias, members in section.items():
        flat = flatten(members if members is not None else [])
        if not all(isinstance(m, str) for m in flat):
            raise ConfigError(
                f"{yamlfile.where(path, (key, alias))}: alias {alias!r} must list batch names (strings)."
            )
        out[str(alias)] = flat
    return out


def _keep_both(raw: dict[str, _Raw], aliases: dict[str, list[str]], entry: _Raw) -> None:
    name = entry.name
    if name not in aliases:
        first = raw.pop(name)
        renamed = f"{name}@{first.file}"
        raw[renamed] = _Raw(renamed, first.file, first.key, first.data, first.defaults)
        aliases[name] = [renamed]
    renamed = f"{name}@{entry.file}"
    raw[renamed] = _Raw(renamed, entry.file, entry.key, entry.data, entry.defaults)
    aliases[name].append(renamed)


def _parse(project: Project, raw: _Raw) -> Batch:
    data = raw.data if raw.data is not None else {}
    if not isinstance(data, dict):
        raise BatchSpecError(
            f"{yamlfile.where(raw.file, (raw.key,))}: batch {raw.name!r} must be a mapping with keys such as "
            f"`inputs` and `configs`, got a {type(data).__name__}."
        )
    fields, extras = validated.cached(
        "batch",
        f"{raw.file}\0{raw.key}\0{raw.name}",
        data,
        lambda: _validate(raw, data),
        root=project.root,
    )
    check_batch(project, raw.name, batch_locator(raw.file, raw.key), data)
    defaults = raw.defaults
    configs = _first(fields["configs"], fields["configurations"], fields["configuration"])
    kind = fields["type"]
    script = kind == "script" and configs is None  # the file's configs are its commands
    check_file_defaults(raw.file, defaults, batch=raw.name, script=script, root=project.root)
    if kind is None and _all_steps(configs):
        # the seed's pipeline: configurations that are all `run:`/`batch:` steps, no `type:`
        kind = "pipeline"
    if configs is None:
        configs = _first(*(defaults.get(k) for k in ("configs", "configurations", "configuration")))
    database = (
        fields["database"]
        if fields["database"] is not None
        else (None if kind == "pipeline" else defaults.get("database"))
    )
    inputs = fields["inputs"] if fields["inputs"] is not None else fields["tests"]
    matrix = fields["matrix"]
    return Batch(
        name=raw.name,
        file=raw.file,
        yaml_key=raw.key,
        inputs=None if inputs is None else _input_entries(raw, inputs),
        configs=None if configs is None else tuple(flatten(configs)),
        database=None if database is None else resolve_path(project.root, database),
        type=kind,
        platform=fields["platform"] or defaults.get("platform"),
        globs=_tuple_or_none(fields["globs"] if fields["globs"] is not None else fields["glob"]),
        use_parent_folder=fields["use_parent_folder"],
        matrix=_grids(matrix)[0] if matrix else {},
        grids=_grids(matrix),
        only=fields["only"],
        exclude=fields["exclude"],
        needs=_needs(raw, fields["needs"]),
        steps=_steps(raw, configs) if kind == "pipeline" else (),
        deps=_tuple_or_none(fields["deps"]) or (),
        resources=dict(fields["resources"] or {}),
        timeout=fields["timeout"],
        retries=fields["retries"],
        local_concurrency=(fields["local"] or {}).get("concurrency"),
        runner_options={**({"local": dict(fields["local"])} if fields["local"] else {}), **extras},
    )


def _validate(raw: _Raw, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from qaflow.config.models import batch_settings  # pydantic: only for a changed batch

    return batch_settings(raw.file, raw.key, raw.name, data)


def _grids(
    matrix: dict[str, list[Any]] | list[dict[str, list[Any]]] | None,
) -> tuple[dict[str, list[Any]], ...]:
    if not matrix:
        return ()
    return tuple(dict(g) for g in matrix) if isinstance(matrix, list) else (dict(matrix),)


def _all_steps(configs: Any) -> bool:
    """Whether configurations are all pipeline steps (`run: CMD` or `batch: NAME…`)."""
    return (
        isinstance(configs, list)
        and bool(configs)
        and all(isinstance(c, dict) and len(c) == 1 and set(c) <= {"run", "batch"} for c in configs)
    )


def _needs(raw: _Raw, needs: str | list[str] | dict[str, Any] | None) -> tuple[Need, ...]:
    if needs is None:
        return ()
    if isinstance(needs, str):
        return (Need(needs, needs),)
    if isinstance(needs, list):
        return tuple(Need(name, name) for name in needs)
    out = []
    for alias, target in needs.items():
        if isinstance(target, str):
            out.append(Need(alias, target))
            continue
        batch, per = target.get("batch"), target.get("per")
        if (
            not isinstance(batch, str)
            or per not in (None, "input")
            or set(target) - {"batch", "per"}
        ):
            raise BatchSpecError(
                f"{yamlfile.where(raw.file, (raw.key, 'needs', alias))}: batch {raw.name!r}: invalid `needs.{alias}`: "
                f"expected a batch name or `{{batch: NAME, per: input}}`, got {target!r}."
            )
        out.append(Need(alias, batch, per_input=per == "input"))
    return tuple(out)


def _steps(raw: _Raw, configs: Any) -> tuple[Step, ...]:
    """QA-Board's user-land pipelines: `- run: CMD` or `- batch: NAME | [NAME, …, {label: …}]`."""
    steps = []
    for index, item in enumerate(flatten(configs or [])):
        where = yamlfile.where(raw.file, (raw.key, "configs", index))
        if (
            isinstance(item, dict)
            and set(item) <= {"run", "label"}
            and isinstance(item.get("run"), str)
        ):
            steps.append(Step(index, command=item["run"], label=item.get("label")))
        elif isinstance(item, dict) and set(item) <= {"batch", "label"} and "batch" in item:
            names = [b for b in flatten(item["batch"]) if isinstance(b, str)]
            labels = [
                b["label"] for b in flatten(item["batch"]) if isinstance(b, dict) and "label" in b
            ]
            if not names or len(names) + len(labels) != len(flatten(item["batch"])):
                raise BatchSpecError(
                    f"{where}: pipeline {raw.name!r}: step {index + 1}: `batch:` takes a batch name or a list of names (and an optional `{{label: …}}`), got {item['batch']!r}."
                )
            steps.append(
                Step(
                    index,
                    batches=tuple(names),
                    label=item.get("label") or (labels[0] if labels else None),
                )
            )
        else:
            raise BatchSpecError(
                f"{where}: pipeline {raw.name!r}: step {index + 1} must be `run: COMMAND` or `batch: NAME` (or a list of names), got {item!r}."
            )
    if not steps:
        raise BatchSpecError(
            f"{yamlfile.where(raw.file, (raw.key,))}: pipeline {raw.name!r} has no steps: list them under `configs:`, e.g. `- run: echo hi` and `- batch: my-batch`."
        )
    return tuple(steps)


def _input_entries(raw: _Raw, inputs: Any) -> tuple[InputEntry, ...]:
    """The forms QA-Board accepts: a location, `loc: configs`, `[loc, *configs]`, `{loc: configs}`."""
    if isinstance(inputs, str):
        return (InputEntry(inputs),)
    if isinstance(inputs, dict):
        return tuple(_entry(raw, loc, cfg) for loc, cfg in inputs.items())
    entries: list[InputEntry] = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            entries.append(InputEntry(item))
        elif isinstance(item, list) and item and isinstance(item[0], str):
            entries.append(_entry(raw, item[0], item[1:]))
        elif isinstance(item, dict) and item:
            entries.extend(_entry(raw, loc, cfg) for loc, cfg in item.items())
        else:
            raise BatchSpecError(
                f"{yamlfile.where(raw.file, (raw.key, 'inputs', index))}: batch {raw.name!r}: cannot read "
                f"input #{index + 1} ({item!r}). Write an input as `- path`, `- path: [config, …]` "
                "or `- [path, config, …]`."
            )
    return tuple(entries)


def _entry(raw: _Raw, location: Any, configs: Any) -> InputEntry:
    if not isinstance(location, str):
        raise BatchSpecError(
            f"{yamlfile.where(raw.file, (raw.key, 'inputs'))}: batch {raw.name!r}: an input path must be a string, got {location!r}."
        )
    if configs is None:
        return InputEntry(location)
    if isinstance(configs, dict):
        settings = {k: configs[k] for k in INPUT_SETTINGS if k in configs}
        rest = {k: v for k, v in configs.items() if k not in INPUT_SETTINGS}
        patch = _first(rest.get("configs"), rest.get("configurations"), rest.get("configuration"))
        if patch is not None:
            return InputEntry(location, tuple(flatten(patch)), settings)
        return InputEntry(location, (rest,) if rest else (), settings)
    return InputEntry(location, tuple(flatten(configs)))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _tuple_or_none(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def near_misses(name: str, known: list[str]) -> str:
    """' Did you mean 'a' or 'b'?' for the (up to 3) batch names of `known` close to `name`,
    else '' (for messages)."""
    import difflib  # only for an error message

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
