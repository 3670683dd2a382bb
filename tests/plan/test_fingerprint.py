"""Fingerprints: input content hashes, code versions, and what `explain` says changed."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qaflow.errors import BatchSpecError
from qaflow.plan.fingerprint import (
    SCHEME,
    InputHashes,
    Parts,
    code_version,
    explain,
    fingerprint,
    fingerprint_of,
    hash_bytes,
    make_parts,
)


# ---------------------------------------------------------------- input hashes
def _hashes(db: Path, *paths: Path) -> tuple[dict[Path, str], int]:
    with InputHashes(db) as cache:
        return cache.hashes(list(paths)), cache.files_read


def test_same_content_same_hash(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.txt").write_text("hello")
    (tmp_path / "c.txt").write_text("world")
    got, read = _hashes(
        tmp_path / "db.sqlite", *(tmp_path / n for n in ("a.txt", "b.txt", "c.txt"))
    )
    assert got[tmp_path / "a.txt"] == got[tmp_path / "b.txt"] != got[tmp_path / "c.txt"]
    assert len(got[tmp_path / "a.txt"]) == 32
    assert read == 3


def test_content_change_with_same_size_and_mtime_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("aaaa")
    before, _ = _hashes(tmp_path / "db.sqlite", path)
    info = path.stat()
    path.write_text("bbbb")  # rewritten in place: same inode, same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    assert path.stat().st_ino == info.st_ino
    after, read = _hashes(tmp_path / "db.sqlite", path)
    assert read == 1
    assert after[path] != before[path]


def test_touching_only_mtime_rereads_and_keeps_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("same")
    before, _ = _hashes(tmp_path / "db.sqlite", path)
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    after, read = _hashes(tmp_path / "db.sqlite", path)
    assert read == 1
    assert after == before


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.bin" for i in range(20)]
    for i, path in enumerate(paths):
        path.write_bytes(bytes([i]) * 100)
    first, read = _hashes(tmp_path / "store" / ".qaflow" / "inputs.sqlite", *paths)
    assert read == 20
    second, read = _hashes(tmp_path / "store" / ".qaflow" / "inputs.sqlite", *paths)
    assert read == 0
    assert second == first


def test_large_file_read_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * (1 << 20) + 17))
    other = tmp_path / "big2.bin"
    other.write_bytes(path.read_bytes())
    got, _ = _hashes(tmp_path / "db.sqlite", path, other)
    assert got[path] == got[other]


def test_folder_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "top.txt").write_text("top")
    (folder / "deep" / "er" / "leaf.txt").write_text("leaf")
    db = tmp_path / "db.sqlite"
    before, read = _hashes(db, folder)
    assert read == 2
    again, read = _hashes(db, folder)
    assert (again, read) == (before, 0)
    (folder / "deep" / "er" / "leaf.txt").write_text("LEAF!")
    after, read = _hashes(db, folder)
    assert read == 1
    assert after[folder] != before[folder]
    (folder / "deep" / "er" / "leaf.txt").rename(folder / "deep" / "leaf.txt")
    moved, _ = _hashes(db, folder)
    assert moved[folder] != after[folder]  # the same content at another place


def test_folder_and_file_inputs_together(tmp_path: Path) -> None:
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    got, read = _hashes(tmp_path / "db.sqlite", folder, tmp_path / "b.txt", folder / "a.txt")
    assert read == 2  # a.txt is read once, though named twice
    assert set(got) == {folder, tmp_path / "b.txt", folder / "a.txt"}


def test_symlinked_folder_shares_the_cache(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_text("a")
    (tmp_path / "link").symlink_to(real)
    first, read = _hashes(tmp_path / "db.sqlite", real / "a.txt")
    second, read = _hashes(tmp_path / "db.sqlite", tmp_path / "link" / "a.txt")
    assert read == 0
    assert list(first.values()) == list(second.values())


def test_symlinked_folder_input(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "a.txt").write_text("a")
    (real / "loop").symlink_to(real)  # a loop is walked once
    (tmp_path / "alias").symlink_to(real)
    first, read = _hashes(tmp_path / "db.sqlite", real)
    assert read == 1
    second, read = _hashes(tmp_path / "db.sqlite", tmp_path / "alias")
    assert read == 0
    assert second[tmp_path / "alias"] == first[real]


def test_relative_paths_are_returned_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("a")
    monkeypatch.chdir(tmp_path)
    got, _ = _hashes(tmp_path / "db.sqlite", Path("a.txt"))
    assert list(got) == [Path("a.txt")]
    _, read = _hashes(tmp_path / "db.sqlite", tmp_path / "a.txt")
    assert read == 0


def test_many_files_second_pass_reads_nothing(tmp_path: Path) -> None:
    paths = []
    for i in range(2000):
        folder = tmp_path / "inputs" / f"{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"{i}.txt")
        paths[-1].write_text(f"input {i}")
    first, read = _hashes(tmp_path / "db.sqlite", *paths)
    assert read == 2000 and len(set(first.values())) == 2000
    second, read = _hashes(tmp_path / "db.sqlite", *paths)
    assert read == 0 and second == first


def test_missing_path_raises(tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("x")
    with InputHashes(tmp_path / "db.sqlite") as cache, pytest.raises(FileNotFoundError) as info:
        cache.hashes([tmp_path / "here.txt", tmp_path / "gone.txt"])
    assert "gone.txt" in str(info.value)


def _hash_in_child(db: str, folder: str, rounds: int) -> int:
    files = sorted(Path(folder).iterdir())
    read = 0
    for _ in range(rounds):
        with InputHashes(Path(db)) as cache:
            cache.hashes(files)
            read += cache.files_read
        for path in files[:5]:  # make some misses each round
            info = path.stat()
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    return read


def test_concurrent_processes_do_not_lock(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i}.txt").write_text(str(i))
    db = tmp_path / "cache" / "inputs.sqlite"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = pool.starmap(_hash_in_child, [(str(db), str(folder), 15)] * 3)
    assert sum(results) >= 300  # each file read at least once, by one process or another
    expected, _ = _hashes(tmp_path / "fresh.sqlite", *sorted(folder.iterdir()))
    _hashes(db, *sorted(folder.iterdir()))  # the children's last touches
    assert _hashes(db, *sorted(folder.iterdir())) == (expected, 0)


# ---------------------------------------------------------------- code versions
def _git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(root)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "qa").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "qaboard.yaml").write_text("project: {name: p}\n")
    (root / "qa" / "batches.yaml").write_text("b: {inputs: [a.txt]}\n")
    (root / "src" / "algo.py").write_text("X = 1\n")
    (root / "qa" / "main.py").write_text("print('run')\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "first")
    return root


def _excluded(root: Path) -> list[Path]:
    return [root / "qa" / "batches.yaml", root / "qaboard.yaml"]


def test_deps_version_follows_the_deps_files(tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "algo.py").write_text("X = 1\n")
    (tmp_path / "src" / "sub" / "util.py").write_text("Y = 1\n")
    (tmp_path / "other.py").write_text("Z = 1\n")
    one = code_version(tmp_path, deps=["src/algo.py"])
    tree = code_version(tmp_path, deps=["src/**/*.py"])
    assert one.startswith("deps:") and tree.startswith("deps:") and one != tree
    (tmp_path / "other.py").write_text("Z = 2\n")
    assert code_version(tmp_path, deps=["src/algo.py"]) == one
    (tmp_path / "src" / "sub" / "util.py").write_text("Y = 2\n")
    assert code_version(tmp_path, deps=["src/algo.py"]) == one
    assert code_version(tmp_path, deps=["src/**/*.py"]) != tree
    (tmp_path / "src" / "algo.py").write_text("X = 2\n")
    assert code_version(tmp_path, deps=["src/algo.py"]) != one
    assert code_version(tmp_path, deps=["src"]) == code_version(tmp_path, deps=["src/**/*.py"])
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "algo.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "src" / ".cache").write_text("x")
    assert code_version(tmp_path, deps=["src"]) == code_version(tmp_path, deps=["src/**/*.py"])


def test_missing_deps_pattern_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    with pytest.raises(BatchSpecError, match=r"`deps` names 'src/x\.py', which matches no file"):
        code_version(tmp_path, deps=["a.py", "src/x.py"])
    with pytest.raises(BatchSpecError, match=str(tmp_path)):
        code_version(tmp_path, deps=["lib/*.py"])


def test_git_commit_and_tracked_changes(repo: Path) -> None:
    commit = _git(repo, "rev-parse", "HEAD")
    clean = code_version(repo, exclude=_excluded(repo))
    assert clean == f"git:{commit}"
    (repo / "src" / "algo.py").write_text("X = 2\n")
    dirty = code_version(repo, exclude=_excluded(repo))
    assert dirty.startswith(f"git:{commit}:") and dirty != clean
    (repo / "src" / "algo.py").write_text("X = 3\n")
    assert code_version(repo, exclude=_excluded(repo)) not in (clean, dirty)
    (repo / "src" / "algo.py").write_text("X = 1\n")
    assert code_version(repo, exclude=_excluded(repo)) == clean
    (repo / "README.md").write_text("new")
    _git(repo, "add", "README.md")
    _git(repo, "commit", "-q", "-m", "second")
    second = code_version(repo, exclude=_excluded(repo))
    assert second.startswith("git:") and second != clean


def test_git_excluded_and_untracked_files_do_not_count(repo: Path) -> None:
    clean = code_version(repo, exclude=_excluded(repo))
    (repo / "qa" / "batches.yaml").write_text("b: {inputs: [b.txt]}\n")
    (repo / "qaboard.yaml").write_text("project: {name: q}\n")
    (repo / "src" / "new.py").write_text("untracked\n")
    (repo / "output").mkdir()
    (repo / "output" / "run.json").write_text("{}")
    assert code_version(repo, exclude=_excluded(repo)) == clean
    assert code_version(repo) != clean  # without the exclusion the batch edit counts


def test_git_in_a_subfolder_of_the_repository(repo: Path) -> None:
    project = repo / "qa"
    clean = code_version(project, exclude=[project / "batches.yaml"])
    (project / "batches.yaml").write_text("b: {}\n")
    assert code_version(project, exclude=[project / "batches.yaml"]) == clean
    (repo / "src" / "algo.py").write_text("X = 2\n")
    assert code_version(project, exclude=[project / "batches.yaml"]) != clean


def test_deps_win_over_git(repo: Path) -> None:
    version = code_version(repo, deps=["src/algo.py"])
    (repo / "qa" / "main.py").write_text("print('changed')\n")
    assert code_version(repo, deps=["src/algo.py"]) == version


def test_outside_git_uses_the_fallback(tmp_path: Path) -> None:
    entry = tmp_path / "main.py"
    entry.write_text("print(1)\n")
    first = code_version(tmp_path, fallback=entry)
    assert first.startswith("file:")
    entry.write_text("print(2)\n")
    assert code_version(tmp_path, fallback=entry) not in (first, "none")
    assert code_version(tmp_path, fallback=tmp_path / "missing.py") == "none"
    assert code_version(tmp_path) == "none"


def test_without_git_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "main.py").write_text("x")
    assert code_version(tmp_path, fallback=tmp_path / "main.py").startswith("file:")


# ---------------------------------------------------------------- fingerprints and explain
BASE = {
    "kind": "entrypoint",
    "configurations": [{"a": 1}, "base"],
    "params": {"a": 1},
    "platform": "linux",
    "input_hash": "0" * 32,
    "code": "git:" + "a" * 40,
    "upstream": ["u1", "u2"],
    "batch": "b",
    "batch_file": "qa/batches.yaml",
    "rel_input_path": "a.jpg",
}


def _parts(**changes: object) -> Parts:
    return make_parts(**{**BASE, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"input_hash": "1" * 32}, "the input's content changed"),
        ({"code": "git:" + "b" * 40}, "the code changed (the git commit changed (aaaaaaa -> bbbbbbb))"),
        ({"code": "git:" + "a" * 40 + ":d1"}, "the code changed (uncommitted changes to tracked files changed)"),
        ({"code": "deps:x"}, "the code changed (how the code is versioned changed)"),
        ({"configurations": [{"a": 2}, "base"]}, "its configurations changed"),
        ({"params": {"a": 2}}, "its params changed"),
        ({"platform": "windows"}, "the platform changed (linux -> windows)"),
        ({"upstream": ["u1", "u3"]}, "an upstream run changed: my-calibration"),
        ({"upstream": ["u1"]}, "an upstream run is no longer needed"),
        ({"kind": "command"}, "it runs a different kind of code (entrypoint -> command)"),
        ({"batch": "other"}, "it belongs to another batch or input (batch, batch file or input path)"),
        ({"rel_input_path": "b.jpg"}, "it belongs to another batch or input (batch, batch file or input path)"),
    ],
)  # fmt: skip
def test_each_change_is_detected_and_explained(changes: dict[str, object], expected: str) -> None:
    old, new = _parts(), _parts(**changes)
    assert fingerprint(old) != fingerprint(new)
    assert explain(old, new, names={"u3": "my-calibration"}) == [expected]


def test_code_changes_between_same_kinds() -> None:
    deps = explain(_parts(code="deps:1"), _parts(code="deps:2"))
    assert deps == ["the code changed (a `deps` file changed)"]
    files = explain(_parts(code="file:1"), _parts(code="file:2"))
    assert files == ["the code changed (the entrypoint file changed)"]


def test_explain_orders_by_importance_and_names_upstreams() -> None:
    old = _parts()
    new = _parts(platform="win", input_hash="f" * 32, upstream=["u1", "u9", "u8"], params={})
    assert explain(old, new, names={"u9": "algo A.jpg"}) == [
        "the input's content changed",
        "its params changed",
        "the platform changed (linux -> win)",
        "an upstream run changed: u8",
        "an upstream run changed: algo A.jpg",
    ]
    assert explain(old, _parts()) == []


def test_fingerprint_is_stable_and_round_trips() -> None:
    parts = _parts(upstream=["u2", "u1", "u2"])
    assert parts.upstream == ("u1", "u2")
    assert parts == _parts()
    assert Parts.from_dict(parts.to_dict()) == parts
    assert fingerprint(parts) == fingerprint(_parts())
    assert len(fingerprint(parts)) == 32
    script = (
        "from qaflow.plan.fingerprint import make_parts, fingerprint\n"
        f"print(fingerprint(make_parts(**{BASE!r})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert child.stdout.strip() == fingerprint(parts)


def test_the_recipe_does_not_change_without_its_scheme() -> None:
    """Fingerprints address every cached result: a faster recipe must give the same digests
    (else bump SCHEME, which says every result is to be made again)."""
    assert fingerprint(_parts()) == "860537c4dd01054eaa7002bfdd864174"
    assert fingerprint(_parts(input_hash=None, upstream=[])) == "1f25b89dede835858c70d5fb17dd9d76"


FIELDS = [field.name for field in dataclasses.fields(Parts)]  # the recipe's order
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0,"), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({name: field_text | st.none() for name in FIELDS}), st.lists(field_text)
)
def test_fingerprint_of_is_the_written_recipe(
    parts: dict[str, object], upstream: list[str]
) -> None:
    parts["upstream"] = upstream
    written = "\0".join(
        [f"scheme={SCHEME}"]
        + [
            f"{n}={','.join(v) if isinstance(v, list) else v}"
            for n, v in ((n, parts[n]) for n in FIELDS)
        ]
    )
    assert fingerprint_of(parts) == hash_bytes(written.encode())


def test_parts_json_identical_dicts_in_any_order() -> None:
    assert _parts(params={"a": 1, "b": 2}) == _parts(params={"b": 2, "a": 1})


small_text = st.text(alphabet="ab:c", max_size=4)
parts_strategy = st.builds(
    Parts,
    kind=st.sampled_from(["entrypoint", "command", "script", "pipeline"]),
    configurations=small_text,
    params=small_text,
    platform=small_text,
    input=st.none() | small_text,
    code=st.sampled_from(["none", "git:a", "git:b", "git:a:x", "deps:1", "file:1"]) | small_text,
    upstream=st.lists(st.sampled_from(["u1", "u2", "u3"]), max_size=3).map(tuple),
    identity=small_text,
)


@settings(max_examples=300, deadline=None)
@given(old=parts_strategy, new=parts_strategy)
def test_explain_is_empty_iff_fingerprints_are_equal(old: Parts, new: Parts) -> None:
    assert (explain(old, new) == []) == (fingerprint(old) == fingerprint(new))
    assert (fingerprint(old) == fingerprint(new)) == (old == new)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(sorted(BASE)),
    value=st.one_of(st.text(max_size=5), st.integers(), st.none()),
)
def test_changing_any_one_field_changes_the_fingerprint(field: str, value: object) -> None:
    if field == "upstream":
        value = [str(value)]
    if value == BASE[field]:
        value = f"changed {value}"
    assert fingerprint(_parts(**{field: value})) != fingerprint(_parts())
