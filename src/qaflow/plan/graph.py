"""The graph between batches (`needs:`, pipeline steps) and how runs see the runs they need.

Policy
- `batch_order` lists the batches to plan: the ones asked for and, transitively, what they
  need and what their pipeline steps name, every batch after the batches it needs, each
  once, in a stable order (depth-first, in the order written). An unknown name is a
  GraphError with a did-you-mean; a cycle is a GraphError that prints the cycle.
- In expressions, `needs[x]` (alias `depends[x]`, or the bare alias `x`) is a `RunList`: the
  runs of batch x, or with `per: input` only those with the same input. On a list of exactly
  one run, attributes read through to that run (`depends[calibration].output_directory`).
- `RunView.metrics` exists only once the upstream run has finished: while planning, reading
  it raises `Deferred` (`qaflow.config.passes`), and the expression is evaluated again
  when the run starts.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from qaflow.config import yamlfile
from qaflow.config.batches import Catalog, FolderTarget, near_misses
from qaflow.errors import GraphError


def batch_order(catalog: Catalog, names: list[str]) -> list[str]:
    """`names` and everything they need, each batch after what it needs."""
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name) :], name))
            raise GraphError(
                f"The batches' `needs` form a cycle: {cycle}. A batch cannot need itself, even indirectly; remove one of these needs."
            )
        for upstream in _upstream_names(catalog, name):
            visit(upstream, (*stack, name))
        done.add(name)
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def _upstream_names(catalog: Catalog, name: str) -> list[str]:
    batch = catalog.batch(name)
    out = []
    for need in batch.needs:
        _check_known(catalog, need.batch, name, ("needs",))
        out.append(need.batch)
    for step in batch.steps:
        for target in catalog.resolve(list(step.batches)):
            if isinstance(target, FolderTarget):
                raise GraphError(
                    f"{yamlfile.where(batch.file, (batch.yaml_key, 'configs', step.index))}: pipeline {name!r}: step {step.index + 1} names {target.location!r}, which is not a batch."
                )
            out.append(target)
    return out


def _check_known(catalog: Catalog, needed: str, by: str, field: tuple[str, ...]) -> None:
    if needed in catalog.names:
        return
    batch = catalog.batch(by)
    hint = near_misses(needed, catalog.names)
    where = yamlfile.where(batch.file, (batch.yaml_key, *field))
    raise GraphError(
        f"{where}: batch {by!r}: `needs` names {needed!r}, which is not a batch of the batch files.{hint}"
    )


def stable_order(nodes: list[str], needs: Mapping[str, Iterable[str]]) -> list[str]:
    """`nodes` in a topological order of `needs` (node -> what it comes after) that keeps the
    given order wherever the edges allow: Kahn's algorithm, taking ready nodes in that order."""
    position = {node: i for i, node in enumerate(nodes)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(dict.fromkeys(nodes, ()))
    for node, upstream in needs.items():
        sorter.add(node, *upstream)
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda node: position.get(node, len(position)))
        order.extend(ready)
        sorter.done(*ready)
    return order


class RunView:
    """What an expression sees of one run: its paths, configurations, and (once done) metrics."""

    def __init__(self, spec: Any, metrics: Callable[[], dict[str, Any]]) -> None:
        self._spec = spec
        self._metrics = metrics

    @property
    def output_dir(self) -> Path:
        return Path(self._spec.output_dir)

    output_directory = output_dir

    @property
    def input_path(self) -> Path | None:
        return self._spec.input_path

    @property
    def rel_input_path(self) -> str | None:
        return self._spec.rel_input_path

    @property
    def configs(self) -> list[Any]:
        return list(self._spec.configurations)

    configurations = configs

    @property
    def params(self) -> dict[str, Any]:
        return self._spec.params

    @property
    def batch(self) -> str:
        return str(self._spec.batch)

    @property
    def platform(self) -> str:
        return str(self._spec.platform)

    @property
    def metrics(self) -> dict[str, Any]:
        return self._metrics()

    def __str__(self) -> str:
        return str(self._spec.output_dir)


class RunList(list[RunView]):
    """The runs of a needed batch. With exactly one run, attributes read through to it."""

    def __init__(self, batch: str, views: list[RunView]) -> None:
        super().__init__(views)
        self.batch = batch

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or len(self) != 1:
            kind = "no run" if not self else f"{len(self)} runs"
            raise AttributeError(
                f"{name} (batch {self.batch!r} has {kind}: use a comprehension, e.g. [o.{name} for o in needs[{self.batch!r}]])"
            )
        return getattr(self[0], name)

    def __str__(self) -> str:
        return " ".join(str(view) for view in self)


def namespace(needed: Mapping[str, RunList]) -> dict[str, Any]:
    """Names for expressions: `needs`/`depends` (by alias and by batch name) and bare aliases."""
    by_name: dict[str, RunList] = {}
    for alias, runs in needed.items():
        by_name.setdefault(alias, runs)
        by_name.setdefault(runs.batch, runs)
    names: dict[str, Any] = {"needs": by_name, "depends": by_name}
    names.update({alias: runs for alias, runs in needed.items() if alias.isidentifier()})
    return names
