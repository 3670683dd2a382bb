"""Caching: the fingerprint of every planned run, and which runs can reuse an existing result.

Policy
- A run's fingerprint (`fingerprint.parts_dict`) covers its kind, its configurations and
  params as planned, the platform, its input's content, the code version (the `deps:`
  files of the batch or project, else the git commit and uncommitted changes, batch files
  excluded) and what the runs it needs *produced* (early cutoff): the digest of their
  committed result (manifest and metrics, `rundir.result_digest`), never their
  fingerprints or directories. Its output directory is addressed by it: a new fingerprint
  never overwrites another's results.
- An upstream run with no result yet gives a `PENDING` token instead: the downstream
  fingerprint is provisional, and is made final when the upstream run has produced its
  outputs (`qaflow.execution.prepare`). If it produced the same outputs as before, the
  downstream fingerprint is the one of the result already committed, which is reused.
- A run is reused (CACHED) when its committed result is verified (`rundir.read_result`:
  metrics.json says it did not fail, the manifest's files are present). Settled before
  anything runs: the runs whose upstream runs are reused too. The others are decided when
  their upstream has run, under the lock of their fingerprint (`qaflow.worker.execute`).
  This holds across labels, executions and commits, and after a crash.
- `--force` executes every run; `--force-batch NAME` the runs of that batch; the runs that
  need them execute only if what those produce changes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qaflow.config.batches import Batch
from qaflow.config.project import Project
from qaflow.errors import BatchSpecError, ConfigError
from qaflow.plan.expand import PIPELINE, SCRIPT, rel_dir
from qaflow.plan.fingerprint import InputHashes, code_version, fingerprint_of, hash_json, parts_dict
from qaflow.plan.memo import ByObject
from qaflow.plan.model import PENDING, PRODUCED, Plan, PlanOptions, RunSpec
from qaflow.worker.model import RunResult
from qaflow.worker.rundir import Committed, read_result, reused


def entrypoint_kind(options: PlanOptions) -> str:
    """The fingerprint kind of the runs of the entrypoint: with --no-postprocess, a result
    without postprocess(), which a run with it must not reuse."""
    return "entrypoint" if options.postprocess else "entrypoint without postprocess"


def without_postprocess(spec: RunSpec) -> str | None:
    """Where the same run's --no-postprocess result would be (its own fingerprint), for
    QA-Board's two steps `qa batch --no-postprocess`, then `--action-on-existing
    postprocess`; None for a run that is not of the entrypoint with postprocess."""
    if not spec.parts or spec.parts.get("kind") != "entrypoint":
        return None
    other = fingerprint_of({**spec.parts, "kind": entrypoint_kind(PlanOptions(postprocess=False))})
    return str(spec.output_dir.parent / other[:12])


class Fingerprints:
    """Computes the fingerprints of a plan's runs (input hashes cached on disk, code versions
    cached per `deps`)."""

    def __init__(
        self, project: Project, *, kind: str = "entrypoint", persist: bool = False
    ) -> None:
        self.project = project
        self.kind = kind
        self.persist = persist  # keep the input hashes on disk (only for plans that execute)
        self._path = project.storage / ".qaflow" / "inputs.sqlite"
        self._inputs: InputHashes | None = None
        self._code: dict[tuple[str, ...], str] = {}
        self._input_hash: dict[Path, str] = {}  # input path -> content hash, for this plan
        self._hashed = ByObject(hash_json)  # the runs of a batch share their configurations
        self._exclude = [project.config_path, *project.batch_files()]
        self.committed: dict[str, Committed] = {}  # run key -> its verified committed result
        self._read: set[str] = set()  # keys whose result was looked for
        self._completions: dict[tuple[int, str | None, int], tuple[Any, Any, tuple[Any, ...]]] = {}
        self._ran: dict[str, bool] = {}  # batch -> whether its folder of runs exists
        self._folders: dict[tuple[str, str | None], Path] = {}  # (runs folder, input) -> folder

    def token(self, run: RunSpec) -> str:
        """What a run that needs `run` covers of it (early cutoff): the digest of what `run`
        produced, from its committed result; with none yet, its fingerprint (`PENDING`)."""
        found = self.result_of(run)
        return PENDING + (run.fingerprint or "") if found is None else PRODUCED + found.digest

    def result_of(self, run: RunSpec) -> Committed | None:
        """The run's verified committed result, read once per plan (None if it has none, or if
        its own fingerprint waits on an upstream run)."""
        if run.key not in self._read:
            self._read.add(run.key)
            provisional = any(t.startswith(PENDING) for t in (run.parts or {}).get("upstream", ()))
            if not provisional and _ran(run, self._ran):
                found = read_result(run.output_dir)
                if isinstance(found, Committed):
                    self.committed[run.key] = found
        return self.committed.get(run.key)

    def assign(
        self, batch: Batch | None, runs: Sequence[RunSpec], upstream: Sequence[Sequence[str]]
    ) -> list[RunSpec]:
        """The runs with their fingerprint, parts, and fingerprint-addressed output directory."""
        try:
            hashes = self._input_hashes(
                [run.input_path for run in runs if run.input_path is not None]
            )
        except FileNotFoundError as exc:
            raise _unreadable_input(batch, exc) from None
        code = self.code(batch.deps if batch is not None else ())
        kind = SCRIPT if batch is not None and batch.type == SCRIPT else self.kind
        out = []
        for run, ups in zip(runs, upstream, strict=True):
            input_hash = hashes.get(run.input_path) if run.input_path is not None else None
            parts = self.parts(run, kind=kind, input_hash=input_hash, code=code, upstream=ups)
            digest = fingerprint_of(parts)
            output_dir = self._input_folder(run) / digest[:12]
            out.append(run.evolve(fingerprint=digest, parts=parts, output_dir=output_dir))
        return out

    def _input_folder(self, run: RunSpec) -> Path:
        """The folder of the input's runs, under the batch's folder of runs (`run.output_dir`
        when expanded): made once per input and folder (the runs of a matrix share it), by a
        join that parses only the input's part (never absolute)."""
        key = (str(run.output_dir), run.rel_input_path)
        found = self._folders.get(key)
        if found is None:
            found = self._folders[key] = run.output_dir / _input_dir(run)
        return found

    def _input_hashes(self, paths: list[Path]) -> dict[Path, str]:
        """Content hashes of inputs, each looked up once per plan (batches share inputs)."""
        missing = [path for path in dict.fromkeys(paths) if path not in self._input_hash]
        if missing:
            self._input_hash.update(self.inputs.hashes(missing))
        return self._input_hash

    def step(self, run: RunSpec, upstream: Sequence[str]) -> RunSpec:
        """A pipeline `run:` step: its fingerprint, and its directory under the step's folder."""
        parts = self.parts(
            run, kind=PIPELINE, input_hash=None, code=self.code(()), upstream=upstream
        )
        digest = fingerprint_of(parts)
        return replace(
            run, fingerprint=digest, parts=parts, output_dir=run.output_dir / digest[:12]
        )

    def parts(
        self, run: RunSpec, *, kind: str, input_hash: str | None, code: str, upstream: Sequence[str]
    ) -> dict[str, Any]:
        """The run's fingerprint parts, as a dict (`Parts.from_dict` makes them Parts)."""
        commanded = run.command is not None and kind != SCRIPT  # `qa run -i X CMD`: CMD counts
        configurations = run.configurations
        if commanded or run.matrix:
            configurations = self._completed(run, commanded)
        return parts_dict(
            kind=kind,
            configurations=configurations,
            params=run.params,
            platform=run.platform,
            input_hash=input_hash,
            code=code,
            upstream=tuple(upstream),
            batch=run.batch,
            batch_file=None if run.batch_file is None else self._relative(run.batch_file),
            rel_input_path=run.rel_input_path,
            hashed=self._hashed.of,
        )

    def _completed(self, run: RunSpec, commanded: bool) -> tuple[Any, ...]:
        """The configurations a fingerprint covers: the run's, then its command (`qa run -i X
        CMD`) and its matrix (run() sees context.matrix: a key no configuration uses counts
        too). One tuple per (configurations, command, matrix): the runs of a batch's matrix
        combination share it, so `_hashed` hashes it once, not once per run."""
        command = run.command if commanded else None
        key = (id(run.configurations), command, id(run.matrix))
        if key not in self._completions:
            completed = (
                (*run.configurations, {"command": command}) if commanded else run.configurations
            )
            if run.matrix:
                completed = (*completed, {"matrix": run.matrix})
            # holding the sources keeps their ids unique while the key is in use
            self._completions[key] = (run.configurations, run.matrix, completed)
        return self._completions[key][2]

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one Fingerprints per plan; batch files are few
    def _relative(self, path: Path) -> str:
        """Paths in fingerprints are relative to the project: a moved or cloned project keeps them."""
        root = self.project.root
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

    def code(self, deps: tuple[str, ...]) -> str:
        deps = deps or self.project.deps
        if deps not in self._code:
            self._code[deps] = code_version(
                self.project.root,
                deps=deps,
                exclude=self._exclude,
                fallback=self.project.entrypoint,
            )
        return self._code[deps]

    @property
    def inputs(self) -> InputHashes:
        """The input hash cache; kept in memory until `save()` when there is none on disk yet,
        so that a plan that fails, or only lists, changes nothing on disk."""
        if self._inputs is None:
            self._inputs = InputHashes(self._path if self._path.exists() else Path(":memory:"))
        return self._inputs

    def save(self) -> None:
        """After a successful plan that will execute: keep the input hashes for next time."""
        if self.persist and self._inputs is not None and not self._path.exists():
            try:
                self._inputs.save(self._path)
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(
                    f"Cannot write in the storage folder {str(self.project.storage)!r}: {exc}. Set "
                    "`storage:` in qaboard.yaml to a folder you may write in."
                ) from None

    def close(self) -> None:
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None


def _unreadable_input(batch: Batch | None, exc: FileNotFoundError) -> BatchSpecError:
    path = Path(exc.filename)
    if path.is_symlink() and not path.exists():
        reason = f"is a symbolic link to {str(path.readlink())!r}, which does not exist"
    else:
        reason = f"cannot be read ({exc.strerror})"
    where = f"{batch.file}: batch {batch.name!r}: " if batch is not None else ""
    return BatchSpecError(
        f"{where}the input {str(path)!r} {reason}. Fix or remove it (or the input list that "
        "finds it), then plan again."
    )


def _input_dir(run: RunSpec) -> str:
    return "_" if run.rel_input_path is None else rel_dir(run.rel_input_path)


Recorded = Callable[[Sequence[str]], Collection[str]]


def reusable(
    plan: Plan,
    *,
    force: bool = False,
    force_batches: Sequence[str] = (),
    recorded: Recorded | None = None,
) -> dict[str, RunResult]:
    """The runs of the plan whose result can be reused, as CACHED results, by run key: those
    whose committed result is verified (`rundir.read_result`) and whose upstream runs are
    reused too. `recorded(fingerprints)` is told the fingerprints looked up (the store
    answers which have a successful run)."""
    if force:
        return {}
    if recorded is not None:
        recorded([r.fingerprint for r in plan.runs if r.fingerprint])
    forced = set(force_batches)
    cached: dict[str, RunResult] = {}
    ran: dict[str, bool] = {}  # batch -> whether its folder of runs exists
    edges, committed = plan.edges, plan.committed
    for run in plan.runs:  # topological order: what a run needs was decided before it
        if run.batch in forced:
            continue
        needs = edges.get(run.key)
        if needs and not all(key in cached for key in needs):
            continue
        found = committed.get(run.key) or _committed(run, ran)
        if found is not None:
            cached[run.key] = reused(run.key, found, run.output_dir, fingerprint=run.fingerprint)
    return cached


def waiting(
    plan: Plan,
    cached: Mapping[str, RunResult],
    *,
    force: bool = False,
    force_batches: Sequence[str] = (),
    last_parts: Mapping[str, Mapping[str, Any]] | None = None,
) -> set[str]:
    """The runs, not reused now, that wait on upstream runs which will execute, and are reused
    if those produce what they produced before: a committed result has their fingerprint, or
    (their fingerprint provisional) their last success (`last_parts`, fingerprint parts by
    run key) differs from them in nothing but what the upstream runs produced."""
    if force:
        return set()
    forced = set(force_batches)
    ran: dict[str, bool] = {}
    found = set()
    for run in plan.runs:
        if run.key in cached or run.batch in forced or not run.upstream:
            continue
        if plan.waits(run):
            last = (last_parts or {}).get(run.key)
            if last is not None and _same_but_upstream(last, run.parts or {}):
                found.add(run.key)
        elif plan.committed.get(run.key) or _committed(run, ran):
            found.add(run.key)
    return found


def _same_but_upstream(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(name) == value for name, value in new.items() if name != "upstream")


def _batch_folder(run: RunSpec) -> Path:
    """STORAGE/runs/BATCH, the folder above every run directory of the run's batch."""
    depth = 1 if run.rel_input_path is None else rel_dir(run.rel_input_path).count("/") + 1
    return run.output_dir.parents[depth]


def _ran(run: RunSpec, ran: dict[str, bool]) -> bool:
    """Whether the run's batch has a folder of runs: a batch that never ran has no result
    to read (asked once per batch: this runs for every planned run)."""
    if run.batch not in ran:
        ran[run.batch] = _batch_folder(run).is_dir()
    return ran[run.batch]


def _committed(run: RunSpec, ran: dict[str, bool]) -> Committed | None:
    """The run's verified committed result, if its batch ever ran."""
    if not _ran(run, ran):
        return None
    found = read_result(run.output_dir)
    return found if isinstance(found, Committed) else None
