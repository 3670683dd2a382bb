"""How a value of the user's files is named in a message, what may be a configuration, and
the plain rules shared by validation and its users (flattening, concurrency, max_runs).

No pydantic here: the settled path (`config.validated`'s cache hits) and the checks of
`config.checks` use these without importing the models.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NEAR_MISS = 0.8  # difflib ratio from which an unknown key is taken for a typo of a known one
MAX_RUNS = 1_000_000  # default of `max_runs` (QA_MAX_RUNS): the most runs one plan may have


def kind_of(value: Any) -> str:
    """How a value reads in an error message: 'a list', 'a string ('x')'…"""
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__) + (
        f" ({value!r})" if not isinstance(value, dict | list) else ""
    )


def not_a_configuration(leaf: Any) -> str | None:
    """Why `leaf` (one configuration, nested lists flattened) cannot be a configuration, or
    None: a configuration is a string (a name or a command) or a mapping of parameters."""
    if leaf is None or isinstance(leaf, str | dict):
        return None
    return (
        f"configuration {leaf!r} is {kind_of(leaf)}: a configuration is a string (a name or a "
        f"command) or a mapping of parameters. Quote it ('{leaf}') or write it as a parameter "
        f"(`{{value: {leaf}}}`)"
    )


def misspelt(key: str, known: Iterable[str]) -> str | None:
    """The known key that `key` is a near miss of (a typo: `input` for `inputs`), if any."""
    names = [name for name in known if name != key]
    folded = {name.lower().replace("-", "_"): name for name in names}
    if key.lower().replace("-", "_") in folded:
        return folded[key.lower().replace("-", "_")]
    import difflib  # only for a key no one knows

    close = difflib.get_close_matches(key, names, n=1, cutoff=NEAR_MISS)
    return close[0] if close else None


def concurrency_value(value: int) -> int:
    """A number of runs at once: -1 (one per CPU) or a positive number; else a ValueError."""
    if value == -1 or value >= 1:
        return value
    raise ValueError(
        f"expected -1 (one run per CPU) or a number of runs of at least 1, got {value}"
    )


def flatten(value: Any) -> list[Any]:
    """Flatten nested lists, as QA-Board does for configurations (dicts and strings are leaves)."""
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in flatten(item)]
    return [value]
