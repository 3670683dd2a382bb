"""Drawing the graph of batches of a plan: as text, Graphviz dot, Mermaid, or JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from qaflow.config.batches import Batch, Catalog
from qaflow.plan.graph import stable_order
from qaflow.plan.model import Plan


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    label: str  # the alias of `needs:`, and whether it is per input


@dataclass
class Graph:
    nodes: dict[str, int]  # batch (or pipeline step) -> number of runs, in plan order
    edges: list[Edge]


def graph(plan: Plan, catalog: Catalog) -> Graph:
    """Batches and the edges between them; a pipeline's `run:` steps are nodes of their own,
    chained to the batches of the steps around them."""
    counts = Counter(run.batch for run in plan.runs)
    out = Graph({}, [])
    for name in plan.batches:
        batch = catalog.batch(name) if name in catalog.names else None
        if batch is None or not batch.steps:
            out.nodes[name] = counts[name]
        if batch is None:
            continue
        for need in batch.needs:
            label = need.alias if need.alias != need.batch else ""
            out.edges.append(
                Edge(need.batch, name, f"{label} per input".strip() if need.per_input else label)
            )
        if batch.steps:
            _chain_steps(out, batch, catalog)
    return _sorted(out)


def _sorted(drawn: Graph) -> Graph:
    """Nodes in a topological order, ties in plan order."""
    needs: dict[str, list[str]] = {}
    for edge in drawn.edges:
        needs.setdefault(edge.downstream, []).append(edge.upstream)
    order = stable_order(list(drawn.nodes), needs)
    return Graph({name: drawn.nodes.get(name, 0) for name in order}, drawn.edges)


def _chain_steps(out: Graph, batch: Batch, catalog: Catalog) -> None:
    previous = [need.batch for need in batch.needs]
    for step in batch.steps:
        if step.command is not None:
            current = [f"{batch.name} step {step.index + 1}"]
            out.nodes[current[0]] = 1
        else:
            current = [str(member) for member in catalog.resolve(list(step.batches))]
        out.edges.extend(Edge(up, down, "") for up in previous for down in current)
        previous = current


def render(plan: Plan, catalog: Catalog, fmt: str = "text") -> str:
    drawn = graph(plan, catalog)
    if fmt == "dot":
        return _dot(drawn)
    if fmt == "mermaid":
        return _mermaid(drawn)
    if fmt == "json":
        return _json(plan, drawn)
    return _text(plan, drawn)


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"


def _text(plan: Plan, drawn: Graph) -> str:
    width = max((len(name) for name in drawn.nodes), default=0)
    lines = []
    for name, count in drawn.nodes.items():
        after = [
            e.upstream + (f" ({e.label})" if e.label else "")
            for e in drawn.edges
            if e.downstream == name
        ]
        line = f"{name:<{width}}  {_runs(count):>9}"
        lines.append(f"{line}  after {', '.join(after)}" if after else line)
    lines.append(
        f"{len(plan.batches)} batches, {_runs(len(plan.runs))}, {sum(len(v) for v in plan.edges.values())} edges between runs"
    )
    return "\n".join(lines)


def _json(plan: Plan, drawn: Graph) -> str:
    """{nodes: [{name, runs}], edges: [{from, to, label}], runs, run_edges}, nodes in a
    topological order."""
    return json.dumps(
        {
            "nodes": [{"name": name, "runs": count} for name, count in drawn.nodes.items()],
            "edges": [
                {"from": e.upstream, "to": e.downstream, "label": e.label} for e in drawn.edges
            ],
            "runs": len(plan.runs),
            "run_edges": sum(len(v) for v in plan.edges.values()),
        },
        indent=2,
    )


def _dot(drawn: Graph) -> str:
    lines = ["digraph qaflow {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for name, count in drawn.nodes.items():
        label = name + "\n" + _runs(count)
        lines.append(f"  {json.dumps(name)} [label={json.dumps(label)}];")
    for edge in drawn.edges:
        label = f" [label={json.dumps(edge.label)}]" if edge.label else ""
        lines.append(f"  {json.dumps(edge.upstream)} -> {json.dumps(edge.downstream)}{label};")
    lines.append("}")
    return "\n".join(lines)


def _mermaid(drawn: Graph) -> str:
    ids = {name: f"b{i}" for i, name in enumerate(drawn.nodes)}
    lines = ["flowchart LR"]
    for name, node in ids.items():
        lines.append(f'  {node}["{_escape(name)}<br/>{_runs(drawn.nodes[name])}"]')
    for edge in drawn.edges:
        arrow = f"-- {_escape(edge.label)} -->" if edge.label else "-->"
        lines.append(f"  {ids[edge.upstream]} {arrow} {ids[edge.downstream]}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace('"', "#quot;")
