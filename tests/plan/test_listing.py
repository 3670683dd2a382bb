"""`listing.to_json` (`qa batch --list`): each line is exactly `json.dumps` of `describe(run)`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qaflow.plan import listing
from qaflow.plan.model import Plan, RunSpec

text = st.text(max_size=12)  # any unicode: quotes, backslashes, controls, surrogates…
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
values = st.recursive(
    scalars | st.builds(Path, text),  # a Path in a config: written as its str (default=str)
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(text, inner, max_size=3)
        | st.tuples(inner, inner)
    ),
    max_leaves=8,
)
paths = st.builds(Path, st.text(min_size=1, max_size=12))


@st.composite
def plans(draw: Any) -> tuple[Plan, dict[str, str] | None]:
    shared = draw(st.lists(values, min_size=1, max_size=3).map(tuple))  # runs share configs
    params = draw(st.dictionaries(text, values, max_size=3))
    runs = []
    for index in range(draw(st.integers(1, 5))):
        runs.append(
            RunSpec(
                batch=draw(text),
                batch_file=draw(st.none() | paths),
                input_path=draw(st.none() | paths),
                rel_input_path=draw(st.none() | text),
                database=draw(paths),
                type=draw(text),
                configurations=draw(st.just(shared) | st.lists(values, max_size=3).map(tuple)),
                params=draw(st.just(params) | st.dictionaries(text, values, max_size=2)),
                platform=draw(text),
                matrix=draw(st.dictionaries(text, values, max_size=2)),
                output_dir=draw(paths),
                key=f"k{index}",
                command=draw(st.none() | text),
                deferred=draw(st.booleans()),
                fingerprint=draw(st.none() | text),
            )
        )
    keys = [run.key for run in runs]
    edges = {key: frozenset(draw(st.lists(st.sampled_from(keys)))) for key in keys[1:]}
    env = {
        key: draw(st.dictionaries(text, text, max_size=2)) for key in keys if draw(st.booleans())
    }
    statuses = draw(
        st.none()
        | st.just({key: draw(st.sampled_from(["run", "cached", "waits"])) for key in keys})
    )
    return Plan(runs=runs, batches=[], edges=edges, env=env), statuses


@settings(max_examples=300, deadline=None)
@given(plans(), st.integers(1, 6))
def test_each_line_is_the_json_of_describe(
    drawn: tuple[Plan, dict[str, str] | None], per_write: int
) -> None:
    plan, statuses = drawn
    kept, listing.LINES_PER_WRITE = listing.LINES_PER_WRITE, per_write  # pieces: their seams too
    reference = json.JSONEncoder(default=str, ensure_ascii=False).encode
    expected = [
        reference(plan.describe(run) | ({"status": statuses[run.key]} if statuses else {}))
        for run in plan.runs
    ]
    try:
        assert listing.to_json(plan, statuses) == "[\n" + ",\n".join(expected) + "\n]"
    finally:
        listing.LINES_PER_WRITE = kept


def test_an_empty_plan_is_an_empty_array() -> None:
    assert listing.to_json(Plan(runs=[], batches=[]), {}) == "[]"
