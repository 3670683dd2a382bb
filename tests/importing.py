"""A real `qa` process, and the modules it imported (`python -X importtime`): for the tests
of what a command path must not import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def qa_importing(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `qa -C root ARGS` (with this interpreter's sys.path; `env`: the whole environment
    instead of this one's); its result, and the full names of the modules it imported."""
    environment = {**(os.environ if env is None else env), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qaflow", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, imported


def packages(modules: set[str]) -> set[str]:
    """The top-level packages of these modules."""
    return {name.split(".")[0] for name in modules}
