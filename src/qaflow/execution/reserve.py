"""Room kept on the storage disk so that an execution can still be recorded when runs fill it.

Runs write their outputs where the SQLite store lives (the storage folder). When they fill
the disk, each run fails with the reason ("No space left on device"), but the store would
then fail too, and the execution would stay `running` with its last results unrecorded.
So the driver keeps a reserve file, `STORAGE/.qaflow/reserve` (RESERVE_BYTES, allocated,
not sparse), and the recorder frees it the first time a write fails because the disk is
full, then writes again: the results and the execution's end get recorded. The reserve is
made again by the next execution, once there is room.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

RESERVE_BYTES = 4 * 1024 * 1024


class SpaceReserve:
    """The reserve file of one storage folder."""

    def __init__(self, storage: Path) -> None:
        self.path = storage / ".qaflow" / "reserve"

    def keep(self) -> None:
        """Make the reserve if it is missing (best effort: no room, no reserve)."""
        try:
            if self.path.stat().st_size >= RESERVE_BYTES:
                return
        except OSError:
            pass
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:  # no room, or a filesystem without fallocate
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Free the reserve; whether there was one to free."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True


def disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "disk is full" in str(current) or "No space left" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
