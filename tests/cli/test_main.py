"""The `qa` command line: planning output, global options, errors and exit codes."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys

BATCHES = """
my-batch:
  configs: [base]
  inputs: [A.jpg, B.jpg]
other:
  inputs: [A.jpg]
  matrix: {x: [1, 2]}
  configs: ["v${matrix.x}"]
"""


def test_list_is_a_json_array_with_the_documented_fields(project, qa):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    result = qa("-C", str(root), "batch", "my-batch", "--list")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert [r["rel_input_path"] for r in runs] == ["A.jpg", "B.jpg"]
    for key in (
        "batch",
        "input_path",
        "rel_input_path",
        "database",
        "type",
        "configurations",
        "params",
        "platform",
        "output_dir",
    ):
        assert key in runs[0]
    assert runs[0]["input_path"] == str(root.resolve() / "A.jpg")
    assert runs[0]["configurations"] == ["base"]


def test_list_inputs_and_output_dirs(project, qa):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    inputs = qa("-C", str(root), "batch", "my-batch", "--list-inputs")
    assert inputs.stdout.splitlines() == [
        str(root.resolve() / "A.jpg"),
        str(root.resolve() / "B.jpg"),
    ]
    dirs = qa(
        "-C", str(root), "batch", "my-batch", "other", "--list-output-dirs"
    ).stdout.splitlines()
    assert len(dirs) == 4 and len(set(dirs)) == 4
    assert all(d.startswith(str(root.resolve() / "output")) for d in dirs)


def test_several_batches_and_batch_option(project, qa):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    runs = qa("-C", str(root), "batch", "--batch", "other", "-b", "my-batch", "--list").json()
    assert [r["batch"] for r in runs] == ["other", "other", "my-batch", "my-batch"]


def test_global_options(project, qa):
    root = project(batches="b:\n  inputs: [A.jpg]\n", files=["A.jpg", "db2/A.jpg"])
    runs = qa(
        "-C",
        str(root),
        "--label",
        "exp",
        "-c",
        "base:delta",
        "--config",
        "more",
        "--platform",
        "arm",
        "--database",
        str(root / "db2"),
        "--tuning",
        '{"t": 1}',
        "batch",
        "b",
        "--list",
    ).json()
    assert runs[0]["configurations"] == ["base", "delta", "more"]  # --tuning: extra parameters
    assert runs[0]["params"] == {"t": 1}
    assert runs[0]["platform"] == "arm"
    assert runs[0]["input_path"] == str(root.resolve() / "db2" / "A.jpg")


def test_project_found_from_a_subfolder(project, qa):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    (root / "sub").mkdir()
    result = qa("batch", "my-batch", "--list-inputs", cwd=root / "sub")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_dryrun_prints_one_line_per_run(project, qa):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    result = qa("-C", str(root), "--dryrun", "batch", "my-batch", "other")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert len(lines) == 5
    assert lines[0].startswith("run     my-batch  A.jpg  [base]")
    assert "other  A.jpg  [v2]" in lines[3]
    assert "4 run(s) planned, 4 to run, 0 cached" in lines[-1]


def test_errors_are_one_paragraph_with_exit_code_2(project, qa):
    root = project(batches="b:\n  inputs: 3\n", files=["A.jpg"])
    result = qa("-C", str(root), "batch", "b", "--list")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert (
        "batches.yaml:2" in result.stderr
        and "`inputs`" in result.stderr
        and "batch 'b'" in result.stderr
    )
    assert result.stdout == ""


def test_each_user_error_exits_2(project, qa):
    cases = {
        "malformed": ("b: [\n", "b", r"batches.yaml:2: malformed YAML"),
        "unknown": ("my-batch: {inputs: [A.jpg]}\n", "my-bach", "Did you mean 'my-batch'"),
        "missing input": ("b: {inputs: [nope.jpg]}\n", "b", "does not exist"),
        "matrix": (
            "b:\n  inputs: [A.jpg]\n  matrix: {x: [1]}\n  configs: ['${matrix.y}']\n",
            "b",
            "matrix.y",
        ),
        "cycle": ("aliases: {a: [b], b: [a]}\n", "a", "a -> b -> a"),
    }
    for name, (batches, target, expected) in cases.items():
        root = project(batches=batches, files=["A.jpg"])
        result = qa("-C", str(root), "batch", target, "--list")
        assert result.exit_code == 2, name
        assert expected in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr, name


def test_unknown_key_warning_does_not_fail(project, qa):
    root = project(
        qaboard="whatever: 1\n", batches="b: {inputs: [A.jpg], colour: red}\n", files=["A.jpg"]
    )
    result = qa("-C", str(root), "batch", "b", "--list")
    assert result.exit_code == 0
    assert "unknown key `whatever`" in result.stderr
    assert "batch 'b': unknown key `colour`" in result.stderr
    assert len(json.loads(result.stdout)) == 1


def test_no_project(tmp_path, qa):
    result = qa("batch", "x", cwd=tmp_path)
    assert result.exit_code == 2
    assert "No qaboard.yaml found" in result.stderr


def test_python_dash_m_and_console_script(project):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    out = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "my-batch", "--list-inputs"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2
    version = subprocess.run(
        [sys.executable, "-m", "qaflow", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_the_console_entry_exits_promptly_yet_runs_exit_handlers_and_flushes(project):
    """`cli.entry` skips the interpreter's teardown: the exit code, buffered output (a pipe,
    so not line-buffered) and atexit handlers must all survive that."""
    many = "many:\n  inputs: ['*.jpg']\n"
    root = project(batches=many, files=[f"{i}.jpg" for i in range(300)])
    code = (
        "import atexit, sys, threading\n"
        "from qaflow.cli import main as cli\n"
        "atexit.register(lambda: sys.stderr.write('handler ran\\n'))\n"
        "if sys.argv[1] == 'thread':\n"
        "    threading.Thread(target=lambda: (__import__('time').sleep(0.5), print('thread done'))).start()\n"
        "sys.argv = ['qa', *sys.argv[2:]]\n"
        "cli.entry()\n"
    )
    run = functools.partial(subprocess.run, capture_output=True, text=True, check=False)
    listed = run(
        [sys.executable, "-c", code, "-", "-C", str(root), "batch", "many", "--list-inputs"]
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 300 and listed.stderr == "handler ran\n"
    failed = run([sys.executable, "-c", code, "-", "-C", str(root), "batch", "nope"])
    assert failed.returncode == 2 and "nope" in failed.stderr and "handler ran" in failed.stderr
    waited = run([sys.executable, "-c", code, "thread", "--version"])  # a normal exit waits for it
    assert waited.returncode == 0 and "thread done" in waited.stdout, waited


def test_commands_are_imported_when_they_run_not_with_the_cli():
    code = (
        "import sys, qaflow.cli.main as cli\n"
        "loaded = [m for m in ('qaflow.plan.planner', 'qaflow.cli.commands.batch', 'qaflow.store') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert cli.cli.get_command(None, 'status').name == 'status'\n"
        "assert 'qaflow.cli.commands.status' in sys.modules and 'qaflow.cli.commands.batch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_reader_that_leaves_early_gets_no_traceback(project):
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"])
    with subprocess.Popen(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "my-batch", "other", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as qa:
        assert qa.stdout is not None and qa.stderr is not None
        qa.stdout.close()  # like `| head -0`: every write to stdout fails with EPIPE
        stderr = qa.stderr.read().decode()
        assert qa.wait(timeout=30) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_long_commands_run_with_the_garbage_collector_that_short_ones_pause(project, monkeypatch):
    """`cli.main` pauses the cyclic GC (planning builds big acyclic graphs); `qa serve` and
    `qa wait`, which may last for days, turn it back on."""
    import gc

    import uvicorn

    import qaflow
    import qaflow.cli.commands.wait
    import qaflow.cli.main
    import qaflow.execution.scheduler
    from qaflow.execution.report import RecordingReporter

    main_py = {"qa/main.py": "def run(context):\n    return {'ok': 1}\n"}
    root = project(batches=BATCHES, files=["A.jpg", "B.jpg"], extra=main_py)
    seen: dict[str, bool] = {}

    def serving(app, **options):
        seen["serve"] = gc.isenabled()

    def waiting(store, execution_id, timeout):
        seen["wait"] = gc.isenabled()
        raise TimeoutError("still running")

    monkeypatch.setattr(uvicorn, "run", serving)
    monkeypatch.setattr(qaflow.cli.commands.wait, "wait_for", waiting)
    monkeypatch.setattr(
        qaflow.cli.commands.wait, "find", lambda store, ref: type("Found", (), {"id": ref})()
    )
    real_run = qaflow.execution.scheduler.Scheduler.run

    def executing(self, jobs, settled=()):  # runs execute with the GC on, planning frozen
        seen["batch"] = gc.isenabled() and gc.get_freeze_count() > 0
        return real_run(self, jobs, settled)

    monkeypatch.setattr(qaflow.execution.scheduler.Scheduler, "run", executing)
    for args in (["serve"], ["wait", "0123abcd"], ["batch", "my-batch"]):
        with contextlib.suppress(SystemExit):
            qaflow.cli.main.main(["-C", str(root), *args])
    assert seen == {"serve": True, "wait": True, "batch": True}
    assert gc.isenabled() and gc.get_freeze_count() == 0  # main leaves it as it found it
    qaflow.batch("my-batch", project=root, reporter=RecordingReporter())
    assert gc.get_freeze_count() == 0  # the library freezes nothing of its caller's
