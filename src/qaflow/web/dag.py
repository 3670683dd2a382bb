"""The graph of an execution's batches, laid out in layers for an SVG drawing.

A batch's layer is the length of the longest chain of batches it needs, so every edge goes
left to right; within a layer, batches are ordered by the mean position of what they need
(fewer crossings), ties in plan order. Pure: the page template draws what this returns.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from qaflow.results.present import words

WIDTH, HEIGHT = 240, 78  # a node's box
NAME_CHARS = 21  # of a batch name shown in its box (the whole name is its tooltip)
GAP_X, GAP_Y, MARGIN = 70, 22, 12
# the segments of a node's progress bar, in order, and the words they add up
_STEP = re.compile(r" step \d+$")
SEGMENTS = ("done", "cached", "running", "failed", "skipped", "cancelled", "interrupted")


@dataclass(frozen=True)
class Node:
    name: str  # a batch, or "BATCH step N" for a pipeline's `run:` step
    batch: str
    x: int
    y: int
    counts: dict[str, int]  # word (done, cached, running, failed…, waiting) -> runs; "total"
    state: str  # done, running, failed, waiting, partial or empty

    @property
    def bars(self) -> list[tuple[str, float, float]]:
        """(word, x offset, width) of the progress bar's segments, in px of the node."""
        total, out, at = self.counts["total"], [], 0.0
        for word in SEGMENTS:
            if total and self.counts[word]:
                width = (WIDTH - 20) * self.counts[word] / total
                out.append((word, at, width))
                at += width
        return out

    @property
    def summary(self) -> str:
        shown = [f"{self.counts[w]} {w}" for w in (*SEGMENTS, "waiting") if self.counts[w]]
        return ", ".join(shown) or "no runs"


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    path: str  # SVG path data


@dataclass(frozen=True)
class Drawing:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int

    node_width = WIDTH
    node_height = HEIGHT
    name_chars = NAME_CHARS

    @property
    def done(self) -> bool:
        return bool(self.nodes) and all(node.state in ("done", "empty") for node in self.nodes)


def state(counts: Mapping[str, int]) -> str:
    """One word for a batch, from the word counts of its runs."""
    total = counts["total"]
    if not total:
        return "empty"
    if counts["done"] + counts["cached"] == total:
        return "done"
    if counts["failed"]:
        return "failed"
    if counts["running"]:
        return "running"
    return "waiting" if counts["waiting"] == total else "partial"


def layers(batches: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Batch -> its layer (0 for a batch that needs nothing); `batches` in a topological order
    (plan order is one), batches named only by edges come first."""
    needs: dict[str, list[str]] = {}
    for up, down in edges:
        needs.setdefault(down, []).append(up)
    layer: dict[str, int] = {}

    def of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in layer:
            ups = [u for u in needs.get(name, ()) if u not in seen]  # a cycle cannot loop
            layer[name] = 1 + max((of(u, seen | {name}) for u in ups), default=-1)
        return layer[name]

    for name in batches:
        of(name)
    return layer


def draw(
    counts: Mapping[str, Mapping[str, int]],
    edges: Sequence[tuple[str, str]],
    batches: Collection[str] = (),
) -> Drawing:
    """Lay out the nodes (`counts`: node -> run status -> runs, in plan order); `batches`:
    the real batches, the others being pipeline steps ("BATCH step N")."""
    names = list(counts)
    edges = [(u, d) for u, d in edges if u in counts and d in counts]
    layer = layers(names, edges)
    columns: dict[int, list[str]] = {}
    row: dict[str, float] = {}
    for column in range(max(layer.values(), default=-1) + 1):
        members = [n for n in names if layer[n] == column]
        members.sort(key=lambda n: _mean([row[u] for u, d in edges if d == n and u in row]))
        columns[column] = members
        row.update({name: float(i) for i, name in enumerate(members)})
    tallest = max((len(members) for members in columns.values()), default=0)
    height = 2 * MARGIN + tallest * HEIGHT + max(0, tallest - 1) * GAP_Y
    position: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        used = len(members) * HEIGHT + (len(members) - 1) * GAP_Y
        top = (height - used) // 2
        for i, name in enumerate(members):
            position[name] = (MARGIN + column * (WIDTH + GAP_X), top + i * (HEIGHT + GAP_Y))
    nodes = []
    for name in names:
        shown = words(dict(counts[name]))
        batch = name if name in batches else _STEP.sub("", name)
        nodes.append(Node(name, batch, *position[name], shown, state(shown)))
    width = 2 * MARGIN + len(columns) * WIDTH + max(0, len(columns) - 1) * GAP_X
    drawn = [Edge(u, d, _curve(position[u], position[d])) for u, d in edges]
    return Drawing(nodes, drawn, width, height)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else -1.0


def _curve(start: tuple[int, int], end: tuple[int, int]) -> str:
    x0, y0 = start[0] + WIDTH, start[1] + HEIGHT // 2
    x1, y1 = end[0] - 4, end[1] + HEIGHT // 2
    bend = (x1 - x0) / 2
    return f"M{x0},{y0} C{x0 + bend},{y0} {x1 - bend},{y1} {x1},{y1}"
