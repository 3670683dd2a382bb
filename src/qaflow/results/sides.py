"""The two sides of a comparison, as `qaflow.results.compare` takes them: each run
(`CompareRun`, the store's `CompareRow` with what comparing asks of it) and which
execution a side is (`ExecutionSide`). `qaflow.results.compare` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from qaflow.results.matching import canonical
from qaflow.store.records import CompareRow

if TYPE_CHECKING:
    from qaflow.store.records import ExecutionRecord, RunRecord

OK_STATUSES = frozenset({"succeeded", "cached"})


class CompareRun(CompareRow):
    """What a comparison needs of a run: the store's `CompareRow` (the columns
    `store.history.compare_runs` selects) with what comparing asks of it. A subclass, so
    that making one of a row costs a tuple copy (10,000 runs a side), not nine setattrs."""

    @classmethod
    def from_record(cls, record: RunRecord) -> CompareRun:
        return cls(
            key=record.key,
            batch=record.batch,
            input=record.rel_input_path,
            platform=record.platform,
            configurations=list(record.configurations),
            matrix=dict(record.spec.get("matrix") or {}),
            status=str(record.status.value),
            metrics=dict(record.metrics or {}),
            output_dir=record.output_dir,
        )

    @classmethod
    def from_row(cls, row: CompareRow) -> CompareRun:
        """The store's plain record of the same columns, as a CompareRun."""
        return cls._make(row)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @cached_property
    def configuration(self) -> str:
        """As QA-Board writes it: `base:delta`, dictionaries as JSON."""
        return ":".join(c if isinstance(c, str) else canonical(c) for c in self.configurations)

    def brief(self) -> dict[str, Any]:
        """What a matched row says of each side (its metrics are in the row's deltas)."""
        return {
            "key": self.key,
            "configuration": self.configuration,
            "matrix": self.matrix,
            "status": self.status,
            "output_dir": self.output_dir,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "batch": self.batch,
            "input": self.input,
            "platform": self.platform,
            "configuration": self.configuration,
            "configurations": self.configurations,
            "matrix": self.matrix,
            "status": self.status,
            "metrics": self.metrics,
            "output_dir": self.output_dir,
        }


@dataclass(frozen=True)
class ExecutionSide:
    """Which execution a side of the comparison is."""

    id: str
    label: str
    git_commit: str | None = None
    git_branch: str | None = None
    started_at: float | None = None
    status: str | None = None

    @classmethod
    def from_record(cls, record: ExecutionRecord) -> ExecutionSide:
        return cls(
            id=record.id,
            label=record.label,
            git_commit=record.git.commit,
            git_branch=record.git.branch,
            started_at=record.started_at,
            status=record.status,
        )

    def __str__(self) -> str:
        git = f" {self.git_branch or ''}@{self.git_commit[:7]}" if self.git_commit else ""
        return f"{self.id} ({self.label}{git})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "git_commit": self.git_commit,
            "git_branch": self.git_branch,
            "started_at": self.started_at,
            "status": self.status,
        }
