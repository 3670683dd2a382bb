"""What QA-Board users expect to find outside qaflow's run directories, once runs are done.

- `--prefix-outputs-path DIR` (`qa batch`) and `-o/--output DIR` (`qa run`): QA-Board writes
  a run's outputs at a path of the user's choosing. qaflow's run directories stay addressed
  by fingerprint (the cache depends on it); the chosen path becomes a symbolic link to the
  run's result (its committed directory, or a failed attempt's, with its log), replaced
  atomically at each execution. Under a prefix, a run is at DIR/[TUNING/]INPUT: INPUT its
  input path without suffix, TUNING a name for its extra parameters when it has some.
- `--save-manifests-in-database`: a successful run's `manifest.inputs.json` and
  `manifest.outputs.json` are copied into its input folder, the reference that
  `qa check-bit-accuracy-manifest` compares later runs with (inputs that are files: a warning).

Paths are checked before anything runs (`check_links`): two runs at one path, or a path
that is a real file or a non-empty folder, are usage errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path, PurePosixPath

from qaflow.errors import QaflowWarning, UsageError
from qaflow.execution.model import Execution, Options
from qaflow.plan.expand import rel_dir, slug
from qaflow.plan.model import Plan, RunSpec
from qaflow.worker.model import RunResult

MANIFESTS = ("manifest.inputs.json", "manifest.outputs.json")


def links_of(the_plan: Plan, options: Options, storage: Path) -> dict[str, Path]:
    """Where each run's results are linked from (run key -> path); empty without a prefix."""
    if options.output_path is not None:
        return {run.key: Path(options.output_path).absolute() for run in the_plan.runs[:1]}
    if options.outputs_prefix is None:
        return {}
    prefix = Path(options.outputs_prefix)
    root = prefix if prefix.is_absolute() else storage / prefix
    return {run.key: root / _tuning_dir(run) / _input_dir(run) for run in the_plan.runs}


def check_links(the_plan: Plan, options: Options, storage: Path) -> None:
    """Usage errors, before anything runs: two runs at one path, a path qaflow cannot replace."""
    where = "-o/--output" if options.output_path is not None else "--prefix-outputs-path"
    seen: dict[Path, RunSpec] = {}
    by_key = {run.key: run for run in the_plan.runs}
    for key, path in links_of(the_plan, options, storage).items():
        run = by_key[key]
        if path in seen:
            raise UsageError(
                f"{where} {str(path)!r}: runs {_named(seen[path])} and {_named(run)} would both be there (they differ by configuration or matrix only). Run those batches separately, each with its own prefix."
            )
        seen[path] = run
        if (path.exists() or path.is_symlink()) and not _replaceable(path):
            raise UsageError(
                f"{where}: {str(path)!r} exists and is not a link qaflow made nor an empty folder; qaflow links the results there and removes nothing. Remove it or choose another path."
            )


class Publisher:
    """An event sink: publishes when the execution finishes (`qaflow.execution.report`)."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def execution_started(self, execution_id: str, plan: Plan) -> None:
        pass

    def run_started(self, run: RunSpec, attempt: int) -> None:
        pass

    def run_finished(self, run: RunSpec, result: RunResult) -> None:
        pass

    def execution_finished(self, execution: Execution) -> None:
        publish(execution, self.options)


def publish(execution: Execution, options: Options) -> None:
    """The links and manifest copies the options ask for, once the execution is done."""
    links = links_of(execution.plan, options, execution.storage)
    warned = False
    for run in execution.runs():
        if run.spec.key in links:
            _link(links[run.spec.key], run.output_dir)
        if not (options.save_manifests_in_database and run.result.status.ok):
            continue
        if run.spec.input_path is None or not run.spec.input_path.is_dir():
            if not warned:
                warnings.warn(
                    "--save-manifests-in-database: the manifests are saved only for inputs that are folders (as in QA-Board).",
                    QaflowWarning,
                    stacklevel=1,
                )
            warned = True
            continue
        for name in MANIFESTS:
            if (run.output_dir / name).is_file():
                shutil.copyfile(run.output_dir / name, run.spec.input_path / name)


def _link(path: Path, target: Path) -> None:
    if (path.exists() or path.is_symlink()) and not _replaceable(path):
        warnings.warn(f"{str(path)!r} appeared meanwhile: not linked.", QaflowWarning, stacklevel=1)
        return
    if path.is_dir() and not path.is_symlink():
        path.rmdir()  # an empty folder (checked)
    path.parent.mkdir(parents=True, exist_ok=True)
    swap = path.with_name(f".{path.name}.{os.getpid()}.swap")
    swap.unlink(missing_ok=True)
    swap.symlink_to(target.absolute(), target_is_directory=True)
    swap.replace(path)


def _replaceable(path: Path) -> bool:
    if path.is_symlink():
        return True
    return path.is_dir() and not any(path.iterdir())


def _input_dir(run: RunSpec) -> str:
    if not run.rel_input_path:
        return "_"
    return rel_dir(PurePosixPath(run.rel_input_path).with_suffix("").as_posix())


def _tuning_dir(run: RunSpec) -> str:
    """A readable name for the run's extra parameters (forwarded args aside), '' if none."""
    extra = {k: v for k, v in (run.extra_parameters or {}).items() if k != "forwarded_args"}
    if not extra:
        return ""
    text = json.dumps(extra, sort_keys=True, default=str)
    readable = slug(text.strip("{}").replace('"', "").replace(": ", "=").replace(", ", "_"))
    if len(readable) <= 40:
        return readable
    return f"{readable[:31]}-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


def _named(run: RunSpec) -> str:
    return f"{run.batch} {run.rel_input_path or '-'}"
