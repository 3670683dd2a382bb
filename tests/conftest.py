"""Shared fixtures: small projects written into tmp_path, and the `qa` CLI run in-process."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from qaflow.plan.model import merge_params
from qaflow.store import Store
from qaflow.worker.task import RunPayload, RunTask

# No property test has a time limit: on a loaded 2-core machine an example may take seconds
# (speed is measured in bench/, not asserted in tests).
settings.register_profile(
    "qaflow", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("qaflow")


# The suite may be started with SIGINT and SIGHUP ignored (under nohup, or as `cmd &` from a
# script); every `qa` process a test starts would inherit that, and the Ctrl-C and hangup
# tests need what a terminal gives: the defaults.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

# The validations qaflow keeps between processes (config/validated.py) go to a folder of
# the suite's own, not the user's ~/.cache; every `qa` process a test starts inherits it.
os.environ["QA_CONFIG_CACHE_DIR"] = tempfile.mkdtemp(prefix="qaflow-test-config-")
atexit.register(shutil.rmtree, os.environ["QA_CONFIG_CACHE_DIR"], True)

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(autouse=True)
def _signal_dispositions_kept(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that runs qaflow in-process must not leave this worker's signal dispositions
    changed: an ignored SIGINT or SIGHUP is inherited by every `qa` process the following
    tests start (Ctrl-C and hangup tests then hang), and a foreign SIGINT handler stops
    `_thread.interrupt_main` from raising KeyboardInterrupt. Put back, with a warning naming
    the test that changed them."""
    before = {number: signal.getsignal(number) for number in _SIGNALS}
    yield
    for number, handler in before.items():
        if handler is not None and signal.getsignal(number) is not handler:
            warnings.warn(
                f"{request.node.nodeid} left {signal.Signals(number).name} changed; put back",
                stacklevel=1,
            )
            signal.signal(number, handler)


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
    from qaflow.cli import main as cli

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


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Validations kept (config/validated.py) in a folder of the test's own, none in memory."""
    from qaflow.config import validated

    folder = tmp_path / "kept"
    monkeypatch.setenv("QA_CONFIG_CACHE_DIR", str(folder))
    monkeypatch.delenv("QA_CONFIG_CACHE", raising=False)
    monkeypatch.setattr(validated, "_projects", {})
    return folder


# ---------------------------------------------------------------- real store backends
POSTGRES_ENV = "QA_TEST_POSTGRES_URL"  # e.g. postgresql://qaflow:qaflow@127.0.0.1:5432/postgres


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """A connection to the test server with which to create and drop one database per test."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        reason = (
            f"{POSTGRES_ENV} is not set, so the store is not tested on PostgreSQL. Set it to "
            "the URL of a role that may CREATE DATABASE (.ci/run shows how to make one)."
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} CI must test PostgreSQL.")
        pytest.skip(reason)
    engine = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """The URL (plain postgresql://, as users write it) of a new, empty database."""
    name = f"qaflow_test_{secrets.token_hex(6)}"
    with postgres_admin.connect() as connection:
        # UTF8 whatever the cluster's default (a cluster made without a locale is SQL_ASCII)
        connection.exec_driver_sql(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    url = make_url(os.environ[POSTGRES_ENV]).set(database=name)
    yield url.render_as_string(hide_password=False)
    _drop_database(postgres_admin, name)


def _drop_database(admin: Engine, name: str) -> None:
    """DROP DATABASE … WITH (FORCE) ends our own sessions still in it, but refuses to end
    an autovacuum worker (not a process of our role) that happens to be in the new database:
    a plain DROP makes that worker leave. Either, again, until a generous deadline."""
    deadline = time.monotonic() + 120
    while True:
        for statement in (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{name}"',
        ):
            try:
                with admin.connect() as connection:
                    connection.exec_driver_sql(statement)
                return
            except DBAPIError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.5)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qaflow.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store.open(store_url, storage=tmp_path) as opened:
        yield opened


# ---------------------------------------------------------------- tasks as the planner makes them
def make_task(
    root: Path,
    name: str,
    configs: tuple[Any, ...] = (),
    *,
    input_path: Path | None = None,
    batch: str = "b",
    **kwargs: Any,
) -> RunTask:
    """A RunTask for the project at root, its outputs in root/output/NAME (kwargs: RunTask's)."""
    database = input_path.parent if input_path is not None else root
    payload = RunPayload(
        batch=batch,
        batch_file=str(root / "qa" / "batches.yaml"),
        input_path=None if input_path is None else str(input_path),
        rel_input_path=None if input_path is None else input_path.name,
        database=str(database),
        type="default",
        configurations=tuple(configs),
        params=merge_params(configs),
        platform="linux",
        matrix={},
        output_dir=str(root / "output" / name),
    )
    kwargs.setdefault("entrypoint", None if kwargs.get("command") else "qa/main.py")
    return RunTask(key=name, payload=payload, project_root=str(root), **kwargs)
