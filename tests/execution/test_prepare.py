"""Tests of qaflow.execution.prepare: the worker's payload of a planned run."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from qaflow.execution.prepare import payload_of
from qaflow.plan.model import RunSpec


def spec(**changes: object) -> RunSpec:
    run = RunSpec(
        batch="b",
        batch_file=Path("/p/qa/batches.yaml"),
        input_path=Path("/db/a.in"),
        rel_input_path="a.in",
        database=Path("/db"),
        type="default",
        configurations=("base", {"threshold": 3}),
        params={"threshold": 3},
        platform="linux",
        matrix={"x": 1},
        output_dir=Path("/out/b/a"),
        key="k1",
        fingerprint="f" * 16,
    )
    return run.evolve(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"command": "echo {input_path}"},
        {"deferred": True},
        {"input_path": None, "batch_file": None, "rel_input_path": None},
    ],
)
def test_the_payload_records_what_qa_batch_list_shows(changes):
    run = spec(**changes)
    payload = payload_of(run)
    assert payload.record(run.key) == run.to_dict()
    assert list(payload.record(run.key)) == list(run.to_dict())


def test_the_payload_is_plain_data_holding_the_configurations_once():
    payload = payload_of(spec())
    assert payload.configurations == ("base", {"threshold": 3})
    assert pickle.loads(pickle.dumps(payload)) == payload
    assert not any(isinstance(value, Path) for value in vars(payload).values())
