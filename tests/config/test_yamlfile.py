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


@pytest.mark.parametrize(
    ("content", "line", "says"),
    [
        (b"\xff\xfe\x00\x01", 1, "not UTF-8"),
        (b"a: 1\nb: caf\xe9\n", 2, "not UTF-8"),
        (b"a: 1\nb: \x00\n", 2, "NUL"),
    ],
)
def test_a_file_that_is_not_utf8_text_names_file_and_line(tmp_path, content, line, says):
    path = tmp_path / "f.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"f.yaml:{line}: .*{says}"):
        yamlfile.load(path)


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_bytes("\ufeffa: é\n".encode())
    assert yamlfile.load(path) == {"a": "é"}


def test_billion_laughs_are_refused_in_linear_time(tmp_path):
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 12)]
    path = tmp_path / "f.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases expand to more than 10,000,000 values"):
        yamlfile.load(path)


def test_aliases_within_the_limit_load_shared(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text(".base: &base {x: [1, 2]}\na: *base\nb: {<<: *base, y: 3}\n")
    data = yamlfile.load(path)
    assert data["a"] == {"x": [1, 2]} and data["b"] == {"x": [1, 2], "y": 3}


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("x: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="contains it"):
        yamlfile.load(path)


def test_where_key_points_at_the_key_not_its_value(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\ninput:\n  database: x\n")
    assert yamlfile.where_key(path, ("input",)) == f"{path}:2"
    assert yamlfile.where_key(path, ("input", "database")) == f"{path}:3"
