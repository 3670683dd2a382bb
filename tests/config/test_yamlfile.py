"""YAML loading: errors name the file and line; values can be located for messages."""

from __future__ import annotations

import pytest

from qaflow.config import yamlfile
from qaflow.errors import ConfigError


def test_line_of_nested_keys_and_list_items(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("a:\n  b:\n    - x\n    - y\nc: 1\n")
    assert yamlfile.line_of(path, ("a", "b", 1)) == 4
    assert yamlfile.line_of(path, ("c",)) == 5
    assert yamlfile.where(path, ("a",)) == f"{path}:2"


def test_syntax_error_has_file_and_line(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\nb: [2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"f.yaml:3: malformed YAML"):
        yamlfile.load(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read"):
        yamlfile.load(tmp_path / "missing.yaml")
