"""The types planning hands on: `PlanOptions` in, `RunSpec`s and the `Plan` out.

Every planning module (expand, link, pipeline, reuse, planner) and every phase after planning
imports these from here, so no helper imports its orchestrator (`planner`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qaflow.config.batches import Batch
from qaflow.worker.rundir import Committed

SINGLE_RUN_BATCH = "@run"
PRODUCED = "out:"  # an upstream token: the digest of what the upstream run produced
PENDING = "run:"  # an upstream token: the fingerprint of an upstream run with no result yet


@dataclass(frozen=True)
class PlanOptions:
    """What the command line adds to the batch files."""

    configs: tuple[Any, ...] | None = None  # --config: the default configurations
    platform: str | None = None
    database: Path | None = None
    type: str | None = None
    label: str = "default"
    extra_parameters: dict[str, Any] = field(default_factory=dict)  # --tuning
    # the batches extra_parameters apply to; None: every planned batch (`qa --tuning`). `qa
    # optimize` tunes its targets only, so the batches they need stay cached across trials
    tuned_batches: tuple[str, ...] | None = None

    def tuning_of(self, batch: str) -> dict[str, Any]:
        """The extra parameters (--tuning) the runs of `batch` get."""
        if self.tuned_batches is None or batch in self.tuned_batches:
            return self.extra_parameters
        return {}

    # False: QA-Board's --no-postprocess. Results without postprocess are other results
    # (another fingerprint kind), so a run with postprocess never reuses them
    postprocess: bool = True

    # the team cache (`plan.teamcache`): shared storages whose results local runs reuse
    shared_roots: tuple[str, ...] = ()
    # QA-Board's --tuning-search: each point's parameters go over extra_parameters; the
    # batches are planned once per point (`config.tuning_search`). Empty: no search
    searched: tuple[dict[str, Any], ...] = ()

    def points(self) -> list[PlanOptions]:
        """The options of each point of the parameter search (these options if none)."""
        if not self.searched:
            return [self]
        # a point listed twice is planned once: its runs would be the same runs
        unique = {json.dumps(p, sort_keys=True, default=str): p for p in self.searched}
        return [
            replace(self, extra_parameters={**self.extra_parameters, **point}, searched=())
            for point in unique.values()
        ]


@dataclass(frozen=True)
class RunSpec:
    """One planned run: what to run it on, with what, and where its outputs go."""

    batch: str
    batch_file: Path | None
    input_path: Path | None
    rel_input_path: str | None
    database: Path
    type: str
    configurations: tuple[Any, ...]
    params: dict[str, Any]
    platform: str
    matrix: dict[str, Any]
    output_dir: Path
    key: str
    command: str | None = None  # script batches and pipeline `run:` steps
    deferred: bool = False  # its configurations read upstream metrics: evaluated when it starts
    fingerprint: str | None = None  # what decides reuse (see cache.py); addresses output_dir
    parts: dict[str, Any] | None = None  # what the fingerprint is made of, for `qa why`
    upstream: tuple[str, ...] = ()  # keys of the runs whose outputs its fingerprint covers
    extra_parameters: dict[str, Any] | None = None  # --tuning, forwarded args: params, last

    def evolve(self, **changes: Any) -> RunSpec:
        """`dataclasses.replace` for planning's hot paths (calls per planned run): copies the
        instance's fields instead of running `__init__` again (RunSpec has no __post_init__)."""
        new = object.__new__(RunSpec)
        new.__dict__.update(self.__dict__, **changes)
        return new

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by `qa batch --list`."""
        data: dict[str, Any] = {
            "batch": self.batch,
            "batch_file": None if self.batch_file is None else str(self.batch_file),
            "input_path": None if self.input_path is None else str(self.input_path),
            "rel_input_path": self.rel_input_path,
            "database": str(self.database),
            "type": self.type,
            "configurations": list(self.configurations),
            "configs": list(self.configurations),
            "params": self.params,
            "platform": self.platform,
            "matrix": self.matrix,
            "output_dir": str(self.output_dir),
            "id": self.key,
            "fingerprint": self.fingerprint,
        }
        if self.command is not None:
            data["command"] = self.command
        if self.deferred:
            data["deferred"] = True
        return data


@dataclass(frozen=True)
class BatchSettings:
    """How the runs of one batch execute."""

    timeout: float | None = None  # seconds
    retries: int = 0
    cpus: int = 1
    concurrency: int | None = None  # `local: {concurrency: N}`: at most N of its runs at once
    resources: dict[str, Any] = field(default_factory=dict)  # as written: cpus, gpus, memory…
    # QA-Board: a batch's `local:`, `lsf:`, `dask:`… sections, by runner: `context.job_options`
    job_options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """Every run to execute, in a stable topological order, with the edges between them."""

    runs: list[RunSpec]
    batches: list[str]  # every batch planned, each after those it needs
    settings: dict[str, BatchSettings] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)  # run key -> what its expressions name
    edges: dict[str, frozenset[str]] = field(default_factory=dict)  # run key -> keys it needs
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # run key -> extra environment
    previous_files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # pipelines
    graph: dict[str, list[str]] = field(default_factory=dict)  # batch -> batches it needs
    targets: list[str] = field(default_factory=list)  # the batches asked for
    committed: dict[str, Committed] = field(default_factory=dict)  # results read when planning

    def waits(self, run: RunSpec) -> bool:
        """Whether the run's fingerprint is provisional: an upstream run has no result yet,
        so its fingerprint is known once that run has produced its outputs."""
        return any(token.startswith(PENDING) for token in (run.parts or {}).get("upstream", ()))

    def needs(self, key: str) -> frozenset[str]:
        return self.edges.get(key, frozenset())

    def describe(self, run: RunSpec) -> dict[str, Any]:
        """A run as `--list` shows it: its spec, what it needs, its extra environment (as JSON,
        `listing.to_json` writes it)."""
        data = run.to_dict()
        if run.key in self.edges:
            data["needs"] = sorted(self.edges[run.key])
        if run.key in self.env:
            data["env"] = self.env[run.key]
        return data


@dataclass(frozen=True)
class Link:
    """What a run needs, by the names its expressions use (kept to resolve it again at run time)."""

    batch: Batch
    groups: dict[str, tuple[str, ...]]  # alias -> keys of the runs it names
    previous: tuple[str, ...] | None = None  # pipelines: the runs of the previous step
    command: str | None = None  # pipelines: the `run:` step, as written
    configurations: tuple[Any, ...] | None = None  # as written: resolved again when it starts

    @property
    def needs(self) -> frozenset[str]:
        keys = {key for group in self.groups.values() for key in group}
        return frozenset(keys | set(self.previous or ()))


def merge_params(configs: tuple[Any, ...]) -> dict[str, Any]:
    """QA-Board's `context.params`: the deep merge of the dict configurations, later ones win."""
    params: dict[str, Any] = {}
    for config in configs:
        if isinstance(config, dict):
            _deep_merge(params, config)
    return params


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
