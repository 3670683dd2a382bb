"""QA-Board's tuning search format: the points it expands into (`qaflow.config.tuning_search`)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaflow.config.tuning_search import load, points
from qaflow.errors import UsageError

names = st.text("abcdefgh_", min_size=1, max_size=4)
values = st.lists(
    st.integers(-3, 3) | st.text("xyz", max_size=2), min_size=1, max_size=3, unique=True
)
grids = st.dictionaries(names, values, max_size=3)


@given(grids)
def test_a_grid_is_the_cartesian_product_keys_sorted_last_fastest(grid):
    found = points({"parameter_search": grid}, "t")
    assert len(found) == math.prod(len(v) for v in grid.values())
    keys = sorted(grid)
    expected = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))
    ]
    assert found == (expected or [{}])


@given(st.lists(grids, min_size=1, max_size=3), st.integers(1, 5))
def test_a_list_of_searches_each_capped_at_n_iter(searches, n_iter):
    search = {"parameter_search": searches, "search_options": {"n_iter": n_iter}}
    found = points(search, "t")
    expected = [p for g in searches for p in points({"parameter_search": g}, "t")[:n_iter]]
    assert found == expected


@given(grids.filter(bool), st.integers(1, 10), st.integers(0, 99))
def test_a_sampler_draws_distinct_points_of_the_grid(grid, n_iter, seed):
    search = {
        "parameter_search": grid,
        "search_type": "sampler",
        "search_options": {"n_iter": n_iter, "random_state": seed},
    }
    found = points(search, "t")
    everything = points({"parameter_search": grid}, "t")
    assert len(found) == min(n_iter, len(everything))
    assert all(p in everything for p in found)
    assert len({json.dumps(p, sort_keys=True) for p in found}) == len(found)
    assert points(search, "t") == found


def test_yaml_and_json_files(tmp_path: Path):
    (tmp_path / "s.yaml").write_text("parameter_search: {t: [1, 2]}\n")
    (tmp_path / "s.json").write_text('{"parameter_search": {"t": [3]}}')
    assert load(None, tmp_path / "s.yaml") == [{"t": 1}, {"t": 2}]
    assert load(None, tmp_path / "s.json") == [{"t": 3}]
    assert load('{"parameter_search": {}}', None) == [{}]
    assert load(None, None) is None
    (tmp_path / "bad.yaml").write_text("parameter_search: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load(None, tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "search",
    [
        [],
        {"parameter_search": "t"},
        {"parameter_search": {"t": []}},
        {"parameter_search": {"t": [1]}, "search_options": {"n_iter": "2"}},
        {"parameter_search": {"t": [1]}, "search_options": [1]},
    ],
)
def test_malformed_searches_are_usage_errors(search):
    with pytest.raises(UsageError):
        points(search, "--tuning-search")
