"""A run's context: what its `run(context)` receives, and the files of its output directory.

`RunContext` has QA-Board's attribute names. qaflow keeps four files next to a run's own
outputs: run.json (what was run), log.txt (its stdout and stderr), metrics.json (always
written, with is_failed and compute_time) and manifest.outputs.json (size and blake2b hash
of each other file).
"""

from __future__ import annotations

import contextlib
import copy
import getpass
import hashlib
import io
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

from qaflow.errors import ExecutorError
from qaflow.worker.files import read_bytes, write_all, write_bytes, write_text
from qaflow.worker.rundir import OWN_FILES, attempt_dir_of, output_dir_of
from qaflow.worker.task import RunTask

_CHUNK = 1 << 20


class _Encoder(json.JSONEncoder):
    """json's encoder with its methods as they were at import: a run that monkeypatches
    `json` (its functions or classes) does not corrupt its own metrics.json (the next runs
    find `json` restored: `qaflow.worker.isolation`)."""

    encode = json.JSONEncoder.encode
    iterencode = json.JSONEncoder.iterencode


class _Decoder(json.JSONDecoder):
    decode = json.JSONDecoder.decode
    raw_decode = json.JSONDecoder.raw_decode


def _dumps(value: Any, **options: Any) -> str:
    return _Encoder(**options).encode(value)


def _loads(text: str) -> Any:
    return _Decoder().decode(text)


TEE_JOIN_TIMEOUT = 2.0  # a background process still holding the run's stdout must not hang us


class MetricsError(ValueError):
    """A metrics.json that cannot be read as an object of metrics."""


@dataclass
class RunContext:
    """One run's inputs and settings, with QA-Board's attribute names. Plain data (it pickles).

    As in QA-Board, `configurations` are the run's configurations as planned, `configs` adds
    the extra parameters (--tuning, forwarded args) last, `params` merges the dicts of
    `configs`, and `obj` is a scratchpad holding QA-Board's keys (`output_directory`…)."""

    input_path: Path | None
    rel_input_path: Path | None
    database: Path
    type: str
    output_dir: Path
    configurations: list[Any]
    params: dict[str, Any]
    platform: str
    forwarded_args: list[str]
    extra_parameters: dict[str, Any]
    dryrun: bool
    batch: str
    matrix: dict[str, Any]
    input_metadata: dict[str, Any] = field(default_factory=dict)
    job_options: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    id: str | None = None
    label: str = "default"
    obj: dict[str, Any] = field(default_factory=dict)

    @property
    def configs(self) -> list[Any]:
        """The configurations, then QA-Board's `_configs` tuning entries and the extra
        parameters (the same list as `configurations` when there are none)."""
        if not self.extra_parameters:
            return self.configurations
        extra = self.extra_parameters
        return [*self.configurations, *extra.get("_configs", []), extra]

    @configs.setter
    def configs(self, value: list[Any]) -> None:
        self.configurations = value

    @property
    def output_directory(self) -> Path:
        """QA-Board's other name for `output_dir`."""
        return self.output_dir

    def asdict(self) -> dict[str, Any]:
        """The context as a dict (QA-Board's `asdict`: without `input_metadata` and `obj`)."""
        data = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("input_metadata", "obj")
        }
        return data | {"configs": copy.deepcopy(self.configs)}

    def ran(self) -> bool:
        """Whether the output directory holds a metrics.json (QA-Board's `ran`)."""
        return (self.output_dir / "metrics.json").exists()

    def is_failed(self, verbose: bool = False) -> bool:
        """Whether the run's metrics.json says is_failed (True without a readable one)."""
        try:
            return bool(read_metrics(self.output_dir).get("is_failed", True))
        except MetricsError:
            return True

    @classmethod
    def from_task(
        cls,
        task: RunTask,
        output_dir: Path | None = None,
        input_metadata: dict[str, Any] | None = None,
    ) -> RunContext:
        """The context of a task, working in `output_dir` (its attempt directory; by default
        the run's), with the input's metadata (`qaflow.worker.metadata`). Mutable parts are
        copies: run() may change them freely."""
        run = task.payload
        context = cls(
            input_path=None if run.input_path is None else Path(run.input_path),
            rel_input_path=None if run.rel_input_path is None else Path(run.rel_input_path),
            database=Path(run.database or task.project_root),
            type=run.type,
            output_dir=output_dir_of(task) if output_dir is None else output_dir,
            configurations=copy.deepcopy(list(run.configurations)),
            params=copy.deepcopy(run.params),
            platform=run.platform,
            forwarded_args=list(task.forwarded_args),
            extra_parameters=copy.deepcopy(dict(task.extra_parameters)),
            dryrun=task.dryrun,
            batch=run.batch,
            matrix=copy.deepcopy(run.matrix),
            input_metadata=input_metadata or {},
            # QA-Board's: the runner, then the batch's section for it (`local: {param: v}`)
            job_options={
                "type": task.runner,
                "timeout": task.timeout,
                "cpus": task.cpus,
                **copy.deepcopy(task.job_options),
            },
            command=task.command,
            id=task.key,
            label=task.label,
        )
        context.obj = qaboard_obj(context, task)
        return context


def qaboard_obj(context: RunContext, task: RunTask) -> dict[str, Any]:
    """QA-Board's `context.obj`: the keys its run() functions read (`output_directory`…)."""
    configuration = ":".join(
        c if isinstance(c, str) else json.dumps(c, sort_keys=True, default=str)
        for c in context.configurations
    )
    return {
        "output_directory": context.output_dir,
        "output_dir": context.output_dir,
        "absolute_input_path": context.input_path,
        "input_path": context.rel_input_path,
        "rel_input_path": context.rel_input_path,
        "database": context.database,
        "input_type": context.type,
        "type": context.type,
        "input_metadata": context.input_metadata,
        "platform": context.platform,
        "configurations": context.configurations,
        "configuration": configuration,
        "extra_parameters": context.extra_parameters,
        "forwarded_args": context.forwarded_args,
        "batch": context.batch,
        "batch_label": task.label,
        "raw_batch_label": task.label,
        "dryrun": context.dryrun,
        "share": task.share,
        "offline": True,
        "project": task.project_name,
        "subproject": Path(task.subproject),
        "user": os.environ.get("QA_USER") or getpass.getuser(),
        "job_options": context.job_options,
    }


# ---------------------------------------------------------------- where it runs
@contextlib.contextmanager
def isolated(task: RunTask, output_dir: Path) -> Iterator[None]:
    """The run's environment variables and cwd; both restored exactly afterwards."""
    saved_env = os.environ.copy()
    try:
        saved_cwd: Path | None = Path.cwd()
    except OSError:
        saved_cwd = None
    try:
        env = _run_env(task, output_dir)
        try:
            os.chdir(task.project_root)
        except OSError as exc:
            raise ExecutorError(f"cannot enter the project's folder: {exc}") from None
        _set_run_env(os.environ, env)
        yield
    finally:
        for key in [key for key in os.environ if key not in saved_env]:
            del os.environ[key]
        for key, value in saved_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        if saved_cwd is not None:
            with contextlib.suppress(OSError):
                os.chdir(saved_cwd)


def command_env(task: RunTask, output_dir: Path) -> dict[bytes, bytes]:
    """The environment of a command run's process: what `isolated` would make this process's,
    built as a dict instead (a command runs in a child: this process's own need not change).
    In bytes, as the child gets it: this process's variables are not decoded and encoded."""
    env = dict(os.environb)
    run_env = _run_env(task, output_dir)
    env.update((os.fsencode(key), os.fsencode(value)) for key, value in run_env.items())
    if "QA_INPUT_PATH" not in run_env:
        env.pop(b"QA_INPUT_PATH", None)
    return env


def _set_run_env(target: MutableMapping[str, str], run_env: Mapping[str, str]) -> None:
    """Put a run's variables in `target` (os.environ, or a copy of it): an inherited
    QA_INPUT_PATH goes when the run has no input."""
    target.update(run_env)
    if "QA_INPUT_PATH" not in run_env:
        target.pop("QA_INPUT_PATH", None)


def _run_env(task: RunTask, output_dir: Path) -> dict[str, str]:
    """The task's own variables, `ENV` of the dict configurations (later ones win) and of the
    extra parameters, then QA_OUTPUT_DIR, QA_INPUT_PATH, QA_LABEL."""
    # e.g. PIPELINE_OUTPUT_DIR, QA_PREVIOUS_BATCH, and for batches QA_BATCH, QA_BATCHES_FILES
    env: dict[str, str] = dict(task.env)
    for config in task.payload.configurations:
        if isinstance(config, dict) and "ENV" in config:
            values = config["ENV"]
            if not isinstance(values, dict):
                raise ExecutorError(
                    f"ENV in a configuration must map names to values, not {values!r}"
                )
            env.update({str(key): str(value) for key, value in values.items()})
    extra_env = task.extra_parameters.get("ENV")  # QA-Board: tuning may set variables too
    if isinstance(extra_env, dict):
        env.update({str(key): str(value) for key, value in extra_env.items()})
    env["QA_OUTPUT_DIR"] = str(output_dir)
    env["QA_LABEL"] = task.label  # as QA-Board sets it for its runs
    if task.payload.input_path is not None:
        env["QA_INPUT_PATH"] = task.payload.input_path
    return env


@contextlib.contextmanager
def captured(log_path: Path, *, tee: bool, append: bool) -> Iterator[None]:
    """fds 1 and 2 (and sys.stdout/sys.stderr) go to the log file, and with tee to stdout too."""
    _flush(sys.stdout, sys.stderr)
    _ensure_open(1)
    _ensure_open(2)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    log_fd = os.open(log_path, flags, 0o666)
    saved = (os.dup(1), os.dup(2))
    pump = _Tee(log_fd, saved[0]) if tee else None
    target = pump.write_fd if pump is not None else log_fd
    streams = (sys.stdout, sys.stderr)
    os.dup2(target, 1)
    os.dup2(target, 2)
    sys.stdout, sys.stderr = _text_stream(1), _text_stream(2)
    try:
        yield
    finally:
        ours = (sys.stdout, sys.stderr)
        _flush(*ours, *streams)
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for stream in ours:
            with contextlib.suppress(Exception):
                stream.close()
        for fd in (*saved, log_fd):
            os.close(fd)
        if pump is not None:
            pump.close()


def _ensure_open(fd: int) -> None:
    """A closed stdout or stderr becomes /dev/null, so that new fds cannot take its number."""
    try:
        os.fstat(fd)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)


def _text_stream(fd: int) -> io.TextIOWrapper:
    raw = open(fd, "wb", closefd=False)  # noqa: SIM115 (closed by the caller, fd kept)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", line_buffering=True)


def _flush(*streams: Any) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.flush()


class _Tee:
    """A pipe whose reader thread copies everything to the log file and to our stdout."""

    def __init__(self, log_fd: int, out_fd: int) -> None:
        read_fd, self.write_fd = os.pipe()
        targets = [os.dup(log_fd), os.dup(out_fd)]  # the thread's own: it closes them at EOF
        self._thread = threading.Thread(
            target=_pump, args=(read_fd, targets), name="qaflow-tee", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        os.close(self.write_fd)
        self._thread.join(TEE_JOIN_TIMEOUT)


def _pump(read_fd: int, targets: list[int]) -> None:
    try:
        while chunk := os.read(read_fd, 65536):
            for fd in targets:
                with contextlib.suppress(OSError):
                    write_all(fd, chunk)
    finally:
        for fd in (read_fd, *targets):
            os.close(fd)


# ---------------------------------------------------------------- the output directory
def read_metrics(output_dir: Path) -> dict[str, Any]:
    """The metrics.json in output_dir ({} if none). MetricsError if it cannot be read as one."""
    path = f"{output_dir}/metrics.json"
    try:
        text = read_bytes(path).decode()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise MetricsError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:  # not UTF-8
        raise MetricsError(f"{path} is not valid JSON: {exc}") from None
    try:
        data = _loads(text)
    except ValueError as exc:
        raise MetricsError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MetricsError(f"{path} holds a {type(data).__name__}, expected an object of metrics")
    return data


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json (readable: indented); return the metrics as JSON reads them back."""
    try:
        text = _dumps(metrics, indent=2, default=jsonable)
    except TypeError:  # keys that JSON cannot have, e.g. tuples
        text = _dumps(_string_keys(metrics), indent=2, default=jsonable)
    # written last, in one write: a run killed while writing it leaves invalid JSON, which
    # counts as "not completed" (rundir.completed_metrics), so no temporary file is needed
    write_text(f"{output_dir}/metrics.json", text + "\n")
    return _loads(text)


def jsonable(value: Any) -> Any:
    """json.dumps(default=): numpy-like values as Python ones, paths and the rest as str."""
    for method in ("item", "tolist"):  # numpy-like scalars, then arrays
        convert = getattr(value, method, None)
        if callable(convert):
            with contextlib.suppress(Exception):
                return convert()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_string_keys(item) for item in value]
    return value


def record_failure(task: RunTask, error: str, compute_time: float) -> dict[str, Any]:
    """For a run whose process died: metrics.json of its attempt says is_failed, its log says
    why (the committed result, if any, is left as it is).

    Used by the pool from the driver's side. Metrics the run wrote are kept. Never raises."""
    output_dir = attempt_dir_of(task)
    metrics: dict[str, Any] = {"is_failed": True, "compute_time": compute_time}
    if not output_dir.is_dir():
        return metrics
    with contextlib.suppress(MetricsError):
        metrics = {**read_metrics(output_dir), **metrics}
    with contextlib.suppress(OSError), open(output_dir / "log.txt", "a", encoding="utf-8") as log:
        log.write(f"\nqaflow: {error}\n")
    with contextlib.suppress(OSError, TypeError, ValueError, RecursionError):
        metrics = write_metrics(output_dir, metrics)
    return metrics


def manifest(output_dir: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {size, blake2b}} of the run's files, qaflow's own excluded, sorted."""
    found: dict[str, dict[str, Any]] = {}
    _scan(str(output_dir), "", found)
    return dict(sorted(found.items()))


def write_manifest(output_dir: Path) -> bytes:
    """Write manifest.outputs.json; its bytes (a result's digest is made of them)."""
    data = json.dumps(manifest(output_dir)).encode()  # dumps: the C encoder
    write_bytes(f"{output_dir}/manifest.outputs.json", data)
    return data


def _scan(folder: str, prefix: str, found: dict[str, dict[str, Any]]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _scan(entry.path, f"{prefix}{entry.name}/", found)
            elif (prefix or entry.name not in OWN_FILES) and entry.is_file():
                with contextlib.suppress(OSError):  # unreadable, or removed meanwhile
                    found[prefix + entry.name] = _file_entry(entry.path)


def _file_entry(path: str) -> dict[str, Any]:
    """qaflow's size and blake2b, and QA-Board's st_size and md5 (its bit-accuracy tools)."""
    digest = hashlib.blake2b()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb", buffering=0) as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return {"size": size, "blake2b": digest.hexdigest(), "st_size": size, "md5": md5.hexdigest()}


INPUTS_MANIFEST_LIMIT = 200  # files of a folder input listed, as QA-Board


def write_inputs_manifest(output_dir: Path, input_path: str | None) -> None:
    """QA-Board's manifest.inputs.json: {input file: {st_size, md5}} (a folder: its first
    200 files), so that a changed input shows."""
    files: dict[str, dict[str, Any]] = {}
    if input_path is not None:
        try:
            mode = os.stat(input_path).st_mode  # noqa: PTH116 (one call; a run's input is a str)
        except (OSError, ValueError):
            mode = 0
        found: list[str] = []
        if stat.S_ISDIR(mode):
            path = Path(input_path)
            items = sorted(p for p in path.rglob("*") if p.is_file())[:INPUTS_MANIFEST_LIMIT]
            found = [item.as_posix() for item in items]
        elif stat.S_ISREG(mode):
            found = [Path(input_path).as_posix()]
        for item in found:
            with contextlib.suppress(OSError):
                entry = _file_entry(item)
                files[item] = {"st_size": entry["st_size"], "md5": entry["md5"]}
    write_text(f"{output_dir}/manifest.inputs.json", json.dumps(files, sort_keys=True, indent=2))
