"""Parses kept between processes (yamlfile.load with a project root, validated.parsed): a
kept parse is what PyYAML gives for the same bytes (shared values shared), a changed file is
parsed again whatever its size and time, errors are not kept, only a flush writes, and an
unchanged project's `qa` never imports PyYAML."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_project
from importing import packages, qa_importing
from qaflow.config import validated, yamlfile
from qaflow.errors import ConfigError
from validations import new_process

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


def parsed_without_yaml(path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """yamlfile.load in a later process that may not parse: PyYAML must not be called."""
    new_process()
    with monkeypatch.context() as patch:
        patch.setattr(yamlfile, "_parse", _no_parse)
        return yamlfile.load(path, root=root)


def _no_parse(path: Path, raw: bytes) -> Any:
    raise AssertionError(f"{path} parsed again")


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=DATA)
def test_a_kept_parse_is_what_pyyaml_gives(data, tmp_path, kept, monkeypatch):
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    expected = yaml.safe_load(path.read_text(encoding="utf-8"))
    new_process()
    assert yamlfile.load(path, root=tmp_path) == expected  # parsed, then kept
    validated.flush()
    again = parsed_without_yaml(path, tmp_path, monkeypatch)
    assert again == expected
    assert _types(again) == _types(expected)  # 1 stays an int, 1.0 a float, True a bool


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value).__name__


def test_values_shared_by_an_alias_stay_shared(tmp_path, kept, monkeypatch):
    path = tmp_path / "f.yaml"
    path.write_text("base: &b {x: [1, 2]}\none: *b\ntwo: *b\nother: {x: [1, 2]}\n")
    first = yamlfile.load(path, root=tmp_path)
    validated.flush()
    again = parsed_without_yaml(path, tmp_path, monkeypatch)
    assert again == first
    assert again["one"] is again["two"] is again["base"]  # as PyYAML gives them
    assert again["other"] is not again["base"]
    assert first["one"] is first["two"]


def test_a_changed_file_is_parsed_again_even_with_the_same_size_and_time(tmp_path, kept):
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n")
    assert yamlfile.load(path, root=tmp_path) == {"a": 1}
    validated.flush()
    stat = path.stat()
    path.write_text("a: 2\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new_process()
    assert yamlfile.load(path, root=tmp_path) == {"a": 2}


def test_errors_are_not_kept_and_a_later_fix_is_seen(tmp_path, kept):
    path = tmp_path / "f.yaml"
    path.write_text("a: [1\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"f.yaml:2: malformed YAML"):
            yamlfile.load(path, root=tmp_path)
        validated.flush()
        new_process()
    assert not kept.exists()
    path.write_text("a: [1]\n")
    assert yamlfile.load(path, root=tmp_path) == {"a": [1]}


def test_a_billion_laughs_is_refused_from_a_kept_parse_too(tmp_path, kept, monkeypatch):
    """The expansion limit holds for the kept data: only data that passed it is kept."""
    monkeypatch.setattr(yamlfile, "MAX_VALUES", 50)
    path = tmp_path / "f.yaml"
    path.write_text("a: &a [1, 2, 3, 4, 5, 6, 7]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="billion laughs"):
            yamlfile.load(path, root=tmp_path)
        validated.flush()
        new_process()
    assert not kept.exists()


def test_a_value_marshal_cannot_encode_is_parsed_every_time(tmp_path, kept, monkeypatch):
    path = tmp_path / "f.yaml"
    path.write_text("when: 2024-01-02\n")
    first = yamlfile.load(path, root=tmp_path)
    validated.flush()
    assert not kept.exists()
    new_process()
    assert yamlfile.load(path, root=tmp_path) == first


def test_off_without_a_root_or_with_the_cache_off(tmp_path, kept, monkeypatch):
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n")
    yamlfile.load(path)
    monkeypatch.setenv("QA_CONFIG_CACHE", "0")
    yamlfile.load(path, root=tmp_path)
    validated.flush()
    assert not kept.exists()


def test_a_kept_parse_is_a_fresh_object_each_time(tmp_path, kept, monkeypatch):
    """A caller that changes what it was given cannot change what the next caller gets."""
    path = tmp_path / "f.yaml"
    path.write_text("a: {b: [1]}\n")
    yamlfile.load(path, root=tmp_path)
    validated.flush()
    first = parsed_without_yaml(path, tmp_path, monkeypatch)
    first["a"]["b"].append(2)
    with monkeypatch.context() as patch:
        patch.setattr(yamlfile, "_parse", _no_parse)
        assert yamlfile.load(path, root=tmp_path) == {"a": {"b": [1]}}


def test_another_pyyaml_does_not_use_what_was_kept(tmp_path, kept, monkeypatch):
    """The key covers the parsing code, PyYAML's own `__init__.py` (its version) included."""
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n")
    yamlfile.load(path, root=tmp_path)
    validated.flush()
    code = yamlfile._parser_code()
    assert any(file.parts[-2:] == ("yaml", "__init__.py") for file in code)
    other = tmp_path / "other-yaml" / "yaml" / "__init__.py"
    other.parent.mkdir(parents=True)
    other.write_text("__version__ = '99'\n")
    new_process()
    monkeypatch.setattr(yamlfile, "_parser_code", lambda: (*code[:1], other))
    seen: list[Path] = []
    real = yamlfile._parse
    monkeypatch.setattr(yamlfile, "_parse", lambda p, raw: seen.append(p) or real(p, raw))
    assert yamlfile.load(path, root=tmp_path) == {"a": 1}
    assert seen == [path]


# ---------------------------------------------------------------- through `qa`
def test_an_unchanged_project_runs_without_importing_pyyaml(tmp_path):
    root = write_project(
        tmp_path / "p",
        qaboard="inputs: {database: data}\n",
        batches="b:\n  type: script\n  configs: ['echo hi > $QA_OUTPUT_DIR/out.txt']\n",
    )
    env = {**os.environ, "QA_CONFIG_CACHE_DIR": str(tmp_path / "kept")}
    env.pop("QA_CONFIG_CACHE", None)

    def qa(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
        done, imported = qa_importing(root, *args, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return done, packages(imported)

    assert "yaml" in qa("batch", "b")[1]  # parsed, then kept as the execution starts
    for args in (("batch", "b"), ("--dryrun", "batch", "b")):
        done, names = qa(*args)
        assert "yaml" not in names, f"qa {' '.join(args)} imported PyYAML"
    (root / "qa" / "batches.yaml").write_text(
        "b:\n  type: script\n  configs: ['echo bye > $QA_OUTPUT_DIR/out.txt']\n"
    )
    done, names = qa("--dryrun", "batch", "b")
    assert "yaml" in names and "echo bye" in done.stdout  # changed: parsed again
