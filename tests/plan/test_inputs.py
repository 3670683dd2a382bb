"""Input discovery: files, folders, patterns, globs and use_parent_folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.errors import BatchSpecError
from qaflow.plan.inputs import find_inputs


@pytest.fixture
def db(tmp_path: Path) -> Path:
    for name in [
        "a.jpg",
        "b.raw",
        "s/c.jpg",
        "s/t/d.jpg",
        "m/x/frame_000.jpg",
        "m/x/frame_001.jpg",
        "m/y/frame_000.jpg",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    return tmp_path


def rels(found: list) -> list[str]:
    return [f.rel for f in found]


def test_the_globs_filter_listed_files_too(db):
    # as QA-Board 1.1.1: a listed file is an input only if it matches the globs (if any)
    assert find_inputs("b.raw", database=db, globs=("*.jpg",), use_parent_folder=False) == []
    assert rels(find_inputs("b.raw", database=db, globs=("*.raw",), use_parent_folder=False)) == [
        "b.raw"
    ]
    assert rels(find_inputs("b.raw", database=db, globs=(), use_parent_folder=False)) == ["b.raw"]


def test_a_folder_expands_with_globs_recursively_and_sorted(db):
    found = find_inputs("s", database=db, globs=("*.jpg",), use_parent_folder=False)
    assert rels(found) == ["s/c.jpg", "s/t/d.jpg"]
    assert found[0].path == db / "s" / "c.jpg"
    assert found[0].database == db


def test_a_folder_without_globs_is_one_input_unless_recursing(db):
    assert rels(find_inputs("s", database=db, globs=(), use_parent_folder=False)) == ["s"]
    assert rels(
        find_inputs("s", database=db, globs=(), use_parent_folder=False, recurse_without_globs=True)
    ) == ["s/c.jpg", "s/t/d.jpg"]


def test_use_parent_folder(db):
    found = find_inputs("m", database=db, globs=("frame_000.jpg",), use_parent_folder=True)
    assert rels(found) == ["m/x", "m/y"]


def test_patterns_and_double_star(db):
    assert rels(find_inputs("*.jpg", database=db, globs=(), use_parent_folder=False)) == ["a.jpg"]
    assert rels(find_inputs("s/**/*.jpg", database=db, globs=(), use_parent_folder=False)) == [
        "s/c.jpg",
        "s/t/d.jpg",
    ]


def test_several_globs_and_globs_with_a_folder(db):
    assert rels(
        find_inputs(".", database=db, globs=("*.raw", "t/*.jpg"), use_parent_folder=False)
    ) == ["b.raw", "s/t/d.jpg"]


def test_absolute_paths_inside_and_outside_the_database(db, tmp_path_factory):
    assert rels(find_inputs(str(db / "a.jpg"), database=db, globs=(), use_parent_folder=False)) == [
        "a.jpg"
    ]
    other = tmp_path_factory.mktemp("elsewhere") / "z.jpg"
    other.write_text("z")
    [found] = find_inputs(str(other), database=db, globs=(), use_parent_folder=False)
    assert found.database == Path("/")
    assert found.path == other
    assert found.rel == str(other).lstrip("/")


def test_missing_paths_and_empty_matches_are_errors(db):
    with pytest.raises(BatchSpecError, match="does not exist"):
        find_inputs("nope.jpg", database=db, globs=(), use_parent_folder=False)
    with pytest.raises(BatchSpecError, match="No input matches"):
        find_inputs("*.png", database=db, globs=(), use_parent_folder=False)
    with pytest.raises(BatchSpecError, match=r"No input found in 's'.*\*\.png"):
        find_inputs("s", database=db, globs=("*.png",), use_parent_folder=False)


def test_inputs_under_a_relative_or_root_database_are_relative_to_it(db, monkeypatch):
    monkeypatch.chdir(db)
    for database in (Path(), Path("s")):
        for location in ("a.jpg", "c.jpg", "t/d.jpg"):
            if (database / location).exists():
                [one] = find_inputs(location, database=database, globs=(), use_parent_folder=False)
                assert (one.path, one.rel) == (database / location, location)
                assert str(one.path) == str(database / location)
    [one] = find_inputs(str(db / "a.jpg"), database=Path("/"), globs=(), use_parent_folder=False)
    assert (one.path, one.rel) == (db / "a.jpg", str(db / "a.jpg")[1:])
