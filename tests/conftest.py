"""Shared fixtures: small projects written into tmp_path, and the `qa` CLI run in-process."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def write_project(
    root: Path,
    *,
    qaboard: str = "",
    batches: str | None = None,
    files: list[str] | tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> Path:
    """Write qaboard.yaml, qa/batches.yaml and empty input files under root; return root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qaboard.yaml").write_text(textwrap.dedent(qaboard))
    if batches is not None:
        (root / "qa").mkdir(exist_ok=True)
        (root / "qa" / "batches.yaml").write_text(textwrap.dedent(batches))
    for name in files:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
    for name, text in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run_qa(*args: str, cwd: Path | None = None) -> Result:
    """Run `qa ARGS` in-process through the real entry point, capturing output and exit code."""
    runner = CliRunner()
    with contextlib.nullcontext() if cwd is None else _chdir(cwd):
        result = runner.invoke(_entry, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


class _chdir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        import os

        self.old = Path.cwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        import os

        os.chdir(self.old)


import click  # noqa: E402


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _entry(argv: tuple[str, ...]) -> None:
    from qaflow import cli

    cli.main(list(argv))


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    made: list[Path] = []

    def make(**kwargs: Any) -> Path:
        made.append(tmp_path / f"proj{len(made) or ''}")
        return write_project(made[-1], **kwargs)

    return make


@pytest.fixture
def qa() -> Callable[..., Result]:
    return run_qa
