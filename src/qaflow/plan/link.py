"""Linking each run to the runs it needs: the edges of the run graph, and `needs` in expressions.

Policy
- A run of a batch with `needs: {x: b}` needs every run of batch b; with
  `needs: {x: {batch: b, per: input}}` only b's runs with the same input, so the run can
  start as soon as those are done. A per-input need with no run of b for some input is an
  error before anything runs.
- Expressions are evaluated in passes (`qaflow.config.passes` says which names each may
  use): `expand` does the matrix; here, per run, the linking pass does the rest
  (`needs`/`depends`, aliases, `input_path`, `output_dir`, `previous`). Upstream output
  directories are known when planning, so `qa batch --list` shows the values. An
  expression that reads an upstream run's `metrics` is kept as written and the run is
  marked `deferred`: `resolve` runs again when it starts, with the upstream results.
- Script batches and pipeline `run:` steps get their command here: their configurations
  (shell commands) joined into one `set -e` script.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qaflow.config import passes
from qaflow.config.batches import Batch, Need
from qaflow.config.passes import Deferred
from qaflow.config.project import flatten
from qaflow.errors import GraphError, InterpolationError
from qaflow.plan.expand import PIPELINE, SCRIPT, config_error
from qaflow.plan.graph import RunList, RunView, namespace
from qaflow.plan.model import Link, RunSpec, merge_params

Metrics = Callable[["RunSpec"], dict[str, Any]]


def later_names(batch: Batch) -> frozenset[str]:
    """Names that `expand`'s matrix pass must leave for `resolve`."""
    return passes.later_names(need.alias for need in batch.needs)


class Linker:
    """Finds the upstream runs of each run, with an index by input for `per: input` needs."""

    def __init__(self, planned: Mapping[str, list[RunSpec]]) -> None:
        self.planned = planned
        self._by_input: dict[str, dict[str, list[RunSpec]]] = {}

    def groups(self, batch: Batch, run: RunSpec) -> dict[str, tuple[str, ...]]:
        return {
            need.alias: tuple(r.key for r in self._upstream(batch, need, run))
            for need in batch.needs
        }

    def _upstream(self, batch: Batch, need: Need, run: RunSpec) -> list[RunSpec]:
        runs = self.planned[need.batch]
        if not need.per_input:
            return runs
        index = self._index(need.batch)
        same = index.get(str(run.input_path), [])
        if not same:
            raise GraphError(
                f"{batch.file}: batch {batch.name!r}: `needs.{need.alias}` is `per: input`, but batch "
                f"{need.batch!r} has no run on the input {run.rel_input_path or '(none)'!r} "
                f"({len(index)} input(s) there). Give both batches the same inputs, or drop `per: input`."
            )
        return same

    def _index(self, batch: str) -> dict[str, list[RunSpec]]:
        if batch not in self._by_input:
            index: dict[str, list[RunSpec]] = {}
            for run in self.planned[batch]:
                index.setdefault(str(run.input_path), []).append(run)
            self._by_input[batch] = index
        return self._by_input[batch]


def resolve(
    run: RunSpec, link: Link, by_key: Mapping[str, RunSpec], metrics: Metrics | None
) -> RunSpec:
    """The run with its expressions evaluated and its command built. With `metrics` None
    (planning), an expression reading upstream metrics leaves the run `deferred`."""
    source = (link.command,) if link.command is not None else run.configurations
    try:
        configs = tuple(flatten(_at_linking(source, run, link, by_key, metrics)))
    except Deferred:
        return run.evolve(deferred=True)
    except InterpolationError as exc:
        raise InterpolationError(config_error(link.batch, exc, bool(run.matrix))) from None
    if link.command is not None:
        return run.evolve(command=str(configs[0]), deferred=False)
    command = script(configs) if link.batch.type == SCRIPT else None
    extra = run.extra_parameters  # QA-Board: extra parameters are merged into params last
    params = merge_params((*configs, extra) if extra else configs)
    return run.evolve(configurations=configs, params=params, command=command, deferred=False)


def script(configs: tuple[Any, ...]) -> str:
    """A script batch's configurations as one shell script: its commands in order, stopping at
    the first that fails."""
    commands = [c for c in configs if isinstance(c, str)]
    return "set -e\n" + "\n".join(commands)


def _at_linking(
    source: tuple[Any, ...],
    run: RunSpec,
    link: Link,
    by_key: Mapping[str, RunSpec],
    metrics: Metrics | None,
) -> list[Any]:
    """The linking pass (`config.passes.at_linking`) on the run's configurations or command."""

    def view(key: str) -> RunView:
        upstream = by_key[key]
        return RunView(upstream, (lambda: metrics(upstream)) if metrics else _deferred(upstream))

    needed = {
        alias: RunList(_batch_of(link, alias), [view(k) for k in keys])
        for alias, keys in link.groups.items()
    }
    previous = link.previous
    return passes.at_linking(
        source,
        upstream=namespace(needed),
        input_path=run.input_path,
        rel_input_path=run.rel_input_path,
        output_dir=run.output_dir,
        matrix=run.matrix,
        previous=None if previous is None else RunList("previous", [view(k) for k in previous]),
        commands=link.batch.type in (SCRIPT, PIPELINE),
    )


def _batch_of(link: Link, alias: str) -> str:
    return next(need.batch for need in link.batch.needs if need.alias == alias)


def _deferred(run: RunSpec) -> Callable[[], dict[str, Any]]:
    def metrics() -> dict[str, Any]:
        raise Deferred(
            f"the metrics of {run.batch} {run.rel_input_path or ''} are known once it has run"
        )

    return metrics
