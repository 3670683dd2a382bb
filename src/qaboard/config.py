"""`qaboard.config`: the project's settings and the run's environment, as QA-Board exposes them.

Values are read on first access, never at import (so importing creates nothing and prints
nothing), from the qaboard.yaml files at and above the current directory (the root
project's first, merged with each subproject's, `include:` honoured), the environment and git.
Names follow QA-Board 1.1.1: `is_ci`, `config`, `project`, `project_root`, `subproject`,
`root_qatools`, `project_dir`, `user`, `commit_id`, `commit_branch`, `commit_tag`,
`available_metrics`, `main_metrics`, `outputs_root`, `artifacts_root`, `outputs_commit`…
"""

from __future__ import annotations

import functools
import getpass
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from qaboard.conventions import commit_dirs, location_from_spec, slugify
from qaflow.config.git import commit_facts
from qaflow.config.git import is_ci as _is_ci
from qaflow.config.layers import config_files, merged

on_windows = os.name == "nt"
on_linux = not on_windows
platform = "windows" if on_windows else "linux"
default_platform = platform
default_batch_label = "default"
config_has_error = False
ignore_config_errors = True


def find_configs(path: Path) -> list[tuple[dict[str, Any], Path]]:
    """(content, path) of the qaboard.yaml files for the (sub)project at `path`, root first."""
    return [(yaml.safe_load(f.read_text(encoding="utf-8")) or {}, f) for f in config_files(path)]


def storage_roots(
    settings: dict[str, Any], project: Path, subproject: Path, user_name: str | None = None
) -> tuple[Path, Path]:
    """(outputs_root, artifacts_root) from `storage:` (or QA_STORAGE): a path, `{linux, windows}`,
    or `{outputs: …, artifacts: …}`, with `{project}`, `{subproject}`, `{user}` placeholders."""
    spec: Any = os.environ.get("QA_STORAGE") or settings.get("storage") or settings.get("ci_root")
    if not spec:
        return Path(), Path()
    variables = {"project": project, "subproject": subproject, "user": user_name or _user()}
    outputs = spec.get("outputs", spec) if isinstance(spec, dict) else spec
    artifacts = spec.get("artifacts", spec) if isinstance(spec, dict) else spec
    return location_from_spec(outputs, variables), location_from_spec(artifacts, variables)


def _user() -> str:
    return os.environ.get("QA_USER") or getpass.getuser()


@functools.cache
def _values() -> dict[str, Any]:
    files = find_configs(Path())
    settings = merged([path for _, path in files])
    values: dict[str, Any] = {"config": settings, "user": _user()}
    values["is_ci"] = _is_ci()
    root: Path | None = None
    here: Path | None = None
    project_root: Path | None = None
    subproject = Path()
    if files:
        root, here = files[0][1].parent, files[-1][1].parent
        names = {"root_path": root, "project_path": here}
        root_name = str(files[0][0].get("project", {}).get("name") or root.name).format(**names)
        subproject = here.relative_to(root)
        project_root = Path(root_name)
        settings.setdefault("project", {})["name"] = (project_root / subproject).as_posix()
    project = project_root / subproject if project_root is not None else None
    values.update(
        root_qatools=root,
        project_dir=here,
        subproject=subproject,
        project_root=project_root,
        project=project,
    )
    values.update(commit_facts(here, values["user"]))
    values.update(_storage(settings, project_root, subproject, values["commit_id"]))
    values.update(_metrics(settings, root))
    inputs = settings.get("inputs", {}) if isinstance(settings.get("inputs"), dict) else {}
    values["default_input_type"] = (inputs.get("types") or {}).get("default", "default")
    return values


def _storage(
    settings: dict[str, Any], project_root: Path | None, subproject: Path, commit: str
) -> dict[str, Any]:
    if project_root is None:
        return dict.fromkeys(
            ("outputs_root", "artifacts_root", "outputs_project", "artifacts_project"), None
        ) | {"outputs_commit": Path(), "artifacts_commit": Path()}
    outputs_root, artifacts_root = storage_roots(settings, project_root / subproject, subproject)
    commit_dir = commit_dirs(commit)
    outputs_commit = outputs_root / project_root / commit_dir / subproject
    if "QA_OUTPUTS_COMMIT" in os.environ:
        outputs_commit = Path(os.environ["QA_OUTPUTS_COMMIT"])
    return {
        "outputs_root": outputs_root,
        "artifacts_root": artifacts_root,
        "outputs_project_root": outputs_root / project_root,
        "artifacts_project_root": artifacts_root / project_root,
        "outputs_project": outputs_root / project_root / subproject,
        "artifacts_project": artifacts_root / project_root / subproject,
        "outputs_commit_root": outputs_root / project_root / commit_dir,
        "outputs_commit": outputs_commit,
        "artifacts_commit_root": artifacts_root / project_root / commit_dir,
        "artifacts_commit": artifacts_root / project_root / commit_dir / subproject,
    }


def _metrics(settings: dict[str, Any], root: Path | None) -> dict[str, Any]:
    path = (settings.get("outputs") or {}).get("metrics") if root is not None else None
    data: dict[str, Any] = {}
    if path and root is not None and (root / path).is_file():
        data = yaml.safe_load((root / path).read_text(encoding="utf-8")) or {}
    return {
        "available_metrics": data.get("available_metrics") or {},
        "main_metrics": data.get("main_metrics") or [],
        "default_metric": data.get("default_metric"),
    }


def __getattr__(name: str) -> Any:
    values = _values()
    if name in values:
        return values[name]
    if name == "artifacts_branch":
        return values["artifacts_project_root"] / "branches" / slugify(values["commit_branch"])
    raise AttributeError(f"module 'qaboard.config' has no attribute {name!r}")


def reload() -> None:
    """Forget the values read so far (after a change of directory or environment)."""
    _values.cache_clear()


class _ConfigModule(types.ModuleType):
    """QA-Board's `from qaboard import config` is the settings dict, while `qaboard.config` is
    also the module of `is_ci`…: this module reads as that dict too (`config["inputs"]`)."""

    def __getitem__(self, key: str) -> Any:
        return _values()["config"][key]

    def __contains__(self, key: object) -> bool:
        return key in _values()["config"]

    def __iter__(self) -> Iterator[str]:
        return iter(_values()["config"])

    def __len__(self) -> int:
        return len(_values()["config"])

    def get(self, key: str, default: Any = None) -> Any:
        return _values()["config"].get(key, default)

    def keys(self) -> Any:
        return _values()["config"].keys()

    def items(self) -> Any:
        return _values()["config"].items()

    def values(self) -> Any:
        return _values()["config"].values()


sys.modules[__name__].__class__ = _ConfigModule
