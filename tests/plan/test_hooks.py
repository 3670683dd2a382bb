"""QA-Board's planning hooks: only:/exclude: with metadata(), and iter_inputs()."""

from __future__ import annotations

import pytest

from qaflow.config.project import Project
from qaflow.plan.hooks import matches
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan

METADATA = """
def metadata(input_path, database, rel_input_path):
    sensor, distance = input_path.stem.split("-")
    return {"Sensor": sensor, "Distance": int(distance)}

def run(context):
    return {}
"""

ITER_INPUTS = """
from pathlib import Path

def iter_inputs(path, database, only, exclude, inputs_settings):
    for name in ("x.bin", "y.bin", "z.bin"):
        yield {"input_path": database / path / name, "database": database,
               "metadata": {"name": name}}

def run(context):
    return {}
"""


def rels(root, name):
    return [r.rel_input_path for r in plan(Project.load(root), [name], PlanOptions()).runs]


def test_only_and_exclude_filter_on_the_entrypoints_metadata(project):
    root = project(
        qaboard="inputs: {globs: '*.jpg'}\n",
        batches="""
        hm: {inputs: [imgs], only: {Sensor: hm*}}
        far: {inputs: [imgs], only: {Distance: '>=5'}, exclude: {Sensor: [GN1]}}
        """,
        files=["imgs/HM4-3.jpg", "imgs/HM2-7.jpg", "imgs/GN1-9.jpg", "imgs/IMX-1.jpg"],
        extra={"qa/main.py": METADATA},
    )
    assert rels(root, "hm") == ["imgs/HM2-7.jpg", "imgs/HM4-3.jpg"]
    assert rels(root, "far") == ["imgs/HM2-7.jpg"]


def test_iter_inputs_finds_the_inputs(project):
    root = project(
        batches="b: {inputs: [data], exclude: {name: y.bin}}\n",
        files=["data/w.bin", "data/x.bin", "data/y.bin", "data/z.bin"],
        extra={"qa/main.py": ITER_INPUTS},
    )
    assert rels(root, "b") == ["data/x.bin", "data/z.bin"]  # not w.bin: the hook decides


@pytest.mark.parametrize(
    ("metadata", "wanted", "expected"),
    [
        ({"Sensor": "HM4"}, {"Sensor": "HM4"}, True),
        ({"Sensor": "HM4"}, {"Sensor": "HM2"}, False),
        ({"Sensor": "HM4"}, {"Sensor": ["HM2", "HM4"]}, True),
        ({"Sensor": "HM4"}, {"Sensor": "HM*"}, True),
        ({"Sensor": "HM4"}, {"Sensor": "hm4"}, True),
        ({"Sensor": "HM4"}, {"Sensor": "HM4", "Binning": "4"}, False),
        ({"Sensor": "HM4", "Binning": "4"}, {"Sensor": "HM4", "Binning": "4"}, True),
        ({"Binning": False}, {"Binning": False}, True),
        ({"Distance": 5}, {"Distance": 3}, False),
        ({"Distance": 5}, {"Distance": 5}, True),
        ({"Distance": 5}, {"Distance": ">=5"}, True),
        ({"_filter": "tv_HP7_A40_8SUM_12M"}, {"_filter": "*8SUM*"}, True),
        ({"_filter": "tv_HP7_A40_8SUM_12M"}, {"_filter": "hello"}, False),
        ({"_filter": "x"}, {"Distance": "*hello*"}, False),
        ({"_changed": True}, {"_changed": True}, True),
        ({"_changed": True}, {"_changed": False}, False),
    ],
)
def test_matching_as_qaboard(metadata, wanted, expected):
    # QA-Board 1.1.1's test_match expectations
    assert matches(metadata, wanted) is expected
