"""qaboard.yaml: discovery, every key validated, unknown keys warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.config.project import HOST, Project, find_root
from qaflow.errors import ConfigError, QaflowWarning

FULL = """
project: {name: my/project, entrypoint: qa/main.py}
inputs:
  database: {linux: /data, windows: 'D:/db'}
  globs: ['*.jpg', '*.raw']
  use_parent_folder: false
  types: {default: image, image: {globs: '*.raw'}, movie: {globs: frame_000.jpg, use_parent_folder: true}}
  batches: [qa/batches.yaml, 'qa/batches/*.yaml']
  configs: [base]
outputs: {metrics: qa/metrics.yaml}
storage: output
database_url: postgresql://u@localhost/qa
runners:
  default: local
  local: {concurrency: -1}
  dask: {scheduler_address: 'tcp://host:8786', cluster: {type: slurm, cores: 4, memory: 16GB}}
"""


def test_every_key_of_the_spec_is_read(project, monkeypatch):
    monkeypatch.delenv("QA_DATABASE_URL", raising=False)
    root = project(qaboard=FULL)
    p = Project.load(root)
    assert p.name == "my/project"
    assert p.entrypoint == root / "qa/main.py"
    if HOST == "linux":
        assert p.database == Path("/data")
    assert p.types["default"].globs == ("*.jpg", "*.raw")
    assert p.default_type == "image"
    assert p.types["image"].globs == ("*.raw",)
    assert p.types["movie"].use_parent_folder is True
    assert p.batch_patterns == ("qa/batches.yaml", "qa/batches/*.yaml")
    assert p.default_configs == ("base",)
    assert p.metrics_path == root / "qa/metrics.yaml"
    assert p.storage == root / "output"
    assert p.database_url == "postgresql://u@localhost/qa"
    assert (p.runner, p.local_concurrency) == ("local", -1)
    assert p.dask["scheduler_address"] == "tcp://host:8786"
    assert p.dask["cluster"]["cores"] == 4


def test_defaults_for_an_empty_file(project, monkeypatch):
    monkeypatch.delenv("QA_DATABASE_URL", raising=False)
    root = project(qaboard="")
    p = Project.load(root)
    assert p.database == root
    assert p.name == root.name
    assert p.storage == root / "output"
    assert p.database_url is None
    assert p.default_configs == ()


def test_database_url_from_the_environment_wins(project, monkeypatch):
    monkeypatch.setenv("QA_DATABASE_URL", "postgresql://env/db")
    assert (
        Project.load(project(qaboard="database_url: sqlite:///x.db\n")).database_url
        == "postgresql://env/db"
    )


def test_discovery_walks_up(project):
    root = project(qaboard="")
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == root.resolve()
    assert Project.discover(deep).root == root.resolve()


def test_no_project_found(tmp_path):
    with pytest.raises(ConfigError, match=r"No qaboard.yaml found.*qa init"):
        find_root(tmp_path)


def test_unknown_keys_are_warnings_naming_the_key(project):
    root = project(qaboard="colour: blue\ninputs:\n  pattern: '*.jpg'\n")
    with pytest.warns(QaflowWarning) as record:
        Project.load(root)
    messages = [str(w.message) for w in record]
    assert any("`colour`" in m for m in messages)
    assert any("`inputs.pattern`" in m for m in messages)


@pytest.mark.parametrize(
    ("text", "line", "typo", "meant"),
    [
        ("input:\n  database: .\n", 1, "input", "inputs"),
        ("inputs:\n  globz: '*.jpg'\n", 2, "inputs.globz", "inputs.glob"),
        ("Storage: out\n", 1, "Storage", "storage"),
        (
            "inputs:\n  types: {image: {use_parent_folders: true}}\n",
            2,
            "inputs.types.image.use_parent_folders",
            "inputs.types.image.use_parent_folder",
        ),
        ("runners:\n  locale: {concurrency: 2}\n", 2, "runners.locale", "runners.local"),
    ],
)
def test_a_near_miss_of_a_known_key_is_an_error_with_did_you_mean(project, text, line, typo, meant):
    root = project(qaboard=text)
    with pytest.raises(
        ConfigError, match=rf"qaboard.yaml:{line}: unknown key `{typo}`: did you mean `{meant}`\?"
    ):
        Project.load(root)


@pytest.mark.parametrize("default", ["imag", "nosuch"])
def test_types_default_must_name_a_defined_type(project, default):
    root = project(
        qaboard=f"inputs:\n  types:\n    default: {default}\n    image: {{globs: '*.raw'}}\n"
    )
    with pytest.raises(
        ConfigError, match=rf"qaboard.yaml:3: inputs.types.default names the input type '{default}'"
    ):
        Project.load(root)


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5"])
def test_local_concurrency_is_minus_one_or_positive(project, value):
    root = project(qaboard=f"runners:\n  local: {{concurrency: {value}}}\n")
    with pytest.raises(
        ConfigError, match=r"qaboard.yaml:2: invalid value for `runners.local.concurrency`"
    ):
        Project.load(root)


def test_max_runs_from_the_file_and_the_environment(project, monkeypatch):
    root = project(qaboard="max_runs: 10\n")
    assert Project.load(root).max_runs == 10
    monkeypatch.setenv("QA_MAX_RUNS", "7")
    assert Project.load(root).max_runs == 7
    monkeypatch.setenv("QA_MAX_RUNS", "zero")
    with pytest.raises(ConfigError, match="QA_MAX_RUNS='zero'"):
        Project.load(root)


def test_wrong_type_names_file_line_and_key(project):
    root = project(qaboard="project:\n  name: x\ninputs:\n  use_parent_folder: [1]\n")
    with pytest.raises(ConfigError) as info:
        Project.load(root)
    message = str(info.value)
    assert "qaboard.yaml:4" in message
    assert "`inputs.use_parent_folder`" in message


def test_malformed_yaml_names_file_and_line(project):
    root = project(qaboard="inputs:\n  globs: [a\nstorage: x\n")
    with pytest.raises(ConfigError, match=r"qaboard.yaml:\d+: malformed YAML"):
        Project.load(root)


def test_batch_files_glob_in_order(project):
    root = project(
        qaboard="inputs:\n  batches: [first.yaml, 'more/*.yaml', missing.yaml]\n",
        extra={"first.yaml": "", "more/b.yaml": "", "more/a.yaml": ""},
    )
    assert [f.relative_to(root.resolve()).as_posix() for f in Project.load(root).batch_files()] == [
        "first.yaml",
        "more/a.yaml",
        "more/b.yaml",
    ]
