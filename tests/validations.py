"""Helpers of the tests of kept validations (config/validated.py): what a later process
sees, and one document loaded three ways (the `kept` fixture is in conftest)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from qaflow.config import validated
from qaflow.errors import QaflowWarning


def new_process() -> None:
    """What a later process sees: only what was written."""
    validated._projects.clear()


def outcome(load: Any) -> tuple[Any, list[str]]:
    """What `load()` gives (a value, or an error's type and message) and the warnings it shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value: Any = load()
        except Exception as exc:  # the errors are compared, whatever they are
            value = ("error", type(exc).__name__, str(exc))
    return value, [str(w.message) for w in caught if issubclass(w.category, QaflowWarning)]


def three_ways(load: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[str]]]:
    """`load()` without the cache, with an empty cache (then written), and from what was kept."""
    monkeypatch.setenv("QA_CONFIG_CACHE", "0")
    off = outcome(load)
    monkeypatch.delenv("QA_CONFIG_CACHE")
    new_process()
    cold = outcome(load)
    validated.flush()
    new_process()
    warm = outcome(load)
    return [off, cold, warm]


def elsewhere(load: Any, at: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[str]]]:
    """`load(root)` of a second project with the same files (`at("b")`): without the cache,
    then from what a first one (`at("a")`) kept, as a new clone of a project finds it."""
    monkeypatch.setenv("QA_CONFIG_CACHE", "0")
    off = outcome(lambda: load(at("b")))
    monkeypatch.delenv("QA_CONFIG_CACHE")
    new_process()
    outcome(lambda: load(at("a")))
    validated.flush()
    new_process()
    shared = outcome(lambda: load(at("b")))
    return [off, shared]
