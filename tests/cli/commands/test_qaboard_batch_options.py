"""QA-Board's `qa batch` options on qaflow, through real `qa` processes: --tuning-search(-file),
--prefix-outputs-path, `qa run -o`, --action-on-pending, --save-manifests-in-database, and a
batch's `local:` section as `context.job_options`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_project

SRC = Path(__file__).resolve().parents[3] / "src"

# run() records what it saw (one file per call, so calls are counted), and when the
# environment says so, waits for a release file (a run pending in another execution) or fails
MAIN = """
import json, os, time, uuid
from pathlib import Path

def run(context):
    calls = Path(os.environ["CALLS_DIR"])
    calls.mkdir(exist_ok=True)
    (calls / uuid.uuid4().hex).write_text(str(context.rel_input_path))
    (context.output_dir / "out.txt").write_text(str(context.params))
    (context.output_dir / "seen.json").write_text(json.dumps({
        "params": context.params, "extra_parameters": context.extra_parameters,
        "job_options": context.job_options, "input": str(context.rel_input_path),
    }, default=str))
    if os.environ.get("HOLD"):
        (calls.parent / "started").write_text("yes")
        deadline = time.time() + 240
        while not (calls.parent / "release").exists() and time.time() < deadline:
            time.sleep(0.05)
    return {"is_failed": bool(os.environ.get("FAIL"))}
"""

QABOARD = """
project: {name: proj, entrypoint: qa/main.py}
inputs: {database: data, batches: qa/batches.yaml}
"""

BATCHES = """
one:
  inputs: [a.jpg]
pics:
  inputs: [a.jpg, b.jpg]
two-configs:
  inputs: [a.jpg]
  matrix: {k: [1, 2]}
folders:
  inputs: [f1]
with-runner-config:
  local:
    param: value
  lsf:
    queue: long
  inputs: [a.jpg]
"""


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "proj",
        qaboard=QABOARD,
        batches=BATCHES,
        files=["data/a.jpg", "data/b.jpg", "data/f1/x.bin"],
        extra={"qa/main.py": MAIN},
    )


def env_of(root: Path, **env: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT", "QA_STORAGE")}
    return {**environ, "PYTHONPATH": str(SRC), "CALLS_DIR": str(root / "calls"), **env}


def qa(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaflow", *args],
        cwd=root,
        env=env_of(root, **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def calls(root: Path) -> int:
    return len(list((root / "calls").iterdir())) if (root / "calls").is_dir() else 0


def seen(root: Path) -> list[dict]:
    found = (root / "output").rglob("seen.json")
    return sorted((json.loads(p.read_text()) for p in found), key=json.dumps)


# ---------------------------------------------------------------- --tuning-search
def test_tuning_search_plans_every_run_once_per_point(proj):
    search = '{"parameter_search": {"t": [1, 2], "mode": ["x"]}, "search_type": "grid"}'
    listed = qa(
        proj, "--tuning", '{"base": 0}', "batch", "pics", "--tuning-search", search, "--list"
    )
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    # inputs x points, QA-Board's order: each input, then each point (keys sorted, last fastest)
    points = [(r["rel_input_path"], r["params"]["mode"], r["params"]["t"]) for r in runs]
    assert sorted(points) == [
        ("a.jpg", "x", 1),
        ("a.jpg", "x", 2),
        ("b.jpg", "x", 1),
        ("b.jpg", "x", 2),
    ]
    assert all(r["params"]["base"] == 0 for r in runs)  # --tuning below the search's
    assert len({r["id"] for r in runs}) == 4 and len({r["output_dir"] for r in runs}) == 4
    assert not (proj / "output").exists()  # --list writes nothing


def test_tuning_search_file_runs_with_the_parameters_as_extra_parameters(proj):
    (proj / "search.yaml").write_text(
        "parameter_search:\n  - {t: [1, 2, 3]}\n  - {u: [7]}\nsearch_options: {n_iter: 2}\n"
    )
    result = qa(proj, "batch", "pics", "--tuning-search-file", "search.yaml", "--", "--flag")
    assert result.returncode == 0, result.stdout + result.stderr
    extra = [r["extra_parameters"] for r in seen(proj)]
    # n_iter applies to each search of the list: t 1 and 2 (not 3), then u 7; over 2 inputs
    expected = [{"forwarded_args": ["--flag"], **p} for p in ({"t": 1}, {"t": 2}, {"u": 7})]
    assert sorted(extra, key=json.dumps) == sorted(expected * 2, key=json.dumps)
    again = qa(proj, "batch", "pics", "--tuning-search-file", "search.yaml", "--", "--flag")
    assert again.returncode == 0 and calls(proj) == 6  # every point's result is reused


def test_tuning_search_sampler_draws_n_iter_distinct_points(proj):
    search = {
        "parameter_search": {"t": [1, 2, 3, 4], "u": [5, 6]},
        "search_type": "sampler",
        "search_options": {"n_iter": 3, "random_state": 7},
    }
    listed = [
        json.loads(qa(proj, "batch", "one", "--tuning-search", json.dumps(search), "--list").stdout)
        for _ in range(2)
    ]
    points = [[(r["params"]["t"], r["params"]["u"]) for r in runs] for runs in listed]
    assert len(set(points[0])) == 3 and points[0] == points[1]  # random_state: reproducible


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tuning-search", "{not json"], "--tuning-search is not valid JSON"),
        (["--tuning-search", '{"t": [1]}'], "`parameter_search` key"),
        (["--tuning-search", '{"parameter_search": {"t": 1}}'], "parameter_search.t must be a non-empty list"),
        (["--tuning-search", '{"parameter_search": {"t": [1]}, "search_type": "bayes"}'], "'bayes' is not one of grid, sampler"),
        (["--tuning-search", '{"parameter_search": {"t": [1]}, "search_type": "sampler"}'], "needs search_options.n_iter"),
        (["--tuning-search", '{"parameter_search": {}}', "--tuning-search-file", "s.json"], "give only one"),
        (["--tuning-search-file", "s.txt"], "unsupported format '.txt'"),
        (["--tuning-search-file", "missing.json"], "cannot read it"),
        (["--action-on-pending", "later"], "'later' is not one of"),
        (["--prefix-outputs-path", "pre", "two-configs"], "would both be there"),
    ],
)  # fmt: skip
def test_bad_values_are_usage_errors_that_write_nothing(proj, args, message):
    (proj / "s.txt").write_text("{}")
    (proj / "s.json").write_text("{}")
    result = qa(proj, "batch", *(["pics"] if "two-configs" not in args else []), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    if args[0] != "--action-on-pending":  # click's own usage error otherwise
        assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
    assert not (proj / "output").exists()


def test_outputs_action_on_pending_of_qaboard_yaml_is_checked(proj):
    (proj / "qaboard.yaml").write_text(QABOARD + "outputs: {action_on_pending: later}\n")
    result = qa(proj, "batch", "pics")
    assert result.returncode == 2, result.stderr
    assert "`outputs.action_on_pending`" in result.stderr and "'later'" in result.stderr
    assert "'wait', 'sync', 'skip' or 'run'" in result.stderr


# ---------------------------------------------------------------- --prefix-outputs-path, qa run -o
def test_prefix_outputs_path_links_each_run_at_prefix_and_input(proj):
    search = '{"parameter_search": {"t": [1, 2]}}'
    args = ("batch", "pics", "--prefix-outputs-path", "pre", "--tuning-search", search)
    listed = qa(proj, *args, "--list-output-dirs")
    pre = proj / "output" / "pre"
    expected = sorted(str(pre / f"t={t}" / i) for t in (1, 2) for i in ("a", "b"))
    assert sorted(listed.stdout.split()) == expected
    result = qa(proj, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    for t in (1, 2):
        for name in ("a", "b"):
            link = pre / f"t={t}" / name
            assert link.is_symlink()
            assert json.loads((link / "seen.json").read_text())["params"]["t"] == t
            assert json.loads((link / "metrics.json").read_text())["is_failed"] is False
    again = qa(proj, *args)  # reused runs: the links are made again, to the same results
    assert again.returncode == 0 and calls(proj) == 4 and (pre / "t=1" / "a" / "out.txt").is_file()


def test_qa_run_output_links_the_result_and_refuses_a_folder_with_files(proj, tmp_path):
    out = tmp_path / "chosen"
    result = qa(proj, "run", "-i", "a.jpg", "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.is_symlink() and (out / "out.txt").is_file() and (out / "metrics.json").is_file()
    again = qa(proj, "run", "-i", "b.jpg", "--output", str(out))  # a link of ours: replaced
    assert again.returncode == 0 and json.loads((out / "seen.json").read_text())["input"] == "b.jpg"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = qa(proj, "run", "-i", "a.jpg", "-o", str(busy))
    assert refused.returncode == 2 and "removes nothing" in refused.stderr
    assert (busy / "keep.txt").read_text() == "mine" and calls(proj) == 2


# ---------------------------------------------------------------- --save-manifests-in-database
def test_save_manifests_in_database_copies_them_into_the_input_folder(proj):
    folder = proj / "data" / "f1"
    plain = qa(proj, "batch", "folders")
    assert plain.returncode == 0 and not (folder / "manifest.outputs.json").exists()
    saved = qa(proj, "batch", "folders", "--save-manifests-in-database")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    outputs = json.loads((folder / "manifest.outputs.json").read_text())
    assert "out.txt" in outputs and "st_size" in outputs["out.txt"]
    assert (folder / "manifest.inputs.json").is_file()
    checked = qa(proj, "check-bit-accuracy-manifest", "--batch", "folders")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # a file input: QA-Board's warning, and nothing written beside it
    files = qa(proj, "batch", "pics", "--save-manifests")  # QA-Board's deprecated spelling
    assert files.returncode == 0 and "only for inputs that are folders" in files.stderr
    assert not (proj / "data" / "manifest.outputs.json").exists()


# ---------------------------------------------------------------- a batch's `local:` section
def test_a_batchs_runner_section_is_in_job_options(proj):
    result = qa(proj, "batch", "with-runner-config")
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = seen(proj)
    assert run["job_options"]["type"] == "local" and run["job_options"]["param"] == "value"
    assert "queue" not in run["job_options"]  # the lsf: section is for the lsf runner


# ---------------------------------------------------------------- --action-on-pending
def hold(root: Path, **env: str) -> subprocess.Popen[str]:
    """`qa batch` of one run that waits for `release`, once it has started."""
    (root / "release").unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "qaflow", "batch", "one"],
        cwd=root,
        env=env_of(root, HOLD="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (root / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    (root / "started").unlink()
    return process


def blocked_on_lock(root: Path, process: subprocess.Popen[str]) -> None:
    """Wait until a process waits for a run lock of batch `one` (Linux: a `->` line of
    /proc/locks on the inode of its `.locks` file)."""
    inode = (root / "output" / "runs" / "one" / ".locks").stat().st_ino
    deadline = time.monotonic() + 120
    while True:
        lines = Path("/proc/locks").read_text().splitlines()
        if any("->" in line and line.split()[-3].endswith(f":{inode}") for line in lines):
            return
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def qa_popen(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qaflow", *args],
        cwd=root,
        env=env_of(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def release(root: Path, process: subprocess.Popen[str]) -> int:
    (root / "release").write_text("go")
    process.communicate(timeout=240)
    return process.returncode


def test_action_on_pending_skip_and_run_do_not_wait(proj):
    held = hold(proj)
    skipped = qa(proj, "batch", "one", "--action-on-pending", "skip")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr  # left out, as QA-Board
    assert calls(proj) == 1  # the held run only
    ran = qa(proj, "batch", "one", "--action-on-pending", "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert calls(proj) == 2  # executed beside the pending one, which still holds
    assert held.poll() is None
    assert release(proj, held) == 0


def test_action_on_pending_sync_takes_the_pending_runs_result(proj):
    held = hold(proj, FAIL="1")
    synced = qa_popen(proj, "batch", "one", "--action-on-pending", "sync")
    blocked_on_lock(proj, synced)
    assert release(proj, held) == 1
    out, err = synced.communicate(timeout=240)
    assert synced.returncode == 1 and "--action-on-pending sync" in out + err
    assert calls(proj) == 1  # it took the failure, it did not run
    held = hold(proj)
    synced = qa_popen(proj, "batch", "one", "--action-on-pending", "sync")
    blocked_on_lock(proj, synced)
    assert release(proj, held) == 0
    synced.communicate(timeout=240)
    assert synced.returncode == 0 and calls(proj) == 2  # it reused the pending run's result


def test_action_on_pending_wait_runs_when_the_pending_run_failed(proj):
    held = hold(proj, FAIL="1")
    waited = qa_popen(proj, "batch", "one")  # wait: the default
    blocked_on_lock(proj, waited)
    assert release(proj, held) == 1
    waited.communicate(timeout=240)
    assert waited.returncode == 0 and calls(proj) == 2  # the pending run failed: it ran itself
