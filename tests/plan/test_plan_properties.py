"""Property tests of the planner: random batch files plan, or fail with exit code 2 and a message."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_qa, write_project

INPUTS = ["a.jpg", "b.jpg", "c.raw", "sub/d.jpg"]

scalar = st.one_of(st.integers(-5, 5), st.text("abcxyz-_. ", max_size=6), st.booleans(), st.none())
config = st.one_of(
    st.text("abcdef-_", min_size=1, max_size=6),
    st.dictionaries(st.text("abc", min_size=1, max_size=3), scalar, max_size=2),
    st.sampled_from(
        ["${matrix.m}", "v${matrix.m}", "${matrix.nope}", "${HOME}", "${{ 1 + 1 }}", "${matrix.m"]
    ),
)
anything = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
input_item = st.one_of(
    st.sampled_from([*INPUTS, "sub", "*.jpg", "missing.jpg"]),
    st.tuples(st.sampled_from(INPUTS), st.lists(config, max_size=2)).map(lambda t: {t[0]: t[1]}),
    st.tuples(st.sampled_from(INPUTS), config).map(list),
)
batch = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.one_of(st.lists(input_item, max_size=4), anything),
        "configs": st.one_of(st.lists(config, max_size=3), anything),
        "matrix": st.one_of(
            st.dictionaries(
                st.sampled_from(["m", "n", "platform"]),
                st.lists(scalar, min_size=1, max_size=3),
                max_size=2,
            ),
            anything,
        ),
        "platform": st.one_of(st.text("abc", min_size=1, max_size=4), anything),
        "database": st.one_of(st.just("."), anything),
        "type": st.one_of(st.just("image"), anything),
        "timeout": anything,
    },
)
batch_file = st.dictionaries(
    st.sampled_from(["b1", "b2", ".hidden"]), st.one_of(batch, anything), min_size=1, max_size=3
)
batch_file = st.one_of(
    batch_file,
    st.tuples(
        batch_file,
        st.dictionaries(
            st.sampled_from(["g1", "g2"]),
            st.lists(st.sampled_from(["b1", "b2", "g1", "g2"]), max_size=3),
            max_size=2,
        ),
    ).map(lambda t: {**t[0], "aliases": t[1]}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batch_file, target=st.sampled_from(["b1", "b2", "g1", "sub", "zzz"]))
def test_random_batch_files_plan_or_fail_cleanly(batches, target):
    with tempfile.TemporaryDirectory() as tmp:
        root = write_project(Path(tmp), batches=yaml.safe_dump(batches), files=INPUTS)
        result = run_qa("-C", str(root), "batch", target, "--list")
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 2:
        # warnings (unknown keys…) may come first, one line each; then the one error paragraph
        before, found, _ = result.stderr.partition("error: ")
        assert found and "Traceback" not in result.stderr, result.stderr
        assert all(line.startswith("warning: ") for line in before.splitlines()), result.stderr
        assert result.stdout == ""
    else:
        assert isinstance(result.json(), list)


plain_config = st.text("abcdef", min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.lists(st.sampled_from(INPUTS), min_size=1, max_size=4, unique=True),
    matrix=st.dictionaries(
        st.sampled_from(["x", "y", "z"]),
        st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True),
        max_size=3,
    ),
    configs=st.lists(plain_config, max_size=3),
)
def test_number_of_runs_is_inputs_times_matrix_points(inputs, matrix, configs):
    spec = {
        "b": {
            "inputs": inputs,
            "configs": [*configs, {k: "${matrix." + k + "}" for k in matrix}],
            "matrix": matrix,
        }
    }
    if not matrix:
        del spec["b"]["matrix"]
        spec["b"]["configs"] = configs
    with tempfile.TemporaryDirectory() as tmp:
        root = write_project(Path(tmp), batches=yaml.safe_dump(spec), files=INPUTS)
        result = run_qa("-C", str(root), "batch", "b", "--list")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert len(runs) == len(inputs) * math.prod(len(v) for v in matrix.values())
    assert len({r["output_dir"] for r in runs}) == len(runs)
    for run in runs:
        assert run["params"] == ({k: run["matrix"][k] for k in matrix} if matrix else {})
