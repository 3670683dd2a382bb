"""One run executed in-process: metrics, postprocess, log capture, isolation, manifest, commands."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import conftest
from conftest import write_project
from qaflow.worker.context import RunContext
from qaflow.worker.execute import execute
from qaflow.worker.model import RunStatus
from qaflow.worker.task import RunTask

MAIN = """
import json, os, sys
from pathlib import Path

class Scalar:  # numpy-like
    def item(self):
        return 7

def run(context):
    mode = context.params.get("mode", "ok")
    out = context.output_dir
    if mode == "metrics":
        (out / "metrics.json").write_text(json.dumps({"a": 1, "b": 2}))
        return {"b": 3, "c": Scalar(), "p": Path("/x")}
    if mode == "print":
        print("hello print")
        os.system("echo from-child")
        os.write(1, b"raw fd\\n")
        print("to stderr", file=sys.stderr)
        os.write(2, b"raw err\\n")
        return None
    if mode == "raise":
        raise ValueError("boom")
    if mode == "exit0":
        sys.exit(0)
    if mode == "exit3":
        sys.exit(3)
    if mode == "not-a-dict":
        return [1, 2]
    if mode == "is_failed":
        return {"is_failed": True, "x": 1}
    if mode == "files":
        (out / "a.txt").write_bytes(b"hello")
        (out / "sub").mkdir()
        (out / "sub" / "big.bin").write_bytes(bytes(range(256)) * 9000)
        (out / "sub" / "metrics.json").write_text("{}")
        return {}
    if mode == "leak":
        os.environ["LEAK"] = "1"
        os.environ["PATH"] = "/nowhere:" + os.environ["PATH"]
        os.chdir("/")
    return {
        "x": 1,
        "leak": os.environ.get("LEAK"),
        "k": os.environ.get("K"),
        "path": os.environ.get("PATH"),
        "cwd": os.getcwd(),
        "qa_output_dir": os.environ.get("QA_OUTPUT_DIR"),
        "qa_batch": os.environ.get("QA_BATCH"),
        "input": str(context.input_path),
        "configurations_is_configs": context.configurations is context.configs,
    }
"""

POST = """
def run(context):
    return {"x": 1}

def postprocess(metrics, context):
    return {**metrics, "x": metrics["x"] * 2}
"""


def make_task(root: Path, name: str = "a", configs: tuple[Any, ...] = (), **kwargs: Any) -> RunTask:
    """A task as the planner would make it, for input data/NAME.in of the project at root."""
    return conftest.make_task(
        root, name, configs, input_path=root / "data" / f"{name}.in", batch="my-batch", **kwargs
    )


def project(tmp_path: Path, main: str = MAIN) -> Path:
    return write_project(tmp_path / "p", files=["data/a.in"], extra={"qa/main.py": main})


def run(root: Path, name: str = "a", mode: str | None = None, **kwargs: Any):
    configs = kwargs.pop("configs", ())
    task = make_task(root, name, ({"mode": mode}, *configs) if mode else configs, **kwargs)
    return execute(task), root / "output" / name


def test_metrics_returned_and_written_are_merged_and_json_clean(tmp_path):
    result, out = run(project(tmp_path), mode="metrics")
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.metrics["a"] == 1 and result.metrics["b"] == 3  # returned values win
    assert result.metrics["c"] == 7 and result.metrics["p"] == "/x"
    assert result.metrics["is_failed"] is False
    assert isinstance(result.metrics["compute_time"], float)
    assert json.loads((out / "metrics.json").read_text()) == result.metrics
    assert result.pid == os.getpid() and result.ended_at >= result.started_at > 0


def test_run_json_is_written_and_a_previous_runs_files_are_removed(tmp_path):
    root = project(tmp_path)
    stale = root / "output" / "a" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    result, out = run(root)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert not stale.exists()
    record = json.loads((out / "run.json").read_text())
    assert record["key"] == "a" and record["attempt"] == 1 and record["batch"] == "my-batch"
    assert record["started_at"] == result.started_at and "command" not in record
    assert result.metrics["input"] == str(root / "data" / "a.in")
    assert result.metrics["configurations_is_configs"] is True


def test_postprocess_changes_metrics_and_the_postprocess_action_reuses_results(tmp_path):
    root = project(tmp_path, POST)
    result, out = run(root)
    assert result.metrics["x"] == 2
    (out / "user-file.txt").write_text("kept")
    again = execute(make_task(root, action="postprocess"))
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert again.metrics["x"] == 4
    assert json.loads((out / "metrics.json").read_text())["x"] == 4
    assert (out / "user-file.txt").exists()


def test_a_failing_postprocess_action_keeps_the_runs_metrics(tmp_path):
    root = project(tmp_path, POST)
    run(root)
    (root / "qa" / "main.py").write_text(POST.replace('metrics["x"] * 2', "1 / 0"))
    result = execute(make_task(root, action="postprocess"))
    assert (
        result.status is RunStatus.FAILED
        and result.error_line == "ZeroDivisionError: division by zero"
    )
    committed = json.loads((root / "output" / "a" / "metrics.json").read_text())
    assert committed["x"] == 2 and committed["is_failed"] is False  # the result is intact
    attempt = json.loads((Path(result.output_dir) / "metrics.json").read_text())
    assert attempt["x"] == 2 and attempt["is_failed"] is True


def test_postprocess_without_results_fails(tmp_path):
    root = project(tmp_path, POST)
    result = execute(make_task(root, action="postprocess"))
    assert result.status is RunStatus.FAILED
    assert result.error == f"no results to postprocess in {root / 'output' / 'a'}"


def test_log_captures_print_child_processes_raw_fds_and_stderr(tmp_path, capfd):
    result, out = run(project(tmp_path), mode="print")
    assert result.status is RunStatus.SUCCEEDED, result.error
    log = (out / "log.txt").read_text()
    for line in ("hello print", "from-child", "raw fd", "to stderr", "raw err"):
        assert line in log
    print("after the run")
    captured = capfd.readouterr()
    assert "hello print" not in captured.out + captured.err
    assert "after the run" in captured.out  # fds 1 and 2 are restored


TEE_SCRIPT = """
import sys
from pathlib import Path
sys.path[:0] = [{here!r}, {tests!r}]
from test_execute import make_task
from qaflow.worker.execute import execute
result = execute(make_task(Path({root!r}), configs=({{"mode": "print"}},), tee=True))
print("status", result.status.value)
"""


def test_tee_copies_the_output_to_stdout_too(tmp_path):
    root = project(tmp_path)
    script = TEE_SCRIPT.format(
        here=str(Path(__file__).parent), tests=str(Path(__file__).parents[1]), root=str(root)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    for line in ("hello print", "from-child", "raw fd", "to stderr", "raw err"):
        assert line in done.stdout
    assert "status succeeded" in done.stdout
    assert "from-child" in (root / "output" / "a" / "log.txt").read_text()


def test_user_failures_are_failed_results_with_the_reason(tmp_path):
    root = project(tmp_path)
    raised, out = run(root, "r", mode="raise")
    assert raised.status is RunStatus.FAILED
    assert raised.error_line == "ValueError: boom"
    assert "Traceback" in raised.error and "main.py" in raised.error
    attempt = Path(raised.output_dir)  # a failed attempt keeps its own files; none committed
    assert attempt.parent == out.parent and not out.exists()
    assert "ValueError: boom" in (attempt / "log.txt").read_text()
    assert json.loads((attempt / "metrics.json").read_text())["is_failed"] is True
    assert run(root, "e", mode="exit3")[0].error == "run() called sys.exit(3)"
    assert run(root, "z", mode="exit0")[0].status is RunStatus.SUCCEEDED
    wrong = run(root, "w", mode="not-a-dict")[0]
    assert wrong.error == "run() returned [1, 2], expected a dict of metrics or None"
    reported = run(root, "f", mode="is_failed")[0]
    assert reported.status is RunStatus.FAILED and reported.error == "run() reported is_failed"
    assert reported.metrics["x"] == 1 and reported.metrics["is_failed"] is True


def test_qaflow_cannot_run_it_is_errored(tmp_path):
    root = write_project(tmp_path / "p", extra={"qa/other.py": "x = 1\n"})
    missing = execute(make_task(root))
    assert missing.status is RunStatus.ERRORED
    assert "qa/main.py does not exist" in missing.error and "qa init" in missing.error
    no_run = execute(make_task(root, entrypoint="qa/other.py"))
    assert no_run.status is RunStatus.ERRORED and "defines no run(context)" in no_run.error


def test_environment_and_cwd_are_isolated(tmp_path):
    root = project(tmp_path)
    before = (dict(os.environ), Path.cwd())
    leak, _ = run(root, "l", mode="leak", configs=({"ENV": {"K": "V"}},))
    assert leak.status is RunStatus.SUCCEEDED and leak.metrics["k"] == "V"
    assert (dict(os.environ), Path.cwd()) == before
    after, out = run(root, "n")
    assert after.metrics["leak"] is None and after.metrics["k"] is None
    assert after.metrics["path"] == os.environ["PATH"]
    assert after.metrics["cwd"] == str(root)
    assert after.metrics["qa_output_dir"] == str(out.resolve())  # the committed attempt
    assert after.metrics["qa_batch"] is None  # the driver sets it for batches (`task.env`)


def test_manifest_lists_the_users_files_with_sizes_and_hashes(tmp_path):
    result, out = run(project(tmp_path), mode="files")
    assert result.status is RunStatus.SUCCEEDED, result.error
    manifest = json.loads((out / "manifest.outputs.json").read_text())
    assert list(manifest) == ["a.txt", "sub/big.bin", "sub/metrics.json"]
    for name, entry in manifest.items():
        data = (out / name).read_bytes()
        assert entry == {
            "size": len(data),
            "blake2b": hashlib.blake2b(data).hexdigest(),
            "st_size": len(data),  # QA-Board's fields, for its bit-accuracy tools
            "md5": hashlib.md5(data).hexdigest(),
        }
    inputs = json.loads((out / "manifest.inputs.json").read_text())
    data = (tmp_path / "p" / "data" / "a.in").read_bytes()
    assert inputs == {
        (tmp_path / "p" / "data" / "a.in").as_posix(): {
            "st_size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
        }
    }


def test_command_mode_substitutes_and_logs(tmp_path):
    root = project(tmp_path)
    command = "echo {input_path} '=>' {output_dir} && echo '{\"m\": 5}' > {output_dir}/metrics.json"
    result, out = run(root, command=command)
    assert result.status is RunStatus.SUCCEEDED, result.error
    log = (out / "log.txt").read_text()
    assert f"{root / 'data' / 'a.in'} => {out}" in log
    assert result.metrics["m"] == 5
    assert json.loads((out / "run.json").read_text())["command"] == command


def test_command_mode_failures(tmp_path):
    root = project(tmp_path)
    failed = run(root, "f", command="echo failing; exit 3")[0]
    assert failed.status is RunStatus.FAILED and failed.error == "command exited with status 3"
    killed = run(root, "k", command="kill -SEGV $$")[0]
    assert killed.error == "command killed by signal SIGSEGV"
    bad = run(root, "b", command="echo ${needs.x}")[0]
    assert bad.status is RunStatus.FAILED and bad.error.startswith("invalid command:")
    args = run(root, "g", command="echo args:", forwarded_args=("a b", "c"))[1]
    assert "args: a b c" in (args / "log.txt").read_text()


def test_a_command_gets_the_runs_environment_and_this_process_keeps_its_own(tmp_path, monkeypatch):
    """A command's process gets this process's variables, then the run's (ENV of its
    configurations, QA_OUTPUT_DIR, QA_LABEL, QA_INPUT_PATH only for a run with an input),
    in the project's folder; this process's environment and cwd do not change."""
    root = project(tmp_path)
    monkeypatch.setenv("INHERITED", "yes")
    monkeypatch.setenv("QA_INPUT_PATH", "/stale/from/the/driver")
    monkeypatch.setenv("OVERRIDDEN", "driver")
    monkeypatch.chdir(tmp_path)
    before = (dict(os.environ), Path.cwd())
    command = (
        'printf \'%s|%s|%s|%s|%s|%s\' "$INHERITED" "$OVERRIDDEN" "$QA_OUTPUT_DIR" '
        '"${QA_INPUT_PATH-unset}" "$QA_LABEL" "$PWD" > {output_dir}/env.txt'
    )
    configs = ({"ENV": {"OVERRIDDEN": "run", "NUMBER": 3}},)
    with_input, out = run(root, "a", command=command, configs=configs, label="lbl")
    assert with_input.status is RunStatus.SUCCEEDED, with_input.error
    inherited, overridden, output_dir, input_path, label, cwd = (
        (out / "env.txt").read_text().split("|")
    )
    assert (inherited, overridden, label) == ("yes", "run", "lbl")
    assert Path(output_dir).parent == out.parent and input_path == str(root / "data" / "a.in")
    assert cwd == str(root)
    task = conftest.make_task(root, "none", (), command=command)  # a run without an input
    without = execute(task)
    assert without.status is RunStatus.SUCCEEDED, without.error
    assert (root / "output" / "none" / "env.txt").read_text().split("|")[3] == "unset"
    assert (dict(os.environ), Path.cwd()) == before


def test_context_from_task_is_plain_and_picklable(tmp_path):
    root = project(tmp_path)
    task = make_task(root, configs=("base", {"a": {"b": 1}}), forwarded_args=("--x",))
    context = RunContext.from_task(task)
    assert context.input_path == root / "data" / "a.in"
    assert context.rel_input_path == Path("a.in")
    assert context.configs == ["base", {"a": {"b": 1}}] and context.params == {"a": {"b": 1}}
    assert context.forwarded_args == ["--x"]
    # QA-Board's keys in obj: its documented `ctx.obj['output_directory'] / 'metrics.json'`
    assert context.obj["output_directory"] / "metrics.json" == context.output_dir / "metrics.json"
    assert context.obj["input_path"] == Path("a.in") and context.obj["batch_label"] == "default"
    assert context.obj["configuration"] == 'base:{"a": {"b": 1}}'
    assert context.output_directory == context.output_dir and context.id == task.key
    assert not context.ran() and context.is_failed()
    assert "obj" not in context.asdict() and context.asdict()["configs"] == context.configs
    context.params["a"]["b"] = 2  # the task is not changed through its context
    assert task.payload.params == {"a": {"b": 1}}
    copy = pickle.loads(pickle.dumps(context))
    assert copy.configurations is copy.configs and copy.output_dir == root / "output" / "a"


def test_a_run_that_sets_up_things_at_import_is_imported_once(tmp_path):
    main = textwrap.dedent("""
        import itertools
        counter = itertools.count()
        def run(context):
            return {"calls": next(counter)}
    """)
    root = project(tmp_path, main)
    assert [run(root, name)[0].metrics["calls"] for name in "abc"] == [0, 1, 2]


def test_a_metrics_file_that_is_not_utf8_fails_the_run_with_the_reason(tmp_path):
    root = project(tmp_path)
    # valid JSON, but for its one byte that is not UTF-8
    result, _ = run(root, command="""printf '{"a": "\\377"}' > $QA_OUTPUT_DIR/metrics.json""")
    assert result.status is RunStatus.FAILED
    assert "metrics.json is not valid JSON" in (result.error or "")


def test_run_json_holds_what_orjson_cannot_encode(tmp_path):
    """run.json is written by orjson, and by json for what orjson refuses (keys that are not
    strings, integers beyond 64 bits): the same record either way."""
    root = project(tmp_path)
    configs = ({1: "one", "big": 2**70},)
    result, out = run(root, command="true", configs=configs)
    assert result.status is RunStatus.SUCCEEDED, result.error
    record = json.loads((out / "run.json").read_text())
    assert record["configurations"] == [{"1": "one", "big": 2**70}]
    assert record["params"] == {"1": "one", "big": 2**70}
