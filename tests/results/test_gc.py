"""`qa gc` and qaflow.results.gc: which run directories are removed, which are kept, and safety."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

import qaflow
from conftest import write_project
from qaflow.config.git import GitInfo
from qaflow.config.project import Project
from qaflow.errors import UsageError
from qaflow.execution.report import RecordingReporter
from qaflow.results.gc import GcPlan, Removal, apply_gc, human_size, parse_duration, plan_gc
from qaflow.store import Store
from qaflow.worker.rundir import lock_dir_of, run_lock, try_run_lock

MAIN = "def run(context):\n    (context.output_dir/'x.bin').write_bytes(b'x'*1000)\n    return {}\n"
BATCHES = "b:\n  inputs: [A.txt, B.txt]\n  configs: [{{v: {v}}}]\n"
LATER = time.time() + 40 * 86400  # "now", 40 days on: every execution so far is old
DAYS_30 = 30 * 86400


def run_batch(root: Path, label: str, *, v: int, name: str = "b", step: str = "one") -> list[Path]:
    """Run batch `name` (b: v=`v`; p: its run step echoes `step`); return its output dirs."""
    (root / "qa" / "batches.yaml").write_text(BATCHES.format(v=v) + PIPELINE.format(step=step))
    execution = qaflow.batch(name, project=root, label=label, reporter=RecordingReporter())
    assert execution.exit_code == 0
    return sorted(run.output_dir for run in execution.runs())


PIPELINE = "p:\n  type: pipeline\n  configs:\n  - run: echo {step}\n  - batch: b\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "proj", batches="", files=["A.txt", "B.txt"], extra={"qa/main.py": MAIN}
    )


@pytest.fixture
def old_new(root: Path) -> tuple[list[Path], list[Path]]:
    """An execution labelled "old" (v=1), then one labelled "new" (v=2): other output dirs."""
    old = run_batch(root, "old", v=1)
    new = run_batch(root, "new", v=2)
    assert len(old) == len(new) == 2 and not set(old) & set(new)
    return old, new


def plan(
    root: Path, labels: tuple[str, ...] = (), older: float | None = None, now: float | None = None
) -> GcPlan:
    project = Project.discover(root)
    with Store.open(project.database_url, storage=project.storage) as store:
        return plan_gc(project.storage, store, labels, older, now)


def removed(gc_plan: GcPlan) -> set[Path]:
    return {r.path for r in gc_plan.removals}


def orphan(root: Path, rel: str = "gone/X.txt/0123abcd") -> Path:
    """A run directory (it has a run.json) that no execution references."""
    folder = root / "output" / "runs" / rel
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{}")
    (folder / "data.bin").write_bytes(b"o" * 2500)
    return folder


def du(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


# ---------------------------------------------------------------- the policy
def test_by_default_every_execution_is_kept_and_only_orphans_go(root, old_new, qa):
    stray = orphan(root)
    assert removed(plan(root)) == {stray}
    assert removed(plan(root, now=LATER)) == {stray}  # no --older-than: age does not matter
    result = qa("-C", str(root), "gc")
    assert result.exit_code == 0, result.stderr
    assert not stray.exists() and not (root / "output" / "runs" / "gone").exists()
    assert all(d.is_dir() for d in old_new[0] + old_new[1])
    assert "removed 1 run directories" in result.stdout
    assert "(4 kept, referenced by 2 executions)" in result.stdout
    assert "execution records are kept" in result.stdout


def test_dryrun_lists_exactly_the_unreferenced_dirs_and_removes_nothing(root, old_new, qa):
    stray = orphan(root)
    result = qa("-C", str(root), "gc", "--older-than", "0s", "--keep-labels", "new", "--dryrun")
    assert result.exit_code == 0, result.stderr
    listed = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith(" ")]
    runs = root / "output" / "runs"
    expected = sorted(p.relative_to(runs).as_posix() for p in [*old_new[0], stray])
    assert sorted(listed) == expected
    total = sum(du(p) for p in [*old_new[0], stray])
    assert f"would remove 3 run directories, freeing {human_size(total)}" in result.stdout
    assert all(p.is_dir() for p in [*old_new[0], *old_new[1], stray])


def test_older_than_removes_what_only_old_executions_reference(root, old_new):
    old, new = old_new
    assert removed(plan(root, older=DAYS_30)) == set()  # everything is recent
    gc_plan = plan(root, ("new",), DAYS_30, LATER)  # 40 days on, only the label keeps
    assert removed(gc_plan) == set(old)
    assert (gc_plan.kept, gc_plan.kept_executions, gc_plan.executions) == (2, 1, 2)
    result = apply_gc(gc_plan)
    assert [r.path for r in result.removed] == old and not result.skipped
    assert not any(p.exists() for p in old) and all(p.is_dir() for p in new)
    assert all(p.parent.is_dir() for p in new)  # A.txt/, B.txt/ still hold the new runs


def test_keep_labels_keeps_old_runs_whatever_their_age(root, old_new):
    old, new = old_new
    assert removed(plan(root, ("old",), DAYS_30, LATER)) == set(new)
    assert removed(plan(root, ("old,new",), DAYS_30, LATER)) == set()
    assert removed(plan(root, ("old", "new"), DAYS_30, LATER)) == set()
    assert removed(plan(root, (), DAYS_30, LATER)) == set(old + new)


def test_cli_older_than_with_keep_labels(root, old_new, qa):
    old, new = old_new
    result = qa("-C", str(root), "gc", "--older-than", "0s", "--keep-labels", "other,new")
    assert result.exit_code == 0, result.stderr
    assert "removed 2 run directories" in result.stdout
    assert "(2 kept, referenced by 1 executions)" in result.stdout
    assert not any(p.exists() for p in old) and all(p.is_dir() for p in new)
    with Store.open(
        Project.discover(root).database_url, storage=root / "output"
    ) as store:  # the records stay
        assert {e.label for e in store.lookups.executions(limit=10)} == {"old", "new"}


def test_a_running_execution_keeps_its_runs(root, old_new):
    pending = root / "output" / "runs" / "b" / "A.txt" / "feedbeef"
    pending.mkdir()
    (pending / "run.json").write_text("{}")
    with Store.open(Project.discover(root).database_url, storage=root / "output") as store:
        live = store.writes.create_execution(
            label="live", project="p", argv=[], git=GitInfo(), pid=None, host=None
        )
        spec = {"id": "k", "batch": "b", "platform": "linux", "type": "default"}
        store.writes.add_runs(live, [{**spec, "output_dir": str(pending)}])
    gc_plan = plan(root, (), DAYS_30, LATER)
    assert pending not in removed(gc_plan) and removed(gc_plan) == set(old_new[0] + old_new[1])


def test_sizes_match_the_bytes_written(root, old_new, qa):
    stray = orphan(root)
    gc_plan = plan(root, ("new",), DAYS_30, LATER)
    sizes = {r.path: r.size for r in gc_plan.removals}
    assert sizes == {p: du(p) for p in [*old_new[0], stray]}
    assert sizes[stray] == 2 + 2500  # run.json "{}" and data.bin
    assert all(size > 1000 for size in sizes.values())  # x.bin and qaflow's own files
    result = apply_gc(gc_plan)
    assert result.freed == gc_plan.size == sum(sizes.values())


def test_empty_parent_folders_are_removed_up_to_runs(root, old_new):
    deep = orphan(root, "gone/deep/er/X.txt/0123abcd")
    keep = root / "output" / "runs" / "gone" / "notes.txt"
    keep.write_text("not a run")
    result = apply_gc(plan(root))
    assert [r.path for r in result.removed] == [deep]
    assert result.emptied == 3  # X.txt, er, deep; gone/ still holds notes.txt
    assert keep.is_file() and not (root / "output" / "runs" / "gone" / "deep").exists()
    keep.unlink()
    only = orphan(root, "solo/0123abcd")
    apply_gc(plan(root))
    assert not only.parent.exists() and (root / "output" / "runs").is_dir()


def test_symlinks_are_not_followed_and_their_targets_survive(root, old_new, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text("{}")
    (outside / "precious.bin").write_bytes(b"p" * 100)
    runs = root / "output" / "runs"
    (runs / "linked").symlink_to(outside, target_is_directory=True)
    stray = orphan(root)
    (stray / "to-outside").symlink_to(outside, target_is_directory=True)
    (stray / "file-link").symlink_to(outside / "precious.bin")
    gc_plan = plan(root)
    assert removed(gc_plan) == {stray}
    links = len(str(outside)) + len(str(outside / "precious.bin"))  # a link's size: its target's
    assert gc_plan.removals[0].size == du(stray) == 2 + 2500 + links  # not what they point to
    apply_gc(gc_plan)
    assert not stray.exists() and (runs / "linked").is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["precious.bin", "run.json"]
    assert (outside / "precious.bin").read_bytes() == b"p" * 100


def test_apply_refuses_folders_outside_runs_and_changed_ones(root, old_new, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text("{}")
    runs = root / "output" / "runs"
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    stray = orphan(root)
    fresh = orphan(root, "gone/Y.txt/0123abcd")
    later = time.time() + 60
    os.utime(fresh / "run.json", (later, later))  # a run started there after planning
    forged = GcPlan(
        runs,
        tuple(Removal(p, 0) for p in (runs / "escape", outside, runs, stray, fresh)),
        kept=0,
        kept_executions=0,
        executions=0,
        planned_at=time.time(),
    )
    result = apply_gc(forged)
    assert [r.path for r in result.removed] == [stray]
    reasons = {r.path.name: why for r, why in result.skipped}
    assert reasons["escape"] == "no longer a folder" and "not inside" in reasons["outside"]
    assert "not inside" in reasons["runs"] and "changed since planning" in reasons["0123abcd"]
    assert (outside / "run.json").is_file() and runs.is_dir() and fresh.is_dir()


def test_a_run_holding_its_lock_is_skipped_and_a_free_lock_goes_with_its_dir(root, old_new):
    busy, free = orphan(root), orphan(root, "gone/Y.txt/4567cdef")
    runs_root = root / "output" / "runs"
    with run_lock(
        free, lock_dir_of(free, runs_root)
    ):  # a run ran here once: its batch folder keeps a .locks file
        pass
    gc_plan = plan(root)
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_lock, args=(str(busy), str(lock_dir_of(busy, runs_root)), 5.0)
    )
    holder.start()  # a run executing in busy/ (locks belong to processes: another process)
    try:
        _wait_locked(busy, lock_dir_of(busy, runs_root))
        result = apply_gc(gc_plan)
    finally:
        holder.terminate()
        holder.join()
    assert [r.path for r in result.removed] == [free]
    assert [(r.path, why) for r, why in result.skipped] == [(busy, "in use: a run holds its lock")]
    assert busy.is_dir()
    assert [r.path for r in apply_gc(plan(root)).removed] == [busy]  # once the run is done
    assert not (root / "output" / "runs" / "gone").exists()


def _hold_lock(path: str, lock_dir: str, seconds: float) -> None:
    with run_lock(Path(path), Path(lock_dir)):
        time.sleep(seconds)


def _wait_locked(path: Path, lock_dir: Path) -> None:
    deadline = time.monotonic() + 60  # generous: the machine may be loaded
    while time.monotonic() < deadline:
        with contextlib.ExitStack() as stack:
            if not try_run_lock(path, stack, lock_dir):
                return
        time.sleep(0.02)
    raise AssertionError("the other process never took the lock")


def test_a_pipeline_folder_goes_whole_when_none_of_its_steps_is_referenced(root):
    first = run_batch(root, "old", v=1, name="p", step="one")
    run_batch(root, "new", v=1, name="p", step="two")
    run_batch(root, "newest", v=1, name="p", step="one")
    folders = sorted(
        f for f in (root / "output" / "runs" / "p").iterdir() if f.is_dir()
    )  # not .locks
    assert len(folders) == 2 and all((f / "steps").is_dir() for f in folders)
    [two] = [f for f in folders if "two" in next((f / "step-1").rglob("log.txt")).read_text()]
    gc_plan = plan(root, ("newest",), DAYS_30, LATER)
    assert removed(gc_plan) == {two}  # the b runs are those of "newest" too
    assert gc_plan.removals[0].pipeline and gc_plan.removals[0].size == du(two)
    apply_gc(gc_plan)
    assert not two.exists() and all(p.is_dir() for p in first)


def test_a_bad_older_than_is_a_usage_error(root, qa):
    result = qa("-C", str(root), "gc", "--older-than", "3 months")
    assert result.exit_code == 2
    assert "--older-than '3 months'" in result.stderr and "30d" in result.stderr
    assert "2w" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "30 days", "1y"])
def test_bad_durations(text):
    with pytest.raises(UsageError, match=r"45s .* 2w"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 2**20, "5.0 MB"), (3 * 2**30, "3.0 GB")],
)
def test_human_sizes(size, shown):
    assert human_size(size) == shown


FAILING = (
    "from pathlib import Path\n"
    "def run(context):\n"
    "    if Path(context.database, 'fail').exists():\n"
    "        raise RuntimeError('no')\n"
    "    (context.output_dir/'x.bin').write_bytes(b'x'*1000)\n"
)


def test_a_failed_attempt_goes_when_old_and_the_committed_result_stays(root):
    (root / "qa" / "main.py").write_text(FAILING)
    [a, b] = run_batch(root, "good", v=1)
    (root / "fail").write_text("")
    failed = qaflow.batch("b", project=root, label="bad", force=True, reporter=RecordingReporter())
    attempts = sorted(run.output_dir for run in failed.runs())
    assert failed.exit_code == 1 and all(
        p.parent == a.parent or p.parent == b.parent for p in attempts
    )
    assert {p.name.split(".")[0] for p in attempts} == {a.name, b.name}  # beside the results
    assert removed(plan(root, older=DAYS_30)) == set()  # recent: the failed logs are kept
    gc_plan = plan(root, ("good",), DAYS_30, LATER)  # 40 days on, the label keeps "good"
    assert removed(gc_plan) == set(attempts)
    apply_gc(gc_plan)
    assert not any(p.exists() for p in attempts)
    assert a.is_symlink() and (a / "x.bin").is_file() and (b / "x.bin").is_file()
    everything = apply_gc(plan(root, (), DAYS_30, LATER))  # no kept execution: all goes
    assert {r.path for r in everything.removed} == {a, b}
    assert not a.is_symlink() and not a.exists() and not list(a.parent.glob(f"{a.name}.*"))
