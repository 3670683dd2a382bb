"""Validations kept between processes (config/validated.py): a kept validation gives what
pydantic gives (the same Project, Batch, warnings and errors), only successes are kept,
only an execution writes them, and an unchanged project's `qa` never imports pydantic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_project
from importing import packages, qa_importing
from qaflow.config import validated
from qaflow.config.batches import Catalog
from qaflow.config.project import Project
from validations import elsewhere, new_process, outcome, three_ways

# ---------------------------------------------------------------- equivalence
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "a", "qa/main.py", "*.jpg", "output", "yes", "4", "-1", "{project}/x"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["linux", "windows", "globs", "a", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)


def section(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), VALUES, max_size=4)


PROJECT_DATA = st.fixed_dictionaries(
    {},
    optional={
        "project": section(["name", "entrypoint", "deps", "url", "nmae", "extra"]),
        "inputs": section(
            [
                "database",
                "globs",
                "glob",
                "use_parent_folder",
                "types",
                "batches",
                "configs",
                "configurations",
                "groups",
                "allow_duplicate_batches",
                "glbos",
                "unknown",
            ]
        ),
        "outputs": section(["metrics", "action_on_existing", "style", "metrix"]),
        "storage": VALUES,
        "ci_root": VALUES,
        "database_url": VALUES,
        "runners": section(["default", "local", "dask", "lsf", "locl"]),
        "max_runs": VALUES,
        "input": VALUES,
        "something_else": VALUES,
    },
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PROJECT_DATA)
def test_a_kept_project_validation_is_what_pydantic_gives(data, tmp_path, kept, monkeypatch):
    """For any qaboard.yaml (valid or not): the same Project, warnings and error, whether
    validated by pydantic, validated and kept, or read back from what was kept."""
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    (root / "qaboard.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.delenv("QA_DATABASE_URL", raising=False)
    off, cold, warm = three_ways(lambda: Project.load(root), monkeypatch)
    assert cold == off
    assert warm == off
    if isinstance(off[0], Project):
        assert warm[0].settings == off[0].settings


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=PROJECT_DATA)
def test_a_project_validation_shared_by_another_project_is_what_pydantic_gives(
    data, tmp_path, kept, monkeypatch
):
    """For any qaboard.yaml: a new project with the same file (another clone) gets from what
    the first one kept the same Project, warnings and error as pydantic gives it."""
    text = yaml.safe_dump(data)

    def at(name: str) -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        (root / "qaboard.yaml").write_text(text)
        return root

    monkeypatch.delenv("QA_DATABASE_URL", raising=False)
    off, shared = elsewhere(Project.load, at, monkeypatch)
    assert shared == off


BATCH_KEYS = [
    "inputs",
    "tests",
    "configs",
    "configurations",
    "configuration",
    "database",
    "type",
    "platform",
    "globs",
    "use_parent_folder",
    "matrix",
    "needs",
    "deps",
    "resources",
    "timeout",
    "retries",
    "local",
    "only",
    "lsf",
    "imputs",
    "whatever",
]


PLAUSIBLE = {  # a value of each batch key that validates, so that most batches get far
    "inputs": st.lists(st.sampled_from(["a.x", "b.x", "d/"]), max_size=2),
    "configs": st.lists(st.one_of(st.sampled_from(["base", "echo hi"]), st.just({"t": 1}))),
    "type": st.sampled_from(["x", "script", "pipeline"]),
    "matrix": st.just({"t": [1, 2]}),
    "timeout": st.sampled_from([1, 2.5, "3"]),
    "retries": st.sampled_from([0, 2, "1"]),
    "resources": st.just({"cpus": 2}),
    "local": st.just({"concurrency": 2}),
    "needs": st.sampled_from(["other", ["other"], {"o": "other"}]),
    "use_parent_folder": st.sampled_from([True, "yes", 0]),
    "lsf": st.just({"queue": "q"}),
}


def batch_value(key: str) -> st.SearchStrategy[Any]:
    return st.one_of(PLAUSIBLE[key], VALUES) if key in PLAUSIBLE else VALUES


BATCHES = st.lists(st.sampled_from(BATCH_KEYS), max_size=5, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: batch_value(key) for key in keys})
)
FILE_DEFAULTS = st.dictionaries(
    st.sampled_from(["database", "configs", "platform"]), VALUES, max_size=2
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=BATCHES, defaults=FILE_DEFAULTS)
def test_a_kept_batch_validation_is_what_pydantic_gives(
    batch, defaults, tmp_path, kept, monkeypatch
):
    """For any batch and file-level defaults (valid or not): the same Batch, warnings and
    error, whether validated by pydantic, validated and kept, or read back."""
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    (root / "qaboard.yaml").write_text("inputs: {types: {x: {globs: '*.x'}}}\n")
    (root / "qa").mkdir(exist_ok=True)
    (root / "qa" / "batches.yaml").write_text(yaml.safe_dump({**defaults, "other": {}, "b": batch}))

    def load() -> Any:
        return Catalog.load(Project.load(root)).batch("b")

    off, cold, warm = three_ways(load, monkeypatch)
    assert cold == off
    assert warm == off


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=BATCHES, defaults=FILE_DEFAULTS)
def test_a_batch_validation_shared_by_another_project_is_what_pydantic_gives(
    batch, defaults, tmp_path, kept, monkeypatch
):
    """For any batch: a new project with the same files gets, from what another kept, the
    same Batch (its paths its own), warnings and error as pydantic gives it."""
    text = yaml.safe_dump({**defaults, "other": {}, "b": batch})

    def at(name: str) -> Path:
        root = tmp_path / name
        (root / "qa").mkdir(parents=True, exist_ok=True)
        (root / "qaboard.yaml").write_text("inputs: {types: {x: {globs: '*.x'}}}\n")
        (root / "qa" / "batches.yaml").write_text(text)
        return root

    off, shared = elsewhere(
        lambda root: Catalog.load(Project.load(root)).batch("b"), at, monkeypatch
    )
    assert shared == off


# ---------------------------------------------------------------- what is kept, and when
def _no_pydantic(monkeypatch: Any) -> None:
    def validated_again(*args: Any) -> Any:
        raise AssertionError("validated again")

    monkeypatch.setattr("qaflow.config.project._validate", validated_again)
    monkeypatch.setattr("qaflow.config.batches._validate", validated_again)


def test_an_unchanged_project_is_read_from_what_was_kept(tmp_path, kept, monkeypatch):
    root = write_project(tmp_path / "p", batches="b:\n  inputs: [a.txt]\n  colour: red\n")
    (root / "qaboard.yaml").write_text("inputs: {database: data}\nshiny: true\n")
    first = outcome(lambda: Catalog.load(Project.load(root)).batch("b"))
    validated.flush()
    new_process()
    _no_pydantic(monkeypatch)
    again = outcome(lambda: Catalog.load(Project.load(root)).batch("b"))
    assert again == first
    assert any("unknown key `shiny`" in w for w in again[1])  # warnings are shown again
    assert any("unknown key `colour`" in w for w in again[1])


def test_a_changed_file_is_validated_again(tmp_path, kept):
    root = write_project(tmp_path / "p", batches="b:\n  inputs: [a.txt]\n")
    Project.load(root)
    validated.flush()
    new_process()
    (root / "qaboard.yaml").write_text(
        "inputs: {database: data}\nrunners: {local: {concurrency: 0}}\n"
    )
    value, _ = outcome(lambda: Project.load(root))
    assert value[0] == "error" and "concurrency" in value[2]
    (root / "qaboard.yaml").write_text("inputs: {database: data}\nnew_key: 1\n")
    value, shown = outcome(lambda: Project.load(root))
    assert isinstance(value, Project) and any("new_key" in w for w in shown)


def test_errors_are_not_kept(tmp_path, kept):
    root = write_project(tmp_path / "p", batches="b:\n  retries: -1\n")
    first = outcome(lambda: Catalog.load(Project.load(root)).batch("b"))
    assert first[0][0] == "error" and "retries" in first[0][2]
    validated.flush()
    assert not kept.exists() or all(
        len(validated._read_both(file)[0]) == 1
        for file in kept.iterdir()  # qaboard.yaml only
    )
    new_process()
    assert outcome(lambda: Catalog.load(Project.load(root)).batch("b")) == first


def test_other_code_does_not_use_what_was_kept(tmp_path, kept, monkeypatch):
    """The key covers the validating code's source: kept results of other code are unused."""
    from qaflow.config import project as project_module

    root = write_project(tmp_path / "p")
    Project.load(root)
    validated.flush()
    new_process()
    real = project_module._validate
    seen: list[Path] = []
    monkeypatch.setattr(
        project_module, "_validate", lambda path, data: seen.append(path) or real(path, data)
    )
    Project.load(root)
    assert not seen  # the same code: read back
    new_process()
    monkeypatch.setattr(validated, "_code_digests", {(): b"other code".ljust(16)})
    Project.load(root)
    assert seen == [root / "qaboard.yaml"]  # other code: validated again


def test_an_unreadable_kept_file_is_ignored(tmp_path, kept):
    root = write_project(tmp_path / "p", qaboard="inputs: {database: data}\nodd: 1\n")
    expected = outcome(lambda: Project.load(root))
    validated.flush()
    for file in kept.iterdir():
        file.write_bytes(b"\x00garbage")
    new_process()
    assert outcome(lambda: Project.load(root)) == expected


def test_what_is_kept_is_bounded(tmp_path, kept, monkeypatch):
    monkeypatch.setattr(validated, "MAX_ENTRIES", 3)
    monkeypatch.setattr(validated, "MAX_FILES", 2)
    root = write_project(tmp_path / "p")
    for index in range(5):
        (root / "qaboard.yaml").write_text(
            f"inputs: {{database: data}}\nproject: {{name: n{index}}}\n"
        )
        Project.load(root)
    validated.flush()
    [file] = kept.glob("*.bin")
    assert len(validated._read_both(file)[0]) == 3
    for index in range(3):
        other = write_project(tmp_path / f"other{index}")
        Project.load(other)
        validated.flush()
        os.utime(next(iter(sorted(kept.iterdir(), key=lambda f: f.stat().st_mtime))), (0, 0))
    assert len(list(kept.glob("*.bin"))) == 2


def test_a_new_project_with_the_files_of_another_is_not_validated_again(
    tmp_path, kept, monkeypatch
):
    """A new clone of a project (same files, another folder) needs neither pydantic nor
    PyYAML: what the first kept answers, by content; and it keeps that in its own file."""
    batches = "b:\n  inputs: [a.txt]\n  configs: [{k: 1}]\n"
    first = write_project(tmp_path / "first", batches=batches, files=["data/a.txt"],
                          qaboard="inputs: {database: data}\n")  # fmt: skip
    Catalog.load(Project.load(first)).batch("b")
    validated.flush()
    assert (kept / validated.SHARED).is_file()
    new_process()
    clone = write_project(tmp_path / "clone", batches=batches, files=["data/a.txt"],
                          qaboard="inputs: {database: data}\n")  # fmt: skip
    _no_pydantic(monkeypatch)
    monkeypatch.setattr("qaflow.config.yamlfile._parse", lambda *a: pytest.fail("parsed again"))
    batch = Catalog.load(Project.load(clone)).batch("b")
    assert batch.configs == ({"k": 1},)
    assert Project.load(clone).database == clone / "data"  # its own paths, not the first's
    validated.flush()
    new_process()
    (kept / validated.SHARED).unlink()
    Catalog.load(Project.load(clone)).batch("b")  # from its own file now


def test_a_validation_that_warned_or_holds_its_path_is_not_shared(tmp_path, kept, monkeypatch):
    """Warnings name the file, and a result holding the project's folder is not another's:
    both are validated again in a new project."""
    first = write_project(tmp_path / "first", qaboard="inputs: {database: data}\nodd: 1\n")
    outcome(lambda: Project.load(first))
    absolute = write_project(
        tmp_path / "abs", qaboard=f"inputs: {{database: {tmp_path / 'abs'}/data}}\n"
    )
    Project.load(absolute)
    validated.flush()
    new_process()
    seen: list[Path] = []
    from qaflow.config import project as project_module

    real = project_module._validate
    monkeypatch.setattr(
        project_module, "_validate", lambda path, data: seen.append(path) or real(path, data)
    )
    clone = write_project(tmp_path / "clone", qaboard="inputs: {database: data}\nodd: 1\n")
    value, shown = outcome(lambda: Project.load(clone))
    assert isinstance(value, Project)
    assert any(str(clone / "qaboard.yaml") in w and "odd" in w for w in shown)
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "qaboard.yaml").write_text((absolute / "qaboard.yaml").read_text())
    Project.load(moved)
    assert seen == [clone / "qaboard.yaml", moved / "qaboard.yaml"]


def test_what_is_shared_is_bounded(tmp_path, kept, monkeypatch):
    monkeypatch.setattr(validated, "MAX_SHARED", 2)
    for index in range(4):
        root = write_project(tmp_path / f"p{index}", qaboard=f"project: {{name: n{index}}}\n")
        Project.load(root)
    validated.flush()
    entries, parses = validated._read_both(kept / validated.SHARED)
    assert len(entries) == 2 and len(parses) == 2
    monkeypatch.setattr(validated, "MAX_SHARED_BYTES", 64)  # nothing fits
    (kept / validated.SHARED).unlink()
    new_process()
    Project.load(write_project(tmp_path / "p9", qaboard="project: {name: n9}\n"))
    validated.flush()
    assert not (kept / validated.SHARED).exists()
    assert len(list(kept.glob("*.bin"))) == 5  # each project keeps its own all the same


def test_a_document_marshal_cannot_encode_is_validated_every_time(tmp_path, kept):
    root = write_project(tmp_path / "p", qaboard="inputs: {database: data}\nwhen: 2024-01-02\n")
    first = outcome(lambda: Project.load(root))
    assert isinstance(first[0], Project) and any("when" in w for w in first[1])
    validated.flush()
    assert not kept.exists()
    new_process()
    assert outcome(lambda: Project.load(root)) == first


# ---------------------------------------------------------------- through `qa`
def test_only_an_execution_keeps_validations_and_then_qa_needs_no_pydantic(tmp_path):
    root = write_project(
        tmp_path / "p",
        qaboard="inputs: {database: data}\nodd_key: 1\n",
        batches="b:\n  type: script\n  configs: ['echo hi > $QA_OUTPUT_DIR/out.txt']\n",
        extra={
            "qa/metrics.yaml": "available_metrics: {psnr: {suffix: dB}}\nsummary_metrics: [psnr]\n"
        },
    )
    folder = tmp_path / "kept"
    env = {**os.environ, "QA_CONFIG_CACHE_DIR": str(folder)}
    env.pop("QA_CONFIG_CACHE", None)
    for args in (
        ("--dryrun", "batch", "b"),
        ("batch", "nosuch"),
        ("status",),
        ("batch", "b", "--list"),
    ):
        qa_importing(root, *args, env=env)
        assert not folder.exists(), f"qa {' '.join(args)} wrote what it validated"
    first, first_imported = qa_importing(root, "batch", "b", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "pydantic" in packages(first_imported) and list(folder.iterdir())
    for args in (("--dryrun", "batch", "b"), ("batch", "b")):
        again, again_imported = qa_importing(root, *args, env=env)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "pydantic" not in packages(again_imported), f"qa {' '.join(args)} imported pydantic"
        assert "unknown key `odd_key`" in again.stderr  # the warning is still shown


def test_a_new_clone_of_a_project_runs_without_pydantic_or_pyyaml(tmp_path):
    """`qa batch` in a second folder holding the same project (a clone, a worktree) uses what
    the first one's execution kept, by content: no validation, no parse; its runs and paths
    are its own."""
    files = {
        "qa/metrics.yaml": "available_metrics: {psnr: {suffix: dB}}\nsummary_metrics: [psnr]\n"
    }
    batches = "b:\n  type: script\n  configs: ['echo hi > $QA_OUTPUT_DIR/out.txt']\n"
    env = {**os.environ, "QA_CONFIG_CACHE_DIR": str(tmp_path / "kept")}
    env.pop("QA_CONFIG_CACHE", None)
    first = write_project(tmp_path / "first", batches=batches, extra=files)
    done, imported = qa_importing(first, "batch", "b", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"pydantic", "yaml"} <= packages(imported)
    clone = write_project(tmp_path / "clone", batches=batches, extra=files)
    done, imported = qa_importing(clone, "batch", "b", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not {"pydantic", "yaml"} & packages(imported), "the clone validated or parsed again"
    [out] = (clone / "output").rglob("out.txt")
    assert out.read_text() == "hi\n" and not list((first / "output").rglob("*clone*"))
