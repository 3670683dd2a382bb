"""`qa logs RUN`: print a run's log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from qaflow.cli.main import Globals
from qaflow.errors import UsageError


@click.command()
@click.argument("ref", metavar="RUN")
@click.pass_obj
def logs(g: Globals, ref: str) -> int:
    """Print the log of RUN: its output directory, or a prefix of its id (see `qa batch --list`)."""
    log = _log_path(g, ref)
    if not log.is_file():
        raise UsageError(
            f"The run {ref!r} has no log yet: {str(log)!r} does not exist (it may not have started)."
        )
    with log.open("rb") as f:
        while chunk := f.read(1 << 16):
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    return 0


def _log_path(g: Globals, ref: str) -> Path:
    as_path = Path(ref).expanduser()
    if (as_path / "log.txt").is_file() or (as_path.name == "log.txt" and as_path.is_file()):
        return as_path if as_path.name == "log.txt" else as_path / "log.txt"
    from qaflow.store import Store

    project = g.project()
    store = Store.open(project.database_url, storage=project.storage, readonly=True)
    try:
        found = store.lookups.find_runs(str(as_path.resolve()) if as_path.exists() else ref)
    finally:
        store.close()
    if not found:
        raise UsageError(
            f"No run matches {ref!r}: give a run's output directory, or at least 4 characters of its id (shown by `qa batch --list` and `qa logs`)."
        )
    return Path(found[0].output_dir) / "log.txt"
