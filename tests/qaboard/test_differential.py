"""Differential test: QA-Board 1.1.1 itself and qaflow plan the same batch files alike.

QA-Board is installed from PyPI into a throwaway virtualenv (a test-only tool; the test is
skipped, saying why, when pip cannot reach a registry; CI has PyPI). Its `iter_inputs` plans
the examples of its documentation (website/docs/batches-running-on-multiple-inputs.md) and
qaflow's `qa batch --list` plans the same files; the runs must agree on inputs,
configurations, params, platform and order. Set QA_TEST_QABOARD_VENV to a virtualenv that
already has qaboard==1.1.1 to skip the installation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import venv
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
DEPENDENCIES = [
    "click",
    "pyyaml",
    "rich",
    "requests",
    "psutil",
    "simplejson",
    "joblib",
    "sentry-sdk",
]

# The documentation's examples, with their paths kept; DB and DB2 are folders of the test.
DOCS_BATCHES = """
database: {linux: DB, windows: DB}

my-batch:
 inputs:
   - A.jpg
   - B.jpg

you-can-override-the-default-database:
  database:
    linux: DB2
    windows: '\\\\\\\\storage\\\\database'
  inputs:
  - Images/Demo3/A.jpg
  - Images/Demo2

using-a-custom-configuration:
  configs:
  - base
  inputs:
  - Bayer/A.dng
  - Bayer/B.dng

multiple-configs:
  configs:
    - base
    - low-light
  inputs:
  - Bayer/A.dng
  - Bayer/B.dng

configs-can-be-complex-objects:
  configs:
    - base
    - low-light
    - cde:
      - "-w 9920"
      - "-h 2448"
      - "-it BAYER10"
  inputs:
  - Bayer/A.dng
  - Bayer/B.dng

each-input-can-have-its-own-configuration:
  configs:
    - base
  inputs:
  - Bayer/A.dng:
  - Bayer/B.dng:
      - low-light
      - cde:
        - "-DD"

each-input-can-have-its-own-configuration-and-appear-twice:
  configurations:
    - base
  inputs:
  - a.txt: {crop: A}
  - a.txt: {crop: B}
  - [a.txt, {crop: C}]
"""

DOCS_MATRIX = """
database: {linux: DB, windows: DB}

multiple-configs-matrix:
  inputs:
  - a.raw
  matrix:
    configs:
      -
          - base
          - tuning
      -
          - base

my-batch-multiple-configs:
  inputs:
  - image.raw
  matrix:
    version: [1, 2]
  configs:
    - base-v${matrix.version}

my-batch-multiple-values:
  inputs:
  - image.raw
  matrix:
    threshold: [1, 2, 3, 4]
    mode: ["a", "b"]
  configs:
    - base
    - block.threshold: ${matrix.threshold}
    - block.mode: ${matrix.mode}

my-batch-matrix-object:
  inputs:
  - image.raw
  matrix:
    point: [
      {x: 10, y: 40},
      {x: 20, y: 50},
    ]
  configs:
    - base
    - flags: "-x=${matrix.point[x]} -y=${matrix.point[y]}"

first-batch: {inputs: [A.jpg]}
second-batch: {inputs: [B.jpg], configs: [base]}
aliases:
  two-batches:
  - first-batch
  - second-batch

.base: &base
  - base
  - partial

hdr:
  configs:
    - *base
    - hdr
  inputs:
    - A
    - B
    - C

.inputs_hdr: &inputs_hdr
  inputs:
    - A
    - B

.HDR: &HDR
  configs:
    - *base
    - hdr_base
    - hdr_motion

.HDR-disabled: &HDR-disabled
  configs:
    - *base

hdr-anchors:
  <<: *HDR
  <<: *inputs_hdr
no-hdr:
  <<: *HDR-disabled
  <<: *inputs_hdr

globbed:
  globs: '*.jpg'
  inputs: [A.jpg, a.txt, Images]
"""

DB_FILES = [
    "A.jpg", "B.jpg", "a.txt", "a.raw", "image.raw", "A", "B", "C",
    "Bayer/A.dng", "Bayer/B.dng", "Images/Demo3/A.jpg", "Images/Demo2/x.jpg", "Images/one.jpg",
]  # fmt: skip

DRIVER = """
import json, sys
from pathlib import Path
from qaboard.config import config
from qaboard.conventions import get_settings
from qaboard.iterators import iter_inputs

batches_file, *names = sys.argv[1:]
settings = get_settings("default", config)
database = Path(config["inputs"]["database"]["linux"])
runs = []
for name in names:
    for rc in iter_inputs([name], [Path(batches_file)], database, [], "linux", {"type": "local"}, config, settings):
        runs.append({"input_path": str(rc.input_path), "configurations": rc.configurations,
                     "params": rc.params, "platform": rc.platform})
print(json.dumps(runs))
"""


@pytest.fixture(scope="session")
def qaboard_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtualenv with QA-Board 1.1.1 (its CLI's light dependencies only)."""
    given = os.environ.get("QA_TEST_QABOARD_VENV")
    if given:
        return Path(given) / "bin" / "python"
    home = tmp_path_factory.mktemp("qb-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    for args in (["--no-deps", "qaboard==1.1.1"], DEPENDENCIES):
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            reason = f"pip cannot install QA-Board 1.1.1 here: {done.stderr.strip()[-300:]}"
            if os.environ.get("CI"):
                pytest.fail(f"{reason} CI must run the differential test.")
            pytest.skip(reason)
    return python


@pytest.fixture
def docs_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    db, db2 = tmp_path / "db", tmp_path / "db2"
    for base in (db, db2):
        for name in DB_FILES:
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
    (root / "qa").mkdir(parents=True)
    for name, text in (("docs.yaml", DOCS_BATCHES), ("matrix.yaml", DOCS_MATRIX)):
        text = text.replace("DB2", str(db2)).replace("DB", str(db))
        (root / "qa" / name).write_text(text)
    (root / "qaboard.yaml").write_text(
        textwrap.dedent(f"""
        project: {{name: test/docs, url: 'git@example.com:test/docs', entrypoint: qa/main.py}}
        inputs:
          database: {{linux: {db}, windows: {db}}}
          batches: [qa/docs.yaml, qa/matrix.yaml]
        storage: {{linux: {tmp_path / "storage"}, windows: {tmp_path / "storage"}}}
        """)
    )
    (root / "qa" / "main.py").write_text("def run(context):\n    return {}\n")
    return root


def qaboard_plan(
    python: Path, root: Path, batches_file: str, names: list[str]
) -> list[dict[str, Any]]:
    return qaboard_says(python, root, DRIVER, batches_file, *names)


def qaboard_says(python: Path, root: Path, driver: str, *args: str) -> Any:
    """The JSON a driver script prints last, run by QA-Board's python in the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "CI", "GIT_", "PYTHON"))}
    env |= {"QA_NO_CHECK_FOR_UPDATES": "1", "HOME": str(root.parent), "QA_OFFLINE": "1"}
    done = subprocess.run(
        [str(python), "-c", driver, *args],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def qaflow_plan(root: Path, batches_file: str, names: list[str]) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT")}
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "batch", "--batches-file", batches_file, *names, "--list"],
        cwd=root, env={**env, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=False,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [
        {k: run[k] for k in ("input_path", "configurations", "params", "platform")}
        for run in json.loads(done.stdout)
    ]


@pytest.mark.parametrize(
    ("batches_file", "names"),
    [
        ("qa/docs.yaml", ["my-batch"]),
        ("qa/docs.yaml", ["you-can-override-the-default-database"]),
        ("qa/docs.yaml", ["using-a-custom-configuration"]),
        ("qa/docs.yaml", ["multiple-configs"]),
        ("qa/docs.yaml", ["configs-can-be-complex-objects"]),
        ("qa/docs.yaml", ["each-input-can-have-its-own-configuration"]),
        ("qa/docs.yaml", ["each-input-can-have-its-own-configuration-and-appear-twice"]),
        ("qa/matrix.yaml", ["multiple-configs-matrix"]),
        ("qa/matrix.yaml", ["my-batch-multiple-configs"]),
        ("qa/matrix.yaml", ["my-batch-multiple-values"]),
        ("qa/matrix.yaml", ["my-batch-matrix-object"]),
        ("qa/matrix.yaml", ["two-batches"]),
        ("qa/matrix.yaml", ["hdr"]),
        ("qa/matrix.yaml", ["hdr-anchors", "no-hdr"]),
    ],
)
def test_qaflow_plans_the_docs_examples_as_qaboard(
    qaboard_python, docs_project, batches_file, names
):
    expected = qaboard_plan(qaboard_python, docs_project, batches_file, names)
    assert expected, "QA-Board planned no run: the example is not exercised"
    assert qaflow_plan(docs_project, batches_file, names) == expected


def test_globs_filter_listed_files_and_expand_folders_as_qaboard(qaboard_python, docs_project):
    expected = qaboard_plan(qaboard_python, docs_project, "qa/matrix.yaml", ["globbed"])
    found = qaflow_plan(docs_project, "qa/matrix.yaml", ["globbed"])
    assert found[0] == expected[0] and "a.txt" not in json.dumps(found)  # filtered by the glob
    # a deliberate difference: a folder's inputs come sorted, QA-Board's in set order
    assert sorted(found, key=json.dumps) == sorted(expected, key=json.dumps)
    assert found[1:] == sorted(found[1:], key=lambda run: run["input_path"])


def test_qaboards_own_sample_project_runs_unchanged_on_qaflow(qaboard_python, tmp_path):
    """QA-Board's sample project, as its release ships it, with QA-Board's own CLI test setup
    (tests/test_cli.py): `qa batch` on three images, 3/3 succeed, its run() importing qaboard."""
    where = subprocess.run(
        [str(qaboard_python), "-c", "import os, qaboard.iterators as m; print(os.path.dirname(m.__file__))"],
        env={"QA_NO_CHECK_FOR_UPDATES": "1", "HOME": str(tmp_path), "PATH": os.environ["PATH"]},
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    import shutil

    sample = tmp_path / "sample_project"
    shutil.copytree(Path(where.stdout.strip().splitlines()[-1]) / "sample_project", sample)
    for name in ("cli_tests/a.jpg", "cli_tests/b.jpg", "cli_tests/dir/c.jpg"):
        (sample / name).parent.mkdir(parents=True, exist_ok=True)
        (sample / name).touch()
    (sample / "image.batches.yaml").write_text(
        "images:\n  globs: ['*.jpg']\n  inputs: [cli_tests]\n  database: {linux: ., windows: .}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT", "QA_STORAGE")}
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "batch", "--batches-file", "image.batches.yaml", "images",
         "--runner=local", "--", 'echo "{input_path} => {output_dir}"'],
        cwd=sample, env={**env, "PYTHONPATH": str(SRC)}, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # off a terminal no line per successful run: the summary table, images: 3 runs, 3 succeeded,
    # 0 cached, 0 failed
    assert re.search(r"images\s*│\s*3\s*│\s*3\s*│\s*0\s*│\s*0\s*│", done.stdout), done.stdout
    logs = sorted((sample / "output").rglob("log.txt"))
    assert len(logs) == 3 and all(" => " in log.read_text() for log in logs)


def test_qa_init_makes_a_project_qaboard_loads(qaboard_python, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT")}
    made = subprocess.run(
        [sys.executable, "-m", "qaflow", "init", str(tmp_path / "new")],
        env={**env, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    clean = {k: v for k, v in env.items() if not k.startswith(("QA_", "PYTHON"))}
    loaded = subprocess.run(
        [str(qaboard_python), "-m", "qaboard", "--offline", "get", "project"],
        cwd=tmp_path / "new", capture_output=True, text=True, check=False, timeout=300,
        env={**clean, "QA_NO_CHECK_FOR_UPDATES": "1", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "new"
    assert "ERROR" not in loaded.stderr


# ---------------------------------------------------------------- --tuning-search
SEARCH_DRIVER = """
import json, sys
from qaboard.iterators import iter_parameters
search, extra = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps([params for params, _, _ in iter_parameters(search, extra_parameters=extra)]))
"""


@pytest.fixture(scope="session")
def qaboard_search_python(qaboard_python: Path) -> Path:
    """QA-Board's python, with scikit-learn: its tuning search uses ParameterGrid."""
    has = subprocess.run([str(qaboard_python), "-c", "import sklearn"], capture_output=True)
    if has.returncode == 0:
        return qaboard_python
    done = subprocess.run(
        [str(qaboard_python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "scikit-learn"],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        reason = f"pip cannot install scikit-learn for QA-Board: {done.stderr.strip()[-300:]}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} CI must run the differential test.")
        pytest.skip(reason)
    return qaboard_python


@pytest.mark.parametrize(
    ("search", "extra"),
    [
        ({"parameter_search": {"t": [1, 2, 3], "mode": ["a", "b"]}, "search_type": "grid"}, {}),
        ({"parameter_search": {"t": [1, 2]}, "search_type": "grid"}, {"t": 0, "keep": {"x": 1}}),
        (
            {
                "parameter_search": [{"t": [1, 2, 3]}, {"u": ["x"], "v": [4, 5]}],
                "search_type": "grid",
                "search_options": {"n_iter": 2},
            },
            {},
        ),
        ({"parameter_search": {}, "search_type": "grid"}, {"only": 1}),
    ],
)
def test_tuning_search_points_as_qaboard(qaboard_search_python, docs_project, search, extra):
    expected = qaboard_says(
        qaboard_search_python, docs_project, SEARCH_DRIVER, json.dumps(search), json.dumps(extra)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT")}
    done = subprocess.run(
        [sys.executable, "-m", "qaflow", "--tuning", json.dumps(extra), "batch", "--batches-file",
         "qa/docs.yaml", "my-batch", "--tuning-search", json.dumps(search), "--list"],
        cwd=docs_project, env={**env, "PYTHONPATH": str(SRC)}, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    # my-batch has no configurations: a run's params are its extra parameters
    found = [run["params"] for run in runs if run["input_path"].endswith("A.jpg")]
    assert found == expected and len(runs) == 2 * len(expected)
