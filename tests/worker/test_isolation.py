"""Runs that misbehave leak into nothing: not their processes (daemons, forks), not the
state of the worker process they share with the next run, not more workers than runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import qaflow
from qaflow.execution.backends import LocalBackend
from qaflow.execution.executors.local import LocalPool
from qaflow.worker import isolation
from qaflow.worker.model import RunStatus

DEADLINE = 120.0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


DAEMONS = """
import os, subprocess, sys, time
from pathlib import Path

def run(context):
    pids = Path(context.database) / "pids"
    pids.mkdir(exist_ok=True)
    name = context.input_path.name
    # a shell daemon in its own session, holding the run's stdout
    subprocess.Popen(f"setsid sleep 300 & echo $! > {pids / (name + '.sh')}", shell=True).wait()
    # a Python daemon: double fork without exec, setsid (it holds every fd the worker has)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            (pids / (name + ".py")).write_text(str(os.getpid()))
            time.sleep(300)
        os._exit(0)
    while len(list(pids.glob(name + ".*"))) < 2:
        time.sleep(0.01)
    time.sleep(0.1)  # the shell's pid file is written
    return {"ok": 1}
"""


def test_daemons_started_by_a_run_end_with_it_and_a_piped_qa_finishes(project):
    root = project(
        batches="b:\n  inputs: [a.txt, b.txt]\n",
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": DAEMONS},
    )
    # stdout is a pipe: communicate() returns only when every holder of its write end is gone
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "b"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pids = [int(p.read_text()) for p in sorted((root / "pids").iterdir())]
    assert len(pids) == 4
    assert not [pid for pid in pids if alive(pid)]


STATEFUL = """
import json, os, resource, signal, socket, sys
from pathlib import Path

def seen():
    umask = os.umask(0); os.umask(umask)
    return {
        "pid": os.getpid(),
        "umask": umask,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
        "recursion": sys.getrecursionlimit(),
        "timeout": socket.getdefaulttimeout(),
        "dumps": json.dumps({"a": 1}),
        "encoder": json.JSONEncoder().encode({"a": 1}),
    }

def run(context):
    name = context.input_path.name
    before = seen()
    (context.output_dir / "seen.json").write_text(json.dumps(before))
    if name == "a.txt":  # the first run changes everything it can
        os.umask(0o077)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 64), hard))
        signal.signal(signal.SIGTERM, lambda *a: None)
        sys.setrecursionlimit(123)
        socket.setdefaulttimeout(0.5)
        json.dumps = lambda *a, **k: "not json"
        json.JSONEncoder.encode = lambda self, o: "not json either"
    if name == "c.txt":  # something that cannot be undone: the worker must retire
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 64), min(hard, 64)))
    return {"name": name}
"""


def one_worker_runs(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute batch b one run at a time: its runs by input, and what each wrote to seen.json."""
    execution = qaflow.batch("b", project=root, concurrency=1)
    runs = {run.spec.rel_input_path: run for run in execution.runs()}
    assert all(run.status is RunStatus.SUCCEEDED for run in runs.values()), [
        run.error for run in runs.values()
    ]
    seen = {
        name: json.loads((run.output_dir / "seen.json").read_text()) for name, run in runs.items()
    }
    return runs, seen


def test_what_a_run_changes_of_its_process_does_not_reach_the_next_run(project):
    root = project(
        batches="b:\n  inputs: [a.txt, b.txt, c.txt, d.txt]\n",
        files=["a.txt", "b.txt", "c.txt", "d.txt"],
        extra={"qa/main.py": STATEFUL},
    )
    runs, seen = one_worker_runs(root)
    first, second = seen["a.txt"], seen["b.txt"]
    assert second["pid"] == first["pid"]  # the same worker executed both
    for key in ("umask", "nofile", "sigterm", "recursion", "timeout", "dumps", "encoder"):
        assert second[key] == first[key], key
    # the patched json wrote neither the first run's metrics.json nor the second's
    for name in ("a.txt", "b.txt"):
        metrics = json.loads((runs[name].output_dir / "metrics.json").read_text())
        assert metrics["name"] == name and metrics["is_failed"] is False
    # a hard limit cannot be raised again: that worker retired, a fresh one took d.txt
    assert seen["d.txt"]["pid"] != seen["c.txt"]["pid"]
    assert seen["d.txt"]["nofile"] == first["nofile"]


SHIPPED_HELPER = """
STATE = {"runs": "untouched"}
CONSTANT = "original"

def greet():
    return "original"

class Settings:
    level = 1
"""

PATCHES_A_HELPER = """
import json, os

def run(context):
    import shipped_helper  # first imported by a run, not when the worker started
    from shipped_helper import Settings, greet

    seen = {
        "pid": os.getpid(),
        "greet": shipped_helper.greet(),
        "imported": greet(),
        "level": Settings.level,
        "constant": shipped_helper.CONSTANT,
        "state": shipped_helper.STATE["runs"],
    }
    (context.output_dir / "seen.json").write_text(json.dumps(seen))
    if context.input_path.name == "a.txt":  # run A patches the module it imported
        shipped_helper.greet = lambda: "patched"
        shipped_helper.Settings.level = 99
        shipped_helper.CONSTANT = "patched"
        shipped_helper.STATE["runs"] = "mutated in place"
    return {"greeting": shipped_helper.greet()}
"""


def test_a_module_first_imported_by_a_run_is_restored_for_the_next_run(project):
    root = project(
        batches="b:\n  inputs: [a.txt, b.txt]\n",
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": PATCHES_A_HELPER, "qa/shipped_helper.py": SHIPPED_HELPER},
    )
    runs, seen = one_worker_runs(root)
    assert seen["b.txt"]["pid"] == seen["a.txt"]["pid"]  # the same worker executed both
    assert runs["a.txt"].metrics["greeting"] == "patched"  # run A did patch it
    expected = {"greet": "original", "imported": "original", "level": 1, "constant": "original"}
    for name in ("a.txt", "b.txt"):
        assert {key: seen[name][key] for key in expected} == expected, name
    # out of scope, as documented: an object mutated in place keeps the change
    assert seen["b.txt"]["state"] == "mutated in place"


def test_the_import_watcher_snapshots_modules_as_their_import_ends(tmp_path, monkeypatch):
    """In-process, over an empty `Attributes` (so nothing of pytest's own is restored)."""
    (tmp_path / "watched_plain.py").write_text("def f():\n    return 1\nclass C:\n    x = 1\n")
    (tmp_path / "watched_pkg").mkdir()
    (tmp_path / "watched_pkg" / "__init__.py").write_text("from . import sub\n")
    (tmp_path / "watched_pkg" / "sub.py").write_text("VALUE = 'original'\n")
    replacing = "import sys, types\nsys.modules[__name__] = types.SimpleNamespace(x=1)\n"
    (tmp_path / "watched_replacing.py").write_text(replacing)
    monkeypatch.syspath_prepend(str(tmp_path))
    attributes = isolation.Attributes({}, [], [])
    watcher = isolation.ImportWatcher.install(attributes)
    names = ("watched_plain", "watched_pkg", "watched_pkg.sub", "watched_replacing")
    try:
        import watched_pkg.sub  # type: ignore[import-not-found]
        import watched_plain  # type: ignore[import-not-found]
        import watched_replacing  # type: ignore[import-not-found]

        assert set(attributes.modules) == {"watched_plain", "watched_pkg", "watched_pkg.sub"}
        assert watched_plain.__loader__ is watched_plain.__spec__.loader  # the finder's own
        watched_plain.f = lambda: 2
        watched_plain.C.x = 2
        watched_pkg.sub.VALUE = "patched"
        del sys.modules["watched_plain"]
        attributes.restore()
        assert watched_plain.f() == 1 and watched_plain.C.x == 1
        assert watched_pkg.sub.VALUE == "original"
        assert sys.modules["watched_plain"] is watched_plain
        assert sys.modules["watched_replacing"] is watched_replacing  # its replacement stays
    finally:
        sys.meta_path.remove(watcher)
        for name in names:
            sys.modules.pop(name, None)


FORKS = """
import os, sys, time

def run(context):
    name = context.input_path.name
    pid = os.fork()
    if pid == 0:  # the copy of the worker: its ways back into qaflow
        if name == "returns.txt":
            return {"from": "child"}
        if name == "exits.txt":
            sys.exit(0)
        if name == "raises.txt":
            raise RuntimeError("child")
        time.sleep(300)  # lingers.txt: still there when the run ends
        os._exit(0)
    if name != "lingers.txt":
        os.waitpid(pid, 0)
    return {"from": "parent"}
"""


def test_a_run_that_forks_without_exec_records_one_result(project):
    names = ["returns.txt", "exits.txt", "raises.txt", "lingers.txt"]
    root = project(
        batches=f"b:\n  inputs: [{', '.join(names)}]\n", files=names, extra={"qa/main.py": FORKS}
    )
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "batch", "b", "--local-concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status = subprocess.run(
        [sys.executable, "-m", "qaflow", "-C", str(root), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    shown = json.loads(status.stdout)
    latest = shown[0] if isinstance(shown, list) else shown
    assert latest["status"] == "succeeded"
    assert latest["counts"]["done"] == 4 and latest["counts"]["running"] == 0
    for metrics in Path(root / "output").rglob("metrics.json"):
        assert json.loads(metrics.read_text())["from"] == "parent"


def test_a_pool_starts_no_more_workers_than_runs_to_do():
    with LocalPool(1000, workers=2) as pool:
        assert len(pool.worker_pids) == 2
        assert pool.concurrency == 1000  # the slots stay: `resources: {cpus: N}` still fits
    with LocalBackend(capacity=1000, executes=2) as backend:
        assert backend.pool is not None and len(backend.pool.worker_pids) == 2


def test_qa_batch_with_a_huge_concurrency_starts_a_worker_per_run(project):
    main = "import os\ndef run(context):\n    return {'worker': os.getpid(), 'pool': sorted(map(int, open(f'/proc/{os.getppid()}/task/{os.getppid()}/children').read().split()))}\n"
    root = project(
        batches="b:\n  inputs: [a.txt, b.txt]\n",
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": main},
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qaflow",
            "-C",
            str(root),
            "batch",
            "b",
            "--local-concurrency",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the workers are the fork server's children: it forked two, not a thousand
    pools = [json.loads(p.read_text())["pool"] for p in (root / "output").rglob("metrics.json")]
    assert pools and all(len(pool) <= 2 for pool in pools), pools


def test_an_execution_that_fails_after_it_was_recorded_is_not_left_running(project):
    """A disk that fills up under the driver (ENOSPC from the store's writes or the display)
    must leave the execution finished, not `running`."""
    import errno

    from qaflow.config.project import Project
    from qaflow.execution.report import NullReporter
    from qaflow.store import Store

    class DiskFull(NullReporter):
        def run_finished(self, run, result):
            raise OSError(errno.ENOSPC, "No space left on device")

    root = project(
        batches="b:\n  inputs: [a.txt, b.txt]\n",
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": "def run(context):\n    return {'ok': 1}\n"},
    )
    try:
        qaflow.batch("b", project=root, reporter=DiskFull())
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the error was swallowed")
    project_ = Project.discover(root)
    with Store.open(project_.database_url, storage=project_.storage) as store:
        [execution] = store.lookups.executions(limit=1)
        assert execution.status == "interrupted"
        assert all(run.status.finished for run in store.lookups.runs(execution.id))
    assert (root / "output").is_dir()
