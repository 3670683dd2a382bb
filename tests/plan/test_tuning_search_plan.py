"""Planning a QA-Board tuning search: the batches once per point, each point's DAG on its own."""

from __future__ import annotations

from qaflow.config.project import Project
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan

BATCHES = """
up: {inputs: [a, b]}
down:
  needs: {up: {batch: up, per: input}}
  inputs: [a, b]
  configs: ["${needs['up'].output_dir}"]
"""


def test_each_points_runs_need_the_upstream_runs_of_that_point(project):
    root = project(batches=BATCHES, files=["a", "b"])
    points = ({"t": 1}, {"t": 2}, {"t": 1})  # a point listed twice is planned once
    the_plan = plan(Project.load(root), ["down"], PlanOptions(searched=points))
    by_key = {run.key: run for run in the_plan.runs}
    assert len(the_plan.runs) == 8 and the_plan.batches == ["up", "down"]
    downs = [run for run in the_plan.runs if run.batch == "down"]
    for run in downs:
        [need] = the_plan.needs(run.key)
        upstream = by_key[need]
        assert upstream.params["t"] == run.params["t"]
        assert upstream.rel_input_path == run.rel_input_path
    assert sorted((r.params["t"], r.rel_input_path) for r in downs) == [
        (1, "a"), (1, "b"), (2, "a"), (2, "b"),
    ]  # fmt: skip
    positions = {run.key: i for i, run in enumerate(the_plan.runs)}
    assert all(positions[n] < positions[k] for k, needs in the_plan.edges.items() for n in needs)


def test_an_untuned_upstream_is_planned_once_and_needed_by_every_point(project):
    root = project(batches=BATCHES, files=["a", "b"])
    options = PlanOptions(searched=({"t": 1}, {"t": 2}), tuned_batches=("down",))
    the_plan = plan(Project.load(root), ["down"], options)
    ups = [run for run in the_plan.runs if run.batch == "up"]
    downs = [run for run in the_plan.runs if run.batch == "down"]
    assert len(ups) == 2 and len(downs) == 4
    assert all(len(the_plan.needs(run.key)) == 1 for run in downs)
    assert {n for run in downs for n in the_plan.needs(run.key)} == {run.key for run in ups}


def test_no_search_plans_as_before(project):
    root = project(batches=BATCHES, files=["a", "b"])
    plain = plan(Project.load(root), ["down"], PlanOptions())
    single = plan(Project.load(root), ["down"], PlanOptions(searched=({},)))
    assert [r.key for r in plain.runs] == [r.key for r in single.runs]
