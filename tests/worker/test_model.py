"""The worker's shared vocabulary: what `hostname()` records."""

from __future__ import annotations

import socket
import subprocess
import sys

from qaflow.worker.model import hostname


def test_hostname_is_what_socket_says_without_importing_it():
    assert hostname() == socket.gethostname()
    code = (
        "import sys; from qaflow.worker.model import hostname; name = hostname(); "
        "print(name, 'socket' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": ":".join(sys.path)},
    ).stdout.split()  # fmt: skip
    assert out == [socket.gethostname(), "False"]
