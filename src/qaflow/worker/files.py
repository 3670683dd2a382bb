"""Small files of a run directory, read and written with os-level calls.

A run writes and reads several small files (run.json, metrics.json, its manifests, its
lock file): each of these takes a few system calls here, without a file object, a text
layer or a `pathlib.Path` to set up, which on a short run is a good part of qaflow's own
time. Paths are strings. Errors are the `OSError`s of the calls.
"""

from __future__ import annotations

import os

_SMALL = 1 << 16
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC  # os.open: not inherited by children


def read_bytes(path: str) -> bytes:
    """The file's bytes (FileNotFoundError if there is none)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _SMALL)
        if len(data) < _SMALL:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_bytes(path: str, data: bytes) -> None:
    """Create or truncate the file (mode 0o666 less the umask, as `open`) and write `data`."""
    fd = os.open(path, _WRITE, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_text(path: str, text: str) -> None:
    """`write_bytes` of the text in UTF-8."""
    write_bytes(path, text.encode())
