"""A disk that fills up while runs write: each run fails with the reason, and the execution
still ends (recorded failed, never left `running`), thanks to the storage folder's reserve."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qaflow.execution.reserve import RESERVE_BYTES, SpaceReserve, disk_full

SRC = Path(__file__).resolve().parents[2] / "src"


def test_the_reserve_is_allocated_once_and_freed_on_demand(tmp_path: Path) -> None:
    reserve = SpaceReserve(tmp_path)
    reserve.keep()
    info = reserve.path.stat()
    assert info.st_size == RESERVE_BYTES and info.st_blocks * 512 >= RESERVE_BYTES  # not sparse
    reserve.keep()  # kept as it is
    assert reserve.path.stat().st_ino == info.st_ino
    assert reserve.release() is True and not reserve.path.exists()
    assert reserve.release() is False


def test_disk_full_errors_are_recognised_through_their_causes() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = RuntimeError("could not record")
    wrapped.__cause__ = full
    assert disk_full(full) and disk_full(wrapped)
    assert disk_full(RuntimeError("(sqlite3.OperationalError) database or disk is full"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs mounted in tmp_path (needs the right to mount: else the test skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", f"qaflow-{uuid.uuid4().hex[:8]}", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_runs_that_fill_the_disk_fail_with_the_reason_and_the_execution_ends(
    small_disk: Path, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text(f"storage: {small_disk}\n")
    (root / "qa" / "batches.yaml").write_text("fill:\n  inputs: [a.txt, b.txt, c.txt]\n")
    (root / "qa" / "main.py").write_text(
        "def run(context):\n"
        "    (context.output_dir / 'big.bin').write_bytes(b'x' * 30_000_000)\n"
        "    return {'x': 1}\n"
    )
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)
    env = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1"}

    def qa(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "qaflow", "--share", *args]  # runs go to `storage:`
        return subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    result = qa("batch", "fill")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No space left on device" in result.stdout
    listed = qa("status", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    [execution] = json.loads(listed.stdout)
    assert execution["status"] == "failed", execution
    shown = qa("status", execution["id"], "--json")
    assert json.loads(shown.stdout)["batches"]["fill"]["failed"] == 3, shown.stdout
