"""Fingerprints of planned runs: input content hashes, the code version, and what changed.

Policy: a fingerprint covers everything that can change a run's result (`Parts`); its parts
are kept so `explain` can say in words why a run executes again. An input file is read once:
`InputHashes` remembers its hash in sqlite under (resolved path, size, mtime_ns, inode,
ctime_ns); any change to that key is a miss and a re-read, an unchanged key is trusted (one
`stat`). ctime catches an in-place rewrite whose mtime was set back. A folder's hash covers
its files' sorted relative paths and (cached) hashes; it is never stored itself, since a
change deep inside does not touch the folder's mtime. The code version is the content of the
`deps` files if declared, else the git commit plus a hash of the uncommitted changes to
tracked files (batch files and qaboard.yaml excluded), else the entrypoint's content.

Invariants: hashes are blake2b, never `hash()`, so fingerprints are stable across processes;
a file is stat'ed before it is read, so a stored key never claims newer content than was
hashed; every field of `Parts` enters the fingerprint, so `explain(old, new)` is empty
exactly when the fingerprints are equal.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qaflow.config.git import git_output
from qaflow.errors import BatchSpecError

CHUNK = 1 << 20  # bytes read at a time
QUERY_CHUNK = 500  # parameters per `IN (…)` query
PARALLEL_BYTES = 32 << 20  # hash misses in threads when they add up to more than this
SCHEME = 2  # bump to invalidate every fingerprint when their recipe changes

Key = tuple[str, int, int, int, int]  # (resolved path, size, mtime_ns, inode, ctime_ns)


def hash_bytes(data: bytes) -> str:
    """The blake2b (16 bytes) hex digest of `data`."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_file(path: str | Path) -> str:
    """The blake2b (16 bytes) hex digest of a file's content, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb", buffering=0) as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_json(value: Any) -> str:
    """The hash of a JSON-able value (keys sorted; anything else as its str)."""
    return _json_hash(value)


def _json_hash(value: Any) -> str:
    return hash_bytes(json.dumps(value, sort_keys=True, default=str).encode())


# ---------------------------------------------------------------- input content hashes
_CACHE_VERSION = 2  # bump when the table changes: older caches are dropped, not read
_SCHEMA = """CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL) WITHOUT ROWID"""


class InputHashes:
    """Content hashes of input paths, remembered by (path, size, mtime_ns, inode, ctime_ns)."""

    def __init__(self, database: Path) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        self.files_read = 0
        self._db = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            _setup(self._db)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def save(self, path: Path) -> None:
        """Copy this cache (e.g. one kept in memory while planning) to the file at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(path, timeout=30)
        try:
            self._db.backup(target)
        finally:
            target.close()

    def __enter__(self) -> InputHashes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def hashes(self, paths: Sequence[Path]) -> dict[Path, str]:
        """{path: content hash} for files and folders; FileNotFoundError names a missing one."""
        parents: dict[str, str] = {}
        layout: dict[Path, Key | list[tuple[str, Key]]] = {}  # a file's key, a folder's files
        for path in paths:
            info = _stat(path)
            if stat.S_ISDIR(info.st_mode):
                layout[path] = list(_walk(os.path.realpath(path)))
            else:
                layout[path] = _key(_resolve(path, parents), info)
        keys = list(dict.fromkeys(key for entry in layout.values() for key in _keys(entry)))
        known = self._lookup(keys)
        misses = [key for key in keys if key not in known]
        known.update(self._hash_and_store(misses))
        return {path: _compose(entry, known) for path, entry in layout.items()}

    def _lookup(self, keys: list[Key]) -> dict[Key, str]:
        wanted = set(keys)
        found: dict[Key, str] = {}
        for start in range(0, len(keys), QUERY_CHUNK):
            chunk = [key[0] for key in keys[start : start + QUERY_CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT path, size, mtime_ns, inode, ctime_ns, hash FROM files "
                f"WHERE path IN ({marks})",
                chunk,
            )
            for *fields, digest in rows:
                if (key := tuple(fields)) in wanted:
                    found[key] = digest
        return found

    def _hash_and_store(self, misses: list[Key]) -> dict[Key, str]:
        if not misses:
            return {}
        if sum(key[1] for key in misses) > PARALLEL_BYTES:
            from concurrent.futures import ThreadPoolExecutor  # only for many files

            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                digests = list(pool.map(hash_file, [key[0] for key in misses]))
        else:
            digests = [hash_file(key[0]) for key in misses]
        self.files_read += len(misses)
        rows = [(*key, digest) for key, digest in zip(misses, digests, strict=True)]
        with self._db:  # one transaction: COMMIT, or ROLLBACK on error
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        return dict(zip(misses, digests, strict=True))


def _stat(path: Path) -> os.stat_result:
    """The stat of an input (following symlinks), or FileNotFoundError naming it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "input not found", os.fspath(path)) from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise FileNotFoundError(errno.ENOENT, "input is not a file or folder", os.fspath(path))
    return info


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode and the table; switching a new file to WAL can fail "locked" without waiting."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != _CACHE_VERSION:
                # a cache made by another qaflow: rebuilt, never trusted or migrated
                db.execute("DROP TABLE IF EXISTS files")
                db.execute(f"PRAGMA user_version = {_CACHE_VERSION}")
            db.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            import random

            time.sleep(0.005 + random.random() * 0.05)


def _key(resolved: str, info: os.stat_result) -> Key:
    return (resolved, info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


def _resolve(path: Path, parents: dict[str, str]) -> str:
    """The absolute path with its folder's symlinks resolved, one realpath per folder."""
    folder, name = os.path.split(os.path.abspath(path))  # noqa: PTH100 (no syscall)
    if folder not in parents:
        parents[folder] = os.path.realpath(folder)
    return os.path.join(parents[folder], name)  # noqa: PTH118 (a str key, not a Path)


def _walk(folder: str, rel: str = "", above: frozenset = frozenset()) -> Iterator:
    """(relative path, key) of every file under `folder`; symlinks followed, not loops."""
    info = Path(folder).stat()
    if (here := (info.st_dev, info.st_ino)) in above:
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():
                yield from _walk(entry.path, child, above | {here})
            elif entry.is_file():
                yield child, _key(entry.path, entry.stat())


def _keys(entry: Key | list[tuple[str, Key]]) -> list[Key]:
    return [entry] if isinstance(entry, tuple) else [key for _, key in entry]


def _compose(entry: Key | list[tuple[str, Key]], known: dict[Key, str]) -> str:
    if isinstance(entry, tuple):
        return known[entry]
    digest = hashlib.blake2b(digest_size=16)
    for rel, key in sorted(entry):
        digest.update(f"{rel}\0{known[key]}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- the code version
def code_version(
    root: Path,
    *,
    deps: Sequence[str] = (),
    exclude: Sequence[Path] = (),
    fallback: Path | None = None,
) -> str:
    """ "deps:…" from declared files, else "git:COMMIT[:DIRTY]", else "file:…", else "none"."""
    if deps:
        return "deps:" + _deps_hash(root, deps)
    version = _git_version(root, exclude)
    if version is not None:
        return version
    if fallback is not None and fallback.is_file():
        return "file:" + hash_file(fallback)
    return "none"


def _deps_hash(root: Path, deps: Sequence[str]) -> str:
    files: dict[str, Path] = {}
    for pattern in deps:
        matches = _matches(root, pattern)
        if not matches:
            raise BatchSpecError(
                f"`deps` names {pattern!r}, which matches no file under {root}. Fix the path "
                "or glob pattern (relative to the project root), or remove it from `deps`."
            )
        for match in matches:
            name = match.relative_to(root).as_posix() if match.is_relative_to(root) else str(match)
            files[name] = match
    return _json_hash(sorted((name, hash_file(path)) for name, path in files.items()))


def _matches(root: Path, pattern: str) -> list[Path]:
    """Files a `deps` entry names: a glob, a file, or every file under a folder."""
    if any(char in pattern for char in "*?["):
        if Path(pattern).is_absolute():
            anchor = Path(Path(pattern).anchor)
            found = anchor.glob(str(Path(pattern).relative_to(anchor)))
        else:
            found = root.glob(pattern)
        return sorted(path for path in found if path.is_file())
    path = root / pattern  # an absolute pattern stays absolute
    if path.is_dir():  # its files, not caches nor hidden ones (__pycache__, .git…)
        files = (child for child in path.rglob("*") if child.is_file())
        return sorted(
            f for f in files if not any(_ignored(part) for part in f.parts[len(path.parts) :])
        )
    return [path] if path.is_file() else []


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__" or name.endswith(".pyc")


def _git_version(root: Path, exclude: Sequence[Path]) -> str | None:
    """ "git:COMMIT" plus ":DIRTY" when tracked files differ from HEAD; None outside git."""
    head = _git(root, "rev-parse", "--show-toplevel", "HEAD")
    if head is None:
        return None
    lines = head.decode().splitlines()
    if len(lines) != 2:
        return None
    top, commit = Path(lines[0]), lines[1]
    inside = [
        real for real in map(Path, map(os.path.realpath, exclude)) if real.is_relative_to(top)
    ]
    specs = [":(top)", *(f":(top,exclude,literal){p.relative_to(top).as_posix()}" for p in inside)]
    diff = _git(root, "diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--", *specs)
    if diff is None:
        return None
    return f"git:{commit}:{hash_bytes(diff)}" if diff else f"git:{commit}"


def _git(root: Path, *args: str) -> bytes | None:
    return git_output(root, *args, timeout=60)  # a large diff may take a while


# ---------------------------------------------------------------- fingerprints
@dataclass(frozen=True)
class Parts:
    """What a fingerprint is made of, kept so `qa why` can say what changed."""

    kind: str  # "entrypoint" (or "… without postprocess") | "command" | "script" | "pipeline"
    configurations: str  # hash of the configurations as planned (before run-time interpolation)
    params: str  # hash of the params
    platform: str
    input: str | None  # the input's content hash (None without input)
    code: str  # code_version(...)
    upstream: tuple[str, ...]  # fingerprints of the runs it needs, sorted
    identity: str  # hash of batch name + batch file + input's relative path

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", tuple(sorted(set(self.upstream))))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (upstream as a list). Written out: `asdict` costs 10x more, and
        this runs for every planned run."""
        return {
            "kind": self.kind,
            "configurations": self.configurations,
            "params": self.params,
            "platform": self.platform,
            "input": self.input,
            "code": self.code,
            "upstream": list(self.upstream),
            "identity": self.identity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Parts:
        """The Parts saved by `to_dict`."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def fingerprint(parts: Parts) -> str:
    """The blake2b hex digest (32 characters) of the canonical JSON of `parts`."""
    return fingerprint_of(parts.to_dict())


def fingerprint_of(parts: Mapping[str, Any]) -> str:
    """`fingerprint` of parts already made a dict by `Parts.to_dict`: a hash of each field,
    by name, in `Parts`' field order (faster than sorted JSON, and as unambiguous: fields are
    separated by a byte that never occurs in them; the upstream tokens by commas). Written
    out, field by field: this runs for every planned run."""
    up = parts["upstream"]
    return hash_bytes(
        (
            f"scheme={SCHEME}\0kind={parts['kind']}\0configurations={parts['configurations']}"
            f"\0params={parts['params']}\0platform={parts['platform']}\0input={parts['input']}"
            f"\0code={parts['code']}\0upstream={','.join(up) if isinstance(up, list) else up}"
            f"\0identity={parts['identity']}"
        ).encode()
    )


def make_parts(**values: Any) -> Parts:
    """`parts_dict(**values)` as Parts (the form `explain` compares)."""
    return Parts.from_dict(parts_dict(**values))


def parts_dict(
    *,
    kind: str,
    configurations: Any,
    params: Any,
    platform: str,
    input_hash: str | None,
    code: str,
    upstream: Sequence[str],
    batch: str,
    batch_file: Path | str | None,
    rel_input_path: str | None,
    hashed: Callable[[Any], str] | None = None,
) -> dict[str, Any]:
    """A fingerprint's parts, as `Parts.to_dict()` gives them: the one recipe, used as a dict
    by the planner (a call per planned run) and as Parts through `make_parts`."""
    digest = hashed or _json_hash
    return {
        "kind": kind,
        "configurations": digest(configurations),
        "params": digest(params),
        "platform": platform,
        "input": input_hash,
        "code": code,
        "upstream": sorted(set(upstream)),
        "identity": hash_bytes(
            f"{batch}\0{batch_file}\0{rel_input_path}".encode()
        ),  # a Path as its str
    }


# ---------------------------------------------------------------- what changed
def explain(old: Parts, new: Parts, *, names: Mapping[str, str] | None = None) -> list[str]:
    """What changed from `old` (the last successful run) to `new`, most important first."""
    reasons = []
    if old.input != new.input:
        reasons.append("the input's content changed")
    if old.code != new.code:
        reasons.append(f"the code changed ({_code_change(old.code, new.code)})")
    if old.configurations != new.configurations:
        reasons.append("its configurations changed")
    if old.params != new.params:
        reasons.append("its params changed")
    if old.platform != new.platform:
        reasons.append(f"the platform changed ({old.platform} -> {new.platform})")
    if old.upstream != new.upstream:
        added = [up for up in new.upstream if up not in old.upstream]
        names = names or {}
        reasons += [f"an upstream run changed: {names.get(up, up[:12])}" for up in added]
        reasons += [] if added else ["an upstream run is no longer needed"]
    if old.kind != new.kind:
        reasons.append(f"it runs a different kind of code ({old.kind} -> {new.kind})")
    if old.identity != new.identity:
        reasons.append("it belongs to another batch or input (batch, batch file or input path)")
    return reasons


def _code_change(old: str, new: str) -> str:
    old_kind, new_kind = old.split(":", 1)[0], new.split(":", 1)[0]
    if old_kind == new_kind == "deps":
        return "a `deps` file changed"
    if old_kind == new_kind == "file":
        return "the entrypoint file changed"
    if old_kind == new_kind == "git":
        old_commit, new_commit = (old + ":").split(":")[1], (new + ":").split(":")[1]
        if old_commit != new_commit:
            return f"the git commit changed ({old_commit[:7]} -> {new_commit[:7]})"
        return "uncommitted changes to tracked files changed"
    return "how the code is versioned changed"
