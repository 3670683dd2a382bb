"""Values the YAML types accept but that cannot run are refused before planning."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_project
from qaflow.config.batches import Catalog
from qaflow.config.checks import check_type_option
from qaflow.config.project import Project, flatten
from qaflow.errors import BatchSpecError, ConfigError, UsageError

TYPES = "inputs:\n  types:\n    image: {globs: '*.raw'}\n"


def batch_of(project, text: str, name: str = "b"):
    root = project(qaboard=TYPES, batches=text, files=["f.raw"])
    return Catalog.load(Project.load(root)).batch(name)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "b:\n  inputs: [f.raw]\n  type: imag\n",
            r"batches.yaml:3: batch 'b': `type: imag`.*Did you mean 'image'",
        ),
        ("b:\n  inputs:\n  - f.raw: {type: movie}\n", r"batches.yaml:3: batch 'b': .*movie"),
        ("b:\n  inputs: [f.raw]\n  resources: {cpus: x}\n", r"batches.yaml:3: .*resources.cpus"),
        ("b:\n  inputs: [f.raw]\n  resources: {cpus: 0}\n", r"resources.cpus"),
        ("b:\n  inputs: [f.raw]\n  resources: {cpus: true}\n", r"resources.cpus"),
        (
            "b:\n  inputs: [f.raw]\n  local: {concurrency: abc}\n",
            r"batches.yaml:3: .*local.concurrency",
        ),
        ("b:\n  inputs: [f.raw]\n  local: {concurrency: -3}\n", r"local.concurrency.*-3"),
        ("b:\n  inputs: [f.raw]\n  local: [1]\n", r"batches.yaml:3: .*`local`"),
        ("b:\n  inputs: [f.raw]\n  configs: [base, 2.5]\n", r"batches.yaml:3: .*configuration 2.5"),
        ("b:\n  inputs: [f.raw]\n  configs: [[base, [true]]]\n", r"configuration True"),
        ("b:\n  inputs:\n  - [f.raw, base, 3]\n", r"batches.yaml:3: .*configuration 3"),
        (
            "b:\n  type: script\n  configs:\n  - [echo, hi]\n",
            r"batches.yaml:4: .*a script's commands are strings",
        ),
    ],
)
def test_values_that_cannot_run_are_refused_naming_file_batch_and_field(project, text, says):
    with pytest.raises(BatchSpecError, match=says):
        batch_of(project, text)


@pytest.mark.parametrize(
    "text",
    [
        "b:\n  inputs: [f.raw]\n  type: image\n  resources: {cpus: 2, gpus: 1, memory: 8GB}\n",
        "b:\n  type: script\n  configs: [echo hi, {ENV: {A: b}}]\n",
        "b:\n  type: pipeline\n  configs:\n  - run: echo hi\n",
        "b:\n  inputs: [f.raw]\n  local: {concurrency: -1}\n  configs: [base, {x: 1}, [nested, {y: 2}]]\n",
        "b:\n  inputs:\n  - f.raw: {type: image, configs: [low]}\n",
    ],
)
def test_valid_values_pass(project, text):
    assert batch_of(project, text).name == "b"


def test_a_matrix_is_sized_before_it_is_built(project):
    matrix = "".join(f"    m{i}: [{', '.join(map(str, range(10)))}]\n" for i in range(12))
    with pytest.raises(BatchSpecError, match=r"1,000,000,000,000 points .* 1,000,000 runs"):
        batch_of(project, "b:\n  inputs: [f.raw]\n  matrix:\n" + matrix)


def test_the_type_option_names_a_project_type(project):
    the_project = Project.load(project(qaboard=TYPES))
    check_type_option(the_project, "image")
    check_type_option(the_project, None)
    with pytest.raises(UsageError, match=r"--type 'imgae'.*Did you mean 'image'"):
        check_type_option(the_project, "imgae")


# ---------------------------------------------------------------- file-level defaults
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("configs: [base, 2.5]\nb:\n  inputs: [f.raw]\n", r"batches.yaml:1: file-level `configs`"),
        ("configs: 3\nb:\n  inputs: [f.raw]\n", r"batches.yaml:1: invalid file-level `configs`"),
        ("configuration: [[x, true]]\nb:\n  inputs: [f.raw]\n", r"`configuration`.*True"),
        # checked even where the batch sets its own: the file's default is wrong for every batch
        ("configs: [1]\nb:\n  inputs: [f.raw]\n  configs: [x]\n", r"file-level `configs`"),
        ("database: 3\nb:\n  inputs: [f.raw]\n", r"batches.yaml:1: invalid file-level `database`"),
        ("database: {linux: [a]}\nb:\n  inputs: [f.raw]\n", r"file-level `database`"),
        ("platform: [linux]\nb:\n  inputs: [f.raw]\n", r"file-level `platform`"),
        (
            "configs:\n- [echo, hi]\nb:\n  type: script\n",
            r"batches.yaml:2: file-level `configs`.*batch 'b'.*a script's commands are strings",
        ),
    ],
)
def test_file_level_defaults_are_checked_as_a_batch_s_own_values(project, text, says):
    with pytest.raises(BatchSpecError, match=says):
        batch_of(project, text)


def test_valid_file_level_defaults_apply(project):
    text = "configs: [base, {x: 1}]\ndatabase: data\nplatform: linux\nb:\n  inputs: [f.raw]\n"
    root = project(qaboard=TYPES, batches=text, files=["data/f.raw"])
    the_batch = Catalog.load(Project.load(root)).batch("b")
    assert the_batch.configs == ("base", {"x": 1})
    assert the_batch.database == root / "data" and the_batch.platform == "linux"


def _is_configuration(leaf: Any) -> bool:
    return leaf is None or isinstance(leaf, str | dict)


NAMES = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
LEAVES = st.one_of(
    NAMES,
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.dictionaries(NAMES, st.integers(0, 3), max_size=2),
)
CONFIGS = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["configs", "configurations", "configuration"]), value=CONFIGS)
def test_file_level_configurations_fail_exactly_when_a_value_is_no_configuration(
    tmp_path_factory, key, value
):
    """Any YAML value as a file-level default: refused (naming file, line and key) exactly
    when one of its configurations is not a string or a mapping; else the batch's default."""
    text = yaml.safe_dump({key: value, "b": {"inputs": ["f.raw"]}})
    root = write_project(tmp_path_factory.mktemp("p"), qaboard=TYPES, batches=text, files=["f.raw"])
    catalog = Catalog.load(Project.load(root))
    if all(_is_configuration(leaf) for leaf in flatten(value)):
        assert catalog.batch("b").configs == (None if value is None else tuple(flatten(value)))
        return
    with pytest.raises(BatchSpecError) as raised:
        catalog.batch("b")
    assert re.match(
        rf"{re.escape(str(root))}/qa/batches.yaml:\d+: (invalid )?file-level `{key}`",
        str(raised.value),
    )
    assert "batch 'b'" in str(raised.value) and "\n" not in str(raised.value)


PATHS = st.one_of(
    NAMES,
    st.integers(0, 9),
    st.lists(NAMES, max_size=2),
    st.dictionaries(st.sampled_from(["linux", "windows"]), st.one_of(NAMES, st.integers(0, 9))),
)


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(["database", "platform"]), value=PATHS)
def test_file_level_database_and_platform_fail_exactly_when_of_the_wrong_type(
    tmp_path_factory, key, value
):
    text = yaml.safe_dump({key: value, "b": {"inputs": ["f.raw"], "database": "."}})
    root = write_project(tmp_path_factory.mktemp("p"), qaboard=TYPES, batches=text, files=["f.raw"])
    catalog = Catalog.load(Project.load(root))
    valid = isinstance(value, str) or (
        key == "database"
        and isinstance(value, dict)
        and all(isinstance(v, str) for v in value.values())
    )
    if valid:
        assert catalog.batch("b").name == "b"
        return
    with pytest.raises(BatchSpecError, match=rf"batches.yaml:\d+: invalid file-level `{key}`"):
        catalog.batch("b")


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(["configs", "configurations"]), value=st.lists(CONFIGS, max_size=3))
def test_qaboard_default_configurations_fail_exactly_when_a_value_is_no_configuration(
    tmp_path_factory, key, value
):
    text = yaml.safe_dump({"inputs": {key: value}})
    root = write_project(tmp_path_factory.mktemp("p"), qaboard=text)
    if all(_is_configuration(leaf) for leaf in flatten(value)):
        assert Project.load(root).default_configs == tuple(flatten(value))
        return
    with pytest.raises(
        ConfigError, match=rf"qaboard.yaml:\d+: invalid value for `inputs.{key}`: item #"
    ):
        Project.load(root)
