"""QA-Board's `qa save-artifacts`: copy what a commit needs to run again (binaries, configs…).

The groups are `artifacts:` of qaboard.yaml (`name: {glob: PATTERN | [PATTERNS]}`), plus
what QA-Board always saves: qaboard.yaml files, qa/, the metrics and batch files, .envrc.
Files are copied, relative to the project root, under the artifacts storage
(`storage.artifacts`, else `storage`) in the commit's folder (`ab/cdef0123456789`), with one
manifest per group (`manifests/NAME.json`: st_size and md5 of each file).
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import click

from qaflow.cli.main import Globals
from qaflow.config.git import git_info
from qaflow.config.project import Project
from qaflow.errors import UsageError


@click.command()
@click.option(
    "--file",
    "-f",
    "files",
    multiple=True,
    metavar="GLOB",
    help="Save these files instead of the groups.",
)
@click.option("--exclude", "excluded", multiple=True, metavar="GROUP", help="Leave this group out.")
@click.option(
    "--out", "-o", "out", default="", metavar="DIR", help="A sub-folder of the commit's folder."
)
@click.argument("groups", nargs=-1)
@click.pass_obj
def save_artifacts(
    g: Globals, files: tuple[str, ...], excluded: tuple[str, ...], out: str, groups: tuple[str, ...]
) -> int:
    """Copy the artifacts of the current commit (GROUPS of `artifacts:`, default all) to storage."""
    project = g.project()
    commit = git_info(project.root).commit
    if commit is None:
        raise UsageError(
            f"qa save-artifacts: {str(project.root)!r} is not in a git repository (or has no commit): artifacts are saved per commit. Commit first."
        )
    chosen = _groups(project, files, groups, excluded)
    assert project.artifacts_storage is not None
    commit_root = project.artifacts_storage / commit[:2] / commit[2:16]
    click.echo(f"saving artifacts in: {commit_root / out if out else commit_root}")
    for name, globs in chosen.items():
        manifest = _save(project.root, globs, commit_root / out if out else commit_root, g.dryrun)
        click.echo(f"{name}: {len(manifest)} file(s)")
        if not g.dryrun:
            path = commit_root / project.subproject / "manifests" / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(manifest, sort_keys=True, indent=2), encoding="utf-8")
    return 0


def _groups(
    project: Project, files: tuple[str, ...], groups: tuple[str, ...], excluded: tuple[str, ...]
) -> dict[str, list[str]]:
    if files:
        return {f"__{f}": [f] for f in files}
    declared: dict[str, Any] = dict(project.settings.get("artifacts") or {})
    every = {name: _globs(spec) for name, spec in declared.items()}
    sub = project.subproject.as_posix()
    every |= {
        "__qaboard.yaml": ["qaboard.yaml", "qatools.yaml", f"{sub}/qaboard.yaml"],
        "__qatools": ["qatools/*", "qa/*"],
        "__metrics.yaml": [str(project.metrics_path.relative_to(project.root))],
        "__batches.yaml": list(project.batch_patterns),
        "__envrc": [".envrc", "*/.envrc"],
    }
    unknown = [name for name in groups if name not in every]
    if unknown:
        raise UsageError(
            f"qa save-artifacts: unknown group(s) {', '.join(map(repr, unknown))}; `artifacts:` in qaboard.yaml declares: {', '.join(declared) or 'none'}."
        )
    names = [n for n in (groups or every) if n not in excluded]
    return {name: every[name] for name in names}


def _globs(spec: Any) -> list[str]:
    value = spec.get("globs", spec.get("glob", [])) if isinstance(spec, dict) else spec
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v]


def _save(root: Path, globs: list[str], destination: Path, dryrun: bool) -> dict[str, Any]:
    manifest: dict[str, Any] = {}
    for pattern in globs:
        for path in sorted(root.glob(pattern)):
            if not path.is_file():
                continue
            rel = path.relative_to(root)
            target = destination / rel
            manifest[rel.as_posix()] = {
                "st_size": path.stat().st_size,
                "md5": hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest(),
            }
            if dryrun:
                click.echo(f"  would copy {rel}")
            elif not (target.exists() and filecmp.cmp(path, target, shallow=True)):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    return manifest
