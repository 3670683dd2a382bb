"""The one exception tree of qaflow; each class carries the process exit code it maps to.

    QaflowError (exit 1)
    ├── UsageError (exit 2)            the user asked for something that cannot be done
    │   ├── ConfigError                qaboard.yaml or a YAML file is malformed or invalid
    │   ├── BatchSpecError             a batch definition is invalid, or a batch/input is missing
    │   ├── GraphError                 unknown `needs`, cycles between batches or aliases
    │   └── InterpolationError         a `${…}` expression cannot be parsed or evaluated
    ├── StoreError (exit 1)            the run store cannot be read or written
    │   └── StoreUnreachableError (exit 2; also a UsageError) `database_url` names a server
    │                                  that does not answer, or refuses its credentials
    └── ExecutorError (exit 1)         we could not execute a run (not: the user's code failed)

A failure of user code is never an exception here: it is a run result.
The mapping to a process exit happens in exactly one place, `qaflow.cli.main.main`.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any


class QaflowError(Exception):
    """Base class: a problem qaflow reports to the user as one paragraph, no traceback."""

    exit_code = 1


class UsageError(QaflowError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file is malformed or holds an invalid value."""


class BatchSpecError(UsageError):
    """A batch definition is invalid, or names a batch or input that does not exist."""


class GraphError(UsageError):
    """The graph between batches (aliases, `needs`) is invalid: unknown names or cycles."""


class InterpolationError(UsageError):
    """A `${…}` expression cannot be parsed or evaluated."""


class StoreError(QaflowError):
    """The run store cannot be opened, read or written."""


class StoreUnreachableError(StoreError, UsageError):
    """The store's database cannot be connected to as configured (server down, wrong host,
    port, credentials or database name): the user's setting to fix, so exit 2."""

    exit_code = 2


class ExecutorError(QaflowError):
    """qaflow could not execute a run (as opposed to the user's code failing)."""


class QaflowWarning(UserWarning):
    """A problem in the user's files that does not stop anything (e.g. an unknown key)."""


@contextlib.contextmanager
def shown_warnings(say: Callable[[str], None]) -> Iterator[None]:
    """Within: every QaflowWarning is shown, each time it is raised, through `say` as one
    line `warning: …`; any other warning as Python shows it. (`qa` and the detached driver
    of a background execution.)"""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, QaflowWarning):
            say(f"warning: {message}")
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always", QaflowWarning)
        warnings.showwarning = show
        yield
