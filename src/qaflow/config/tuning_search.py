"""QA-Board's `qa batch --tuning-search`: a parameter search, expanded into sets of extra parameters.

The format is QA-Board 1.1.1's:

    {"parameter_search": {"threshold": [0.1, 0.5], "mode": ["fast"]},   # or a list of such
     "search_type": "grid",                                             # or "sampler"
     "search_options": {"n_iter": 10}}                                  # optional

Policy (QA-Board's, which uses scikit-learn's ParameterGrid / ParameterSampler):
- `grid`: the cartesian product, keys in sorted order, the last key varying fastest; with
  `n_iter` > 0, only the first `n_iter` points.
- `sampler`: `n_iter` points drawn without replacement from the grid (the whole grid when it
  has fewer); `search_options.random_state` (qaflow's addition) makes the draw reproducible.
- a list of searches is each search in turn, with the same `search_type` and options.
- an empty `parameter_search` is one point with no parameters.
Each point is a set of extra parameters, merged over those of `--tuning` and the forwarded
arguments (a shallow merge, the search wins), as QA-Board does.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from qaflow.errors import UsageError

SEARCH_TYPES = ("grid", "sampler")
EXAMPLE = '{"parameter_search": {"threshold": [0.1, 0.5]}, "search_type": "grid"}'


def load(text: str | None, file: Path | None) -> list[dict[str, Any]] | None:
    """The points of `--tuning-search TEXT` or `--tuning-search-file FILE` (None: neither)."""
    if text is not None and file is not None:
        raise UsageError(
            "--tuning-search and --tuning-search-file were both given: give only one of them."
        )
    if file is not None:
        return points(_read_file(file), f"--tuning-search-file {str(file)!r}")
    if text is not None:
        try:
            search = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"--tuning-search is not valid JSON: {exc.msg} at character {exc.pos}. Give an object such as '{EXAMPLE}'."
            ) from None
        return points(search, "--tuning-search")
    return None


def _read_file(file: Path) -> Any:
    where = f"--tuning-search-file {str(file)!r}"
    if file.suffix not in (".json", ".yaml", ".yml"):
        raise UsageError(
            f"{where}: unsupported format {file.suffix or '(no suffix)'!r}; name it .json, .yaml or .yml."
        )
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror}).") from None
    try:
        return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{where}: it is not valid {file.suffix[1:].upper()}: {exc}") from None


def points(search: Any, where: str) -> list[dict[str, Any]]:
    """Every set of parameters the search explores, in QA-Board's order."""
    if not isinstance(search, dict) or "parameter_search" not in search:
        raise UsageError(
            f"{where}: expected an object with a `parameter_search` key, such as '{EXAMPLE}'."
        )
    search_type = search.get("search_type", "grid")
    if search_type not in SEARCH_TYPES:
        raise UsageError(
            f"{where}: search_type {search_type!r} is not one of {', '.join(SEARCH_TYPES)}."
        )
    options = search.get("search_options") or {}
    if not isinstance(options, dict):
        raise UsageError(f'{where}: search_options must be an object, such as {{"n_iter": 10}}.')
    n_iter = options.get("n_iter")
    if n_iter is not None and (not isinstance(n_iter, int) or isinstance(n_iter, bool)):
        raise UsageError(f"{where}: search_options.n_iter must be an integer, not {n_iter!r}.")
    grids = search["parameter_search"]
    out: list[dict[str, Any]] = []
    for grid in grids if isinstance(grids, list) else [grids]:
        out.extend(_points_of(grid, search_type, n_iter, options.get("random_state"), where))
    return out


def _points_of(
    grid: Any, search_type: str, n_iter: int | None, seed: Any, where: str
) -> list[dict[str, Any]]:
    if not isinstance(grid, dict):
        raise UsageError(
            f"{where}: parameter_search must map each parameter to a list of values, not {grid!r}."
        )
    if not grid:
        return [{}]
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(
                f"{where}: parameter_search.{name} must be a non-empty list of values, not {values!r}."
            )
    if search_type == "sampler":
        if not n_iter or n_iter < 1:
            raise UsageError(
                f"{where}: search_type 'sampler' needs search_options.n_iter, the number of points to draw (1 or more)."
            )
        everything = list(_grid(grid))
        return random.Random(seed).sample(everything, min(n_iter, len(everything)))
    found = _grid(grid)
    return list(itertools.islice(found, n_iter) if n_iter and n_iter > 0 else found)


def _grid(grid: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = sorted(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))
