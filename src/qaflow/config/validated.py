"""Validations kept between processes: pydantic runs only when a document changed.

Validating qaboard.yaml and the batches asked for with the pydantic models
(`config.models`) costs more than the rest of a no-op re-run's planning, most of it in
importing pydantic and building the models. A validation's result is plain data and a
function of the document, where it came from and the validating code alone, so it is kept,
with the warnings it gave, under a digest of those three. A process whose files did not
change replays the warnings, uses the kept data, and never imports pydantic.

Policy:
- Kept only: successes. An error is raised again, by pydantic, every time.
- Written only by `flush()`, which `qa batch` and `qa run` call when an execution is about
  to start: a command that fails, plans only (`--dryrun`), or only reads writes nothing.
- Where: one file per project, in QA_CONFIG_CACHE_DIR, else `$XDG_CACHE_HOME/qaflow/config/`
  (`~/.cache` when unset), at most `MAX_ENTRIES` validations (and as many parses) per project and `MAX_FILES` projects (the oldest go).
- A document that `marshal` cannot encode (a YAML date, a custom tag) is not kept; a kept
  file that cannot be read is ignored. `QA_CONFIG_CACHE=0` turns the cache off.

Parses are kept the same way (`parsed`): a YAML file's data, under a digest of its bytes and
of the parsing code (PyYAML's version included), so that a process whose files did not
change does not import PyYAML either. Its data is kept with its shared values shared (an
anchor used twice is one object, as PyYAML gives it), up to `MAX_PARSED` bytes.

Shared by content. A project seen for the first time (a new clone or worktree, a copy, a
project made from the same template) finds what another project with the same files kept:
a second file, `shared.kept`, holds the latest validations and parses that depend on no
location, under a digest without the project's folder (the document's place *in* the
project is kept: `qa/batches.yaml` validates the same in any clone). A validation is shared
only if it gave no warning (warnings name the file) and its result does not hold the
project's path; parses depend on bytes alone. It is read only when the project's own file
has no answer, and what it answers is then kept in the project's file too. At most
`MAX_SHARED` entries of each kind and `MAX_SHARED_BYTES` in all (the latest).
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from qaflow.errors import QaflowWarning

T = TypeVar("T")

MARSHAL_VERSION = 2  # no back-references: equal documents always encode to equal bytes
MAX_ENTRIES = 512  # validations kept per project (the latest)
MAX_FILES = 256  # projects kept (the most recently written)
MAX_PARSED = 8 * 1024 * 1024  # bytes of a kept parse, encoded
MAX_SHARED = 64  # validations (and as many parses) shared by content between projects
MAX_SHARED_BYTES = 2 * 1024 * 1024  # the shared file's entries, encoded, at most
SHARED = "shared.kept"  # the file of what is shared by content, in `folder()`
_SHARED_KEY = "\0shared"  # its place among `_projects`
PARSED_MARSHAL_VERSION = 4  # with back-references: values shared in the data stay shared
_CODE = ("models.py", "schema.py", "values.py", "batch_errors.py")  # what validates, in config/

_projects: dict[str, _Kept] = {}  # project root -> what is kept for it, read once
_code_digests: dict[tuple[Path, ...], bytes] = {}  # the validating code's digest, computed once


class _Kept:
    """The kept validations of one project (or the shared ones), as read at first use, plus
    this process's."""

    def __init__(self, path: Path | None, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self.entries, self.parses = _read_both(path) if path is not None else ({}, {})
        self.dirty = False


def cached(
    kind: str,
    where: str,
    data: Any,
    validate: Callable[[], T],
    *,
    root: Path,
    code: tuple[Path, ...] = (),
) -> T:
    """`validate()`'s result for document `data` (a `kind` of document, from `where`, in the
    project at `root`): kept from an earlier process when the same document was validated by
    the same code (its warnings shown again), else computed and kept. `code`: the validating
    modules outside the config layer (whose validating sources are always covered)."""
    if os.environ.get("QA_CONFIG_CACHE") == "0":
        return validate()
    try:
        document = marshal.dumps((kind, where, data), MARSHAL_VERSION)
        digest = _code(code)
    except (ValueError, OSError):  # a type marshal does not know; code not readable: not kept
        return validate()
    key = hashlib.blake2b(document, digest_size=20, key=digest).digest()
    kept = _kept(root)
    blob = kept.entries.get(key)
    shared_key = None
    if blob is None:  # looked for by content only when the project's own file has no answer
        shared_key = _shared_key(kind, where, data, digest, root)
        blob = None if shared_key is None else _shared().entries.get(shared_key)
        if blob is not None:  # another project's: this one keeps it too
            kept.entries[key] = blob
            kept.dirty = True
    if blob is not None:
        try:
            result, messages = marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            kept.entries.pop(key, None)
            if shared_key is not None:
                _shared().entries.pop(shared_key, None)
        else:
            for message in messages:
                warnings.warn(message, QaflowWarning, stacklevel=2)
            return result  # type: ignore[no-any-return]
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # type: ignore[assignment]
            warnings.simplefilter("always")
            result = validate()
    finally:
        for warning in caught:  # shown as if not caught, error or not
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if all(issubclass(w.category, QaflowWarning) for w in caught):
        try:
            outcome: Any = (result, [str(w.message) for w in caught])
            blob = kept.entries[key] = marshal.dumps(outcome, MARSHAL_VERSION)
            kept.dirty = True
        except ValueError:
            return result
        if shared_key is not None and not caught and str(root).encode() not in blob:
            _share(_shared().entries, shared_key, blob)
    return result


def _shared_key(kind: str, where: str, data: Any, code: bytes, root: Path) -> bytes | None:
    """The key of a validation shared by content: as the project's, with `where` relative to
    the project's folder; None when the project's folder is `/` (nothing to make relative)."""
    prefix = str(root).rstrip("/") + "/"
    if prefix == "/":
        return None
    try:
        document = marshal.dumps((kind, where.replace(prefix, "\0/"), data), MARSHAL_VERSION)
    except ValueError:
        return None
    return hashlib.blake2b(document, digest_size=20, key=code, person=b"shared").digest()


def _shared() -> _Kept:
    """What is shared by content between projects (`SHARED`), read at first use."""
    if _SHARED_KEY not in _projects:
        where = folder()
        _projects[_SHARED_KEY] = _Kept(where / SHARED if where is not None else None, shared=True)
    return _projects[_SHARED_KEY]


def _share(entries: dict[bytes, bytes], key: bytes, blob: bytes) -> None:
    if key not in entries and len(blob) <= MAX_SHARED_BYTES // 4:
        entries[key] = blob
        _shared().dirty = True


def parsed(raw: bytes, parse: Callable[[], Any], *, root: Path, code: tuple[Path, ...]) -> Any:
    """`parse()`'s result for a file whose bytes are `raw`: kept from an earlier process when
    the same bytes were parsed by the same `code` (the parsing modules), else parsed and kept
    (in the project at `root`'s file). Errors are not kept: `parse()` raises them again."""
    if os.environ.get("QA_CONFIG_CACHE") == "0":
        return parse()
    try:
        key = hashlib.blake2b(raw, digest_size=20, key=_code(code), person=b"parsed").digest()
    except OSError:  # the parsing code cannot be read: not kept
        return parse()
    kept = _kept(root)
    blob = kept.parses.get(key)
    if blob is None:
        blob = _shared().parses.get(key)  # the same bytes, parsed for another project
        if blob is not None:
            kept.parses[key] = blob
            kept.dirty = True
    if blob is not None:
        try:
            return marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            kept.parses.pop(key, None)
            _shared().parses.pop(key, None)
    result = parse()
    try:
        blob = marshal.dumps(result, PARSED_MARSHAL_VERSION)
    except ValueError:  # a value marshal does not know (a YAML date): not kept
        return result
    if len(blob) <= MAX_PARSED:
        kept.parses[key] = blob
        kept.dirty = True
        _share(_shared().parses, key, blob)
    return result


def flush() -> None:
    """Write what this process validated (`qa batch`/`qa run`, when an execution starts).
    Best effort: a cache that cannot be written is no error."""
    for kept in _projects.values():
        if not kept.dirty or kept.path is None:
            continue
        kept.dirty = False
        entries = _latest(kept.entries, MAX_SHARED if kept.shared else MAX_ENTRIES)
        parses = _latest(kept.parses, MAX_SHARED if kept.shared else MAX_ENTRIES)
        if kept.shared:
            entries, parses = (
                _within(entries, MAX_SHARED_BYTES // 2),
                _within(parses, MAX_SHARED_BYTES // 2),
            )
        try:
            new = not kept.path.exists()
            kept.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = kept.path.with_name(f".{kept.path.name}.{os.getpid()}")
            temporary.write_bytes(marshal.dumps((entries, parses), MARSHAL_VERSION))
            temporary.replace(kept.path)
            if new and not kept.shared:
                _prune(kept.path.parent)
        except OSError:
            continue


def _latest(blobs: dict[bytes, bytes], count: int) -> dict[bytes, bytes]:
    return dict(list(blobs.items())[-count:])


def _within(blobs: dict[bytes, bytes], budget: int) -> dict[bytes, bytes]:
    """The latest of `blobs` whose sizes add up to at most `budget` bytes."""
    kept: list[tuple[bytes, bytes]] = []
    for key, blob in reversed(blobs.items()):
        budget -= len(blob)
        if budget < 0:
            break
        kept.append((key, blob))
    return dict(reversed(kept))


def folder() -> Path | None:
    """Where the kept validations are: QA_CONFIG_CACHE_DIR, else
    `$XDG_CACHE_HOME/qaflow/config`, else `~/.cache/qaflow/config`."""
    if os.environ.get("QA_CONFIG_CACHE_DIR"):
        return Path(os.environ["QA_CONFIG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            return Path.home() / ".cache" / "qaflow" / "config"
        except RuntimeError:  # no home folder to be found
            return None
    return Path(base) / "qaflow" / "config"


def _kept(root: Path) -> _Kept:
    name = str(root)
    if name not in _projects:
        where = folder()
        file = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
        _projects[name] = _Kept(where / f"{file}.bin" if where is not None else None)
    return _projects[name]


def _read_both(path: Path) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The kept validations and parses of a project's file; none if it cannot be read."""
    try:
        kept = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}, {}
    if not (isinstance(kept, tuple) and len(kept) == 2 and all(isinstance(d, dict) for d in kept)):
        return {}, {}  # not this version's layout
    return kept[0], kept[1]


def _code(extra: tuple[Path, ...]) -> bytes:
    """A digest of the code that validates (the config layer's, and `extra`): kept results of
    other code are not used."""
    if extra not in _code_digests:
        here = Path(__file__).parent
        digest = hashlib.blake2b(digest_size=16)
        for path in (*(here / name for name in _CODE), *extra):
            digest.update(path.read_bytes())
        _code_digests[extra] = digest.digest()
    return _code_digests[extra]


def _prune(where: Path) -> None:
    """Keep the `MAX_FILES` most recently written projects' files."""
    try:
        files = sorted(where.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for stale in files[MAX_FILES:]:
        with contextlib.suppress(OSError):
            stale.unlink()
