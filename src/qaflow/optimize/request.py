"""What `qa optimize` was asked: kept as JSON so a background driver does exactly the same."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from qaflow.execution.model import Options
from qaflow.optimize.search import load_search, with_overrides
from qaflow.optimize.study import Prepared, prepare


@dataclass(frozen=True)
class Request:
    """`qa optimize -b BATCH… --config-file F` and its options."""

    root: Path
    batches: tuple[str, ...]
    config_file: Path
    options: Options
    study: str | None = None
    tune_batches: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)  # parallel, sampler, seed, evaluations
    batch_patterns: tuple[str, ...] = ()  # --batches-file (resolved): instead of inputs.batches

    def prepare(self) -> Prepared:
        """Check everything (UsageError on a mistake); nothing is written."""
        from qaflow.config.project import Project

        project = Project.discover(self.root, share=self.options.share)  # as `qa --share`
        if self.batch_patterns:
            project = replace(project, batch_patterns=self.batch_patterns)
        search = with_overrides(load_search(self.config_file), **self.overrides)
        return prepare(
            project,
            self.batches,
            search,
            self.options,
            study=self.study,
            tune_batches=self.tune_batches,
        )

    def to_json(self) -> str:
        data = asdict(self) | {"options": self.options.to_json()}
        return json.dumps(data, default=str, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Request:
        data = json.loads(text)
        return cls(
            root=Path(data["root"]),
            batches=tuple(data["batches"]),
            config_file=Path(data["config_file"]),
            options=Options.from_json(data["options"]),
            study=data["study"],
            tune_batches=tuple(data["tune_batches"]),
            overrides=data["overrides"],
            batch_patterns=tuple(data["batch_patterns"]),
        )
