"""The store's JSON codec: orjson, with json for the values orjson would not keep exactly."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from qaflow.store.engine import dumps, loads

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**90), max_value=2**90)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@given(values)
def test_a_value_comes_back_as_itself_non_finite_floats_as_null(value):
    text = dumps(value)
    assert json.loads(text) == _finite(value)  # valid JSON, that any reader reads the same
    assert loads(text) == _finite(value)
    assert loads(text.encode()) == _finite(value)


def test_non_string_keys_and_unknown_types_are_written_as_json_dumps_would():
    from pathlib import Path

    assert json.loads(dumps({1: "a", None: 2})) == {"1": "a", "null": 2}
    assert loads(dumps({"path": Path("/data/a.raw")})) == {"path": "/data/a.raw"}
