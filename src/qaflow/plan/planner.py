"""Planning: from batch names to the graph of runs to execute, with no execution at all.

`plan()` resolves the names (aliases, wildcards, folders), orders the batches so that every
batch comes after what it `needs` (`graph.batch_order`), expands each batch into runs
(`expand`), links each run to the runs it needs and evaluates its expressions (`link`), and
compiles pipelines (`pipeline`). The result, a `Plan`, is plain data: the runs in a stable
order, the edges between them, and what each run needs at run time.

Invariants: every batch is planned once, even when several batches need it; a run's needs
are runs of the plan; the order of `runs` is a topological order of the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from qaflow.config import validated
from qaflow.config.batches import Batch, Catalog, FolderTarget
from qaflow.config.checks import check_type_option, too_many_runs
from qaflow.config.project import HOST, Project
from qaflow.config.templates import has_templates
from qaflow.errors import BatchSpecError
from qaflow.plan.expand import (
    PIPELINE,
    SCRIPT,
    Context,
    default_configs,
    expand_batch,
    expand_folder,
    input_cache,
    runs_of,
)
from qaflow.plan.graph import batch_order, stable_order
from qaflow.plan.inputs import FoundInput
from qaflow.plan.link import Linker, later_names, resolve
from qaflow.plan.model import (
    SINGLE_RUN_BATCH,
    BatchSettings,
    Link,
    Plan,
    PlanOptions,
    RunSpec,
)
from qaflow.plan.pipeline import compile_pipeline
from qaflow.plan.reuse import Fingerprints, entrypoint_kind
from qaflow.plan.teamcache import from_shared


def plan(
    project: Project,
    targets: list[str],
    options: PlanOptions | None = None,
    *,
    catalog: Catalog | None = None,
    persist: bool = False,
    check: Callable[[Plan], object] | None = None,
) -> Plan:
    """Plan the runs of the batches (or aliases, wildcards, folders) named by `targets`, and of
    everything they need. `persist`: keep what was learnt (input hashes) on disk, for a plan
    about to execute; other plans change nothing on disk. `check(plan)` is called before
    anything is kept: if it raises, nothing is written."""
    options = options or PlanOptions()
    check_type_option(project, options.type)
    if catalog is None:  # as QA-Board, --database is where folder targets are looked up too
        located = project
        if options.database is not None and options.type is None:
            located = replace(project, database=options.database)
        catalog = Catalog.load(located)
    if not targets:
        raise BatchSpecError(
            f"No batch given. Name one of: {', '.join(catalog.names[:20]) or '(no batch is defined)'}."
        )
    builder = _Builder(project, catalog, options, persist=persist)
    try:
        for point in options.points():  # QA-Board's --tuning-search: the DAG once per point
            builder.start(point)
            _add_targets(builder, catalog, targets)
        the_plan = builder.build()
        if check is not None:
            check(the_plan)
        builder.fingerprints.save()
        if persist:
            validated.flush()  # the files' validations, kept for the next process
    finally:
        builder.fingerprints.close()
    return the_plan


def _add_targets(builder: _Builder, catalog: Catalog, targets: list[str]) -> None:
    for target in catalog.resolve(targets):
        if isinstance(target, FolderTarget):
            builder.add_folder(target)
        else:
            for name in batch_order(catalog, [target]):
                builder.add_batch(catalog.batch(name))
            builder.targets.append(target)


class _Builder:
    """The plan being built, batch by batch (each after the batches it needs)."""

    def __init__(
        self, project: Project, catalog: Catalog, options: PlanOptions, *, persist: bool = False
    ) -> None:
        self.project, self.catalog, self.options = project, catalog, options
        self.fingerprints = Fingerprints(project, kind=entrypoint_kind(options), persist=persist)
        self.find = input_cache()
        self.runs: list[RunSpec] = []
        self.by_key: dict[str, RunSpec] = {}
        self.planned: dict[str, list[RunSpec]] = {}
        self.linker = Linker(self.planned)
        self.links: dict[str, Link] = {}
        self.extra: dict[str, set[str]] = {}
        self.env: dict[str, dict[str, str]] = {}
        self.previous_files: dict[str, tuple[str, ...]] = {}
        self.settings: dict[str, BatchSettings] = {}
        self.graph: dict[str, list[str]] = {}
        self.targets: list[str] = []
        self.batch_names: dict[str, None] = {}  # every batch planned, over every search point

    def start(self, options: PlanOptions) -> None:
        """Plan the next point of a parameter search: every batch again, with its options."""
        self.batch_names.update(dict.fromkeys(self.planned))
        self.options, self.planned = options, {}
        self.linker = Linker(self.planned)

    def add_batch(self, batch: Batch) -> None:
        if batch.name in self.planned:
            return
        self.settings[batch.name] = _settings(batch)
        self.graph[batch.name] = [need.batch for need in batch.needs] + [
            str(n) for s in batch.steps for n in self.catalog.resolve(list(s.batches))
        ]
        if batch.type == PIPELINE:
            self._add_pipeline(batch)
            return
        raw: dict[str, RunSpec] = {}
        known: dict[str, RunSpec] = {}  # planned for an earlier point of a tuning search
        for run in expand_batch(
            self.project, batch, self.options, self.find, later=later_names(batch)
        ):
            if run.key in self.by_key:
                known.setdefault(run.key, self.by_key[run.key])
            else:  # the same input and configs listed twice is one run
                raw.setdefault(run.key, run)
                if len(raw) + len(self.runs) > self.project.max_runs:
                    raise too_many_runs(self.project, batch.name)
        ups: list[tuple[str, ...]]
        upstream: list[Sequence[str]]
        if batch.needs:
            groups = [self.linker.groups(batch, run) for run in raw.values()]
            ups = [tuple(key for keys in group.values() for key in keys) for group in groups]
            token, by_key = self.fingerprints.token, self.by_key
            upstream = [[token(by_key[key]) for key in keys] for keys in ups]
        else:  # a batch that needs none (the common case): no upstream to look up per run
            groups = [{} for _ in raw]
            ups = [()] * len(raw)
            upstream = [()] * len(raw)
        runs = []
        templated: dict[int, bool] = {}  # runs of one matrix point share their configurations
        for run, group, keys in zip(
            self.fingerprints.assign(batch, list(raw.values()), upstream), groups, ups, strict=True
        ):
            run = from_shared(run, self.project.storage, self.options.shared_roots)
            configs = id(run.configurations)
            if configs not in templated:
                templated[configs] = has_templates(list(run.configurations))
            if keys:
                run = run.evolve(upstream=keys)
            if batch.needs or batch.type == SCRIPT or templated[configs]:
                link = Link(batch, group, configurations=run.configurations)
                run = resolve(run, link, self.by_key, None)
                self.links[run.key] = link
            self._add_run(run)
            runs.append(run)
        self.planned[batch.name] = [*known.values(), *runs]

    def _add_pipeline(self, batch: Batch) -> None:
        compiled = compile_pipeline(
            self.project,
            batch,
            self.options,
            self.catalog,
            self.planned,
            self.by_key,
            self.fingerprints,
        )
        for run in compiled.runs:
            if run.key not in self.by_key:  # else planned for an earlier search point
                self._add_run(run)
        self.planned[batch.name] = compiled.runs
        self.links.update(compiled.links)
        self.env.update(compiled.env)
        self.previous_files.update(compiled.previous_files)
        for key, keys in compiled.edges.items():
            self.extra.setdefault(key, set()).update(keys)

    def _add_run(self, run: RunSpec) -> None:
        if len(self.runs) >= self.project.max_runs:
            raise too_many_runs(self.project, run.batch)
        self.runs.append(run)
        self.by_key[run.key] = run

    def add_folder(self, target: FolderTarget) -> None:
        if target.location in self.planned:
            return
        self.settings[target.location] = BatchSettings()
        self.graph[target.location] = []
        self.targets.append(target.location)
        found = [
            run
            for run in expand_folder(self.project, target, self.options, self.find)
            if run.key not in self.by_key
        ]
        # each run its own fingerprint and directory, as for a named batch
        runs = self.fingerprints.assign(None, found, [[] for _ in found])
        for run in runs:
            self._add_run(run)
        self.planned[target.location] = runs

    def build(self) -> Plan:
        committed = self.fingerprints.committed
        edges = {}
        for run in self.runs:
            link = self.links.get(run.key)
            needs = (link.needs if link else frozenset()) | self.extra.get(run.key, set())
            if needs:
                edges[run.key] = frozenset(needs)
        order = _topological(self.runs, edges)
        return Plan(
            runs=order,
            batches=list({**self.batch_names, **dict.fromkeys(self.planned)}),
            settings=self.settings,
            links=self.links,
            edges=edges,
            env=self.env,
            previous_files=self.previous_files,
            graph=self.graph,
            targets=list(dict.fromkeys(self.targets)),
            committed=committed,
        )


def _topological(runs: list[RunSpec], edges: dict[str, frozenset[str]]) -> list[RunSpec]:
    """The runs in plan order, except that a run comes after the runs it needs (pipelines add
    edges to batches planned before them)."""
    position = {run.key: i for i, run in enumerate(runs)}
    if all(position[n] < position[k] for k, needs in edges.items() for n in needs):
        return runs
    by_key = {run.key: run for run in runs}
    return [by_key[key] for key in stable_order(list(by_key), edges)]


def _settings(batch: Batch) -> BatchSettings:
    cpus = batch.resources.get("cpus", 1)
    return BatchSettings(
        timeout=batch.timeout,
        retries=batch.retries,
        cpus=max(1, int(cpus)) if isinstance(cpus, int | float) else 1,
        concurrency=batch.local_concurrency
        if batch.local_concurrency and batch.local_concurrency > 0
        else None,
        resources=dict(batch.resources),
        job_options={k: v for k, v in batch.runner_options.items() if isinstance(v, dict)},
    )


def plan_single(
    project: Project,
    location: str,
    options: PlanOptions | None = None,
    *,
    command: str | None = None,
    check: Callable[[Plan], object] | None = None,
) -> Plan:
    """The one run of `qa run -i LOCATION`: that exact path (no glob expansion), default configs.
    `check(plan)` is called before the input's hash is kept: if it raises, nothing is written."""
    options = options or PlanOptions()
    check_type_option(project, options.type)
    itype = project.input_type(options.type)
    database = options.database if options.database is not None else itype.database
    path = Path(location) if Path(location).is_absolute() else database / location
    if not path.exists():
        raise BatchSpecError(
            f"Input {location!r} does not exist: there is no {str(path)!r}. Give a path relative to the database {str(database)!r}, or an absolute path."
        )
    if not path.is_relative_to(database):
        database = Path(path.anchor)
    context = Context(
        batch=SINGLE_RUN_BATCH,
        batch_file=None,
        type=itype.name,
        database=database,
        globs=(),
        use_parent_folder=False,
        platform=options.platform or HOST,
        configs=default_configs(project, options),
        matrix={},
        has_matrix=False,
    )
    found: list[FoundInput | None] = [FoundInput.under(path, database)]
    kind = entrypoint_kind(options) if command is None else "command"
    fingerprints = Fingerprints(project, kind=kind, persist=True)
    try:
        planned = runs_of(
            project, context, found, context.configs, itype.name, context.platform, options
        )
        runs = fingerprints.assign(None, [replace(run, command=command) for run in planned], [[]])
        the_plan = Plan(
            runs=runs,
            batches=[SINGLE_RUN_BATCH],
            settings={SINGLE_RUN_BATCH: BatchSettings()},
            graph={SINGLE_RUN_BATCH: []},
            targets=[SINGLE_RUN_BATCH],
        )
        if check is not None:
            check(the_plan)
            validated.flush()
        fingerprints.save()
    finally:
        fingerprints.close()
    return the_plan
