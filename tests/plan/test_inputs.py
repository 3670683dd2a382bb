"""Input discovery: files, folders, patterns, globs and use_parent_folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qaflow.errors import BatchSpecError
from qaflow.plan import inputs
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


# a listed file is found by a fast path (a string and one stat); pathlib's join is the definition
_PIECES = st.sampled_from(["a.jpg", "b.raw", "s", "t", "c.jpg", "d.jpg", "missing", ".", "..", ""])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # read-only: shared is fine
)
@given(
    pieces=st.lists(_PIECES, min_size=1, max_size=4),
    trailing=st.booleans(),
    globs=st.sampled_from([(), ("*.jpg",), ("*.raw", "t/*.jpg")]),
)
def test_a_listed_file_is_found_as_by_the_general_path(
    tmp_path, monkeypatch, pieces, trailing, globs
):
    # four levels down: `..` never climbs out of this test's folder
    db = tmp_path / "l1" / "l2" / "l3" / "l4"
    for name in ("a.jpg", "b.raw", "s/c.jpg", "s/t/d.jpg", "t/d.jpg"):
        (db / name).parent.mkdir(parents=True, exist_ok=True)
        (db / name).write_text("x")
    location = "/".join(pieces) + ("/" if trailing else "")
    assume(not location.startswith("/"))  # absolute: the filesystem's root, walked

    def found(fast: bool) -> object:
        with monkeypatch.context() as patched:
            if not fast:
                patched.setattr(inputs, "_listed_file", lambda *_: None)
            try:
                return [
                    (f.path, f.database, f.rel)
                    for f in find_inputs(
                        location, database=db, globs=globs, use_parent_folder=False
                    )
                ]
            except BatchSpecError as exc:
                return str(exc)

    assert found(fast=True) == found(fast=False)


def test_a_listed_file_under_a_relative_or_root_database_is_found_as_by_pathlib(db, monkeypatch):
    monkeypatch.chdir(db)
    for database in (Path(), Path("s")):
        for location in ("a.jpg", "c.jpg", "t/d.jpg"):
            if (database / location).exists():
                [one] = find_inputs(location, database=database, globs=(), use_parent_folder=False)
                assert (one.path, one.rel) == (database / location, location)
                assert str(one.path) == str(database / location)
    [one] = find_inputs(str(db / "a.jpg"), database=Path("/"), globs=(), use_parent_folder=False)
    assert one.path == db / "a.jpg"
