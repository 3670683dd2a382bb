"""The objective's reference execution: `objective.target` naming an execution whose runs give
each trial run its targets, matched run by run as `qa compare` matches them.

Policy
- Which execution (`resolve`, before any trial, reading the run store without writing): for
  `{id: X}`, the execution with that id (or id prefix), else the newest execution of commit X;
  for `{branch: B}`, the newest of branch B; for `{tag: T}`, the newest of the commit git tag
  T points at in the project's repository; for a plain name, what `qa compare` accepts (an
  id, a label, a branch, a commit). A branch, a tag or a commit take the newest execution
  labelled `label:` (QA-Board's `batch:`), `default` unless given, so that trials
  (`LABEL|iterN`) never become their own reference.
- Checked at once (exit 2, nothing written): the reference exists; each run the objective
  scores has a match among its runs (`qaflow.results.matching`); each matched reference run
  succeeded and has a number for every metric compared (shift, relative losses).
- A study records its reference's id (attribute `reference`) and keeps it when it resumes
  (`qaflow.optimize.study`).
- Each trial (`Reference.targets`) matches its runs again: a run without a match fails the
  trial (TrialFailed), as a run without its metric does.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qaflow.config.git import tag_commit
from qaflow.errors import StoreError, UsageError
from qaflow.optimize.objective import TrialFailed
from qaflow.optimize.search import Search, Target
from qaflow.results.compare import CompareRun
from qaflow.results.matching import match
from qaflow.results.metrics import as_number
from qaflow.results.refs import resolve_ref

if TYPE_CHECKING:
    from qaflow.config.project import Project
    from qaflow.plan.model import RunSpec
    from qaflow.store import ExecutionRecord, Store

DEFAULT_LABEL = "default"  # QA-Board's default `batch:` of a reference, and qa's default label
SHOWN = 5  # runs named in a message


@dataclass(frozen=True)
class Reference:
    """The reference execution and its runs, as a comparison reads them."""

    execution_id: str
    label: str
    runs: tuple[CompareRun, ...]

    def __str__(self) -> str:
        return f"{self.execution_id} ({self.label})"

    def targets(self, runs: Sequence[tuple[RunSpec, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Per trial run (its spec and metrics), the metrics of its match in the reference;
        TrialFailed for a run without one."""
        trial = [_compare_run(spec, metrics) for spec, metrics in runs]
        pairs, _, unmatched = match(list(self.runs), trial)
        if unmatched:
            raise TrialFailed(
                f"{len(unmatched)} run(s) have no match in the reference execution {self}: "
                f"{_names(unmatched)}"
            )
        partner = {id(new): ref for ref, new in pairs}
        return [dict(partner[id(run)].metrics) for run in trial]


def resolve(project: Project, search: Search, scored: Sequence[RunSpec]) -> Reference | None:
    """The search's reference execution, checked against the runs the objective scores
    (see the module policy); None when the objective names none. UsageError on a mistake."""
    target = search.reference
    if target is None:
        return None
    from qaflow.store import Store

    where = f"{search.path}: objective.target ({target})"
    with Store.open(project.database_url, storage=project.storage, readonly=True) as store:
        record = _find(store, project, target, where)
        rows = store.history.compare_runs(record.id)
    reference = Reference(record.id, record.label, tuple(CompareRun.from_row(r) for r in rows))
    _check(reference, search, scored, where)
    return reference


def _find(store: Store, project: Project, target: Target, where: str) -> ExecutionRecord:
    if target.kind == "ref":
        try:
            return resolve_ref(store, target.name)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    label = target.label or DEFAULT_LABEL
    if target.kind == "id":
        try:
            return store.lookups.execution(target.name)
        except StoreError:
            found = store.board.find_executions(limit=1, git_commit=target.name, label=label)
    elif target.kind == "branch":
        found = store.board.find_executions(limit=1, git_branch=target.name, label=label)
    else:
        commit = tag_commit(project.root, target.name)
        if commit is None:
            raise UsageError(
                f"{where}: the git repository of {project.root} has no tag {target.name!r}. "
                "Give a tag it has (`git tag --list`), or name the reference by `branch` or `id`."
            )
        found = store.board.find_executions(limit=1, git_commit=commit, label=label)
    if found:
        return found[0]
    names = store.board.names()
    known = names["branches"] if target.kind == "branch" else names["ids"]
    close = difflib.get_close_matches(target.name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    labels = ", ".join(names["labels"][:8]) or "none yet"
    raise UsageError(
        f"{where}: the run store has no execution of it labelled {label!r}.{hint} Run the "
        f"reference first (`qa --label {label} batch …` on it), or give its label with "
        f"`label:` (recent labels: {labels})."
    )


def _check(reference: Reference, search: Search, scored: Sequence[RunSpec], where: str) -> None:
    planned = [_compare_run(spec, {}) for spec in scored]
    pairs, _, unmatched = match(list(reference.runs), planned)
    if not pairs or unmatched:
        batches = sorted({run.batch for run in reference.runs})
        what = "none of the runs" if not pairs else f"{len(unmatched)} run(s)"
        raise UsageError(
            f"{where}: {what} the objective scores ({_names(unmatched)}) have a match among "
            f"the {len(reference.runs)} run(s) of the reference execution {reference} (its "
            f"batches: {', '.join(batches) or 'none'}). Runs are matched by batch and input, "
            "as `qa compare` matches them: name a reference that ran these batches."
        )
    compared = [term.metric for term in search.terms if term.compares]
    for ref, new in pairs:
        problem = None if ref.ok else f"its status is {ref.status}"
        for metric in compared:
            number = as_number(ref.metrics.get(metric))
            if problem is None and (number is None or number != number):
                problem = f"it has no number for the metric {metric!r}"
        if problem:
            raise UsageError(
                f"{where}: the reference run of {_names([new])} cannot be compared with: "
                f"{problem}. Name a reference whose runs succeeded with these metrics."
            )


def _compare_run(spec: RunSpec, metrics: dict[str, Any]) -> CompareRun:
    return CompareRun(
        key=spec.key,
        batch=spec.batch,
        input=spec.rel_input_path,
        platform=spec.platform,
        configurations=list(spec.configurations),
        matrix=dict(spec.matrix),
        status="succeeded",
        metrics=metrics,
        output_dir=str(spec.output_dir),
    )


def _names(runs: Sequence[CompareRun]) -> str:
    shown = ", ".join(f"{run.batch} {run.input or '(no input)'}" for run in runs[:SHOWN])
    return shown + (f" and {len(runs) - SHOWN} more" if len(runs) > SHOWN else "")
