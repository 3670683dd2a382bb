"""Random DAGs: `needs:` between up to 30 batches plan in a topological order, or fail with the cycle."""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_project
from qaflow.config.project import Project
from qaflow.errors import GraphError
from qaflow.plan.planner import plan


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    count = draw(st.integers(1, 30))
    names = [f"b{i}" for i in range(count)]
    cyclic = draw(st.booleans())
    needs = {}
    for i, name in enumerate(names):
        pool = names if cyclic else names[:i]  # edges only to earlier batches: acyclic
        needs[name] = draw(st.lists(st.sampled_from(pool), max_size=4, unique=True)) if pool else []
    return needs


@settings(max_examples=80, deadline=None)
@given(needs=dags(), target_index=st.integers(0, 29))
def test_random_dags_plan_in_topological_order_or_print_the_cycle(needs, target_index):
    names = list(needs)
    target = names[target_index % len(names)]
    spec = {
        name: {"inputs": ["x"], **({"needs": deps} if deps else {})} for name, deps in needs.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = write_project(Path(tmp), batches=yaml.safe_dump(spec), files=["x"])
        try:
            the_plan = plan(Project.load(root), [target])
        except GraphError as exc:
            cycle = re.search(r"cycle: (.+?)\. A batch", str(exc))
            assert cycle, str(exc)
            members = cycle.group(1).split(" -> ")
            assert members[0] == members[-1]
            for downstream, upstream in itertools.pairwise(members):
                assert upstream in needs[downstream]  # each printed step is a real edge
            return
    position = {run.batch: i for i, run in enumerate(the_plan.runs)}
    assert target in position
    for name in position:
        for upstream in needs[name]:
            assert position[upstream] < position[name]
            key, up_key = the_plan.runs[position[name]].key, the_plan.runs[position[upstream]].key
            assert up_key in the_plan.needs(key)
    # transitive closure: exactly the batches reachable from the target are planned
    reachable, todo = set(), [target]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(needs[name])
    assert set(position) == reachable
