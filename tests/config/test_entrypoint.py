"""The entrypoint is checked once, before any run: Python that compiles and binds `run`."""

from __future__ import annotations

import pytest

from qaflow.config.entrypoint import check_entrypoint
from qaflow.errors import UsageError

GOOD = [
    "def run(context):\n    return {}\n",
    "async def run(context):\n    return {}\n",
    "from mypackage.algo import run\n",
    "from mypackage.algo import main as run\n",
    "from mypackage.algo import *\n",
    "import sys\nif sys.platform == 'win32':\n    def run(c): pass\nelse:\n    def run(c): pass\n",
    "try:\n    from fast import run\nexcept ImportError:\n    from slow import run\n",
    "run = make_runner()\n",
    "class run:\n    pass\n",
]


@pytest.mark.parametrize("source", GOOD)
def test_entrypoints_that_bind_run_pass(tmp_path, source):
    path = tmp_path / "main.py"
    path.write_text(source)
    check_entrypoint(path)  # no error; nothing imported (mypackage does not exist)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("def run(context:\n    pass\n", r"main.py:1: the entrypoint is not valid Python"),
        ("#!/bin/bash\necho hello world\n", r"main.py:2: the entrypoint is not valid Python"),
        ("def walk(context):\n    def run(): pass\n", "defines no `run`"),
        ("", "defines no `run`"),
        (b"\x7fELF\x02\x01\x00\x00", "binary file, not Python"),
        (b"def run(c):\n    return '\xe9'\n", "not valid Python"),
    ],
)
def test_entrypoints_that_cannot_give_run_are_refused(tmp_path, content, says):
    path = tmp_path / "main.py"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError, match=says):
        check_entrypoint(path)


def test_a_missing_entrypoint_says_how_to_make_one(tmp_path):
    with pytest.raises(UsageError, match=r"does not exist.*qa init"):
        check_entrypoint(tmp_path / "qa" / "main.py")
