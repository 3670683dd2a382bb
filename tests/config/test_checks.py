"""Values the YAML types accept but that cannot run are refused before planning."""

from __future__ import annotations

import pytest

from qaflow.config.batches import Catalog
from qaflow.config.checks import check_type_option
from qaflow.config.project import Project
from qaflow.errors import BatchSpecError, UsageError

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
