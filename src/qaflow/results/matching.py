"""Matching the runs of two executions, as `qaflow.results.compare` explains: by batch and input,
then by configuration, then by matrix point, where a side holds several runs of an input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar


class Matchable(Protocol):
    """What matching reads of a run (`qaflow.results.compare.CompareRun` has it)."""

    @property
    def batch(self) -> str: ...
    @property
    def input(self) -> str | None: ...
    @property
    def platform(self) -> str: ...
    @property
    def configurations(self) -> list[Any]: ...
    @property
    def matrix(self) -> dict[str, Any]: ...


CompareRun = TypeVar("CompareRun", bound=Matchable)  # the runs' own type, handed back


def match(
    ref_runs: Sequence[CompareRun], new_runs: Sequence[CompareRun]
) -> tuple[list[tuple[CompareRun, CompareRun]], list[CompareRun], list[CompareRun]]:
    """(matched pairs in NEW's order, runs only in REF, runs only in NEW): see `qaflow.results.compare`."""
    ref_groups = _groups(ref_runs)
    new_groups = _groups(new_runs)
    partner: dict[int, CompareRun] = {}  # id(new run) -> its ref run
    only_ref: list[CompareRun] = []
    for identity, refs in ref_groups.items():
        news = new_groups.get(identity, [])
        if len(refs) == 1 and len(news) == 1:
            partner[id(news[0])] = refs[0]
            continue
        left = list(refs)
        for variant in (_variant, _matrix_point):
            left = _pair_by(variant, left, [n for n in news if id(n) not in partner], partner)
        only_ref.extend(left)
    pairs = [(partner[id(run)], run) for run in new_runs if id(run) in partner]
    only_new = [run for run in new_runs if id(run) not in partner]
    return pairs, only_ref, only_new


def _groups(runs: Sequence[CompareRun]) -> dict[tuple[str, str | None], list[CompareRun]]:
    groups: dict[tuple[str, str | None], list[CompareRun]] = {}
    for run in runs:
        groups.setdefault((run.batch, run.input), []).append(run)
    return groups


def _pair_by(
    variant: Any, refs: list[CompareRun], news: list[CompareRun], partner: dict[int, CompareRun]
) -> list[CompareRun]:
    """Pair runs whose variant is unique on both sides; return the refs left over."""
    ref_by: dict[str, list[CompareRun]] = {}
    for run in refs:
        ref_by.setdefault(variant(run), []).append(run)
    new_by: dict[str, list[CompareRun]] = {}
    for run in news:
        new_by.setdefault(variant(run), []).append(run)
    paired: set[int] = set()
    for key, candidates in new_by.items():
        mates = ref_by.get(key, [])
        if len(candidates) == 1 and len(mates) == 1:
            partner[id(candidates[0])] = mates[0]
            paired.add(id(mates[0]))
    return [run for run in refs if id(run) not in paired]


def _variant(run: CompareRun) -> str:
    return canonical([run.platform, run.configurations, run.matrix])


def _matrix_point(run: CompareRun) -> str:
    return canonical([run.platform, run.matrix])


canonical = json.JSONEncoder(sort_keys=True, default=str).encode  # one encoder: 10x faster
"""JSON with sorted keys: equal values, equal texts."""
