"""`qa serve` as a user starts it: a real process serving the board until stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from .conftest import Demo


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def qa_serve(demo: Demo, *args: str) -> Iterator[tuple[str, list[str]]]:
    """A `qa serve` process, its URL, and (once it has stopped) what it printed."""
    port = free_port()
    command = [sys.executable, "-m", "qaflow", "-C", str(demo.root), "serve", "--port", str(port)]
    url, printed = f"http://127.0.0.1:{port}", []
    with subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    assert process.poll() is None, "qa serve exited"
                    assert time.monotonic() < deadline, "qa serve did not answer"
                    time.sleep(0.1)
            yield url, printed
        finally:
            process.terminate()
            printed.append(process.communicate(timeout=10)[0])


def test_qa_serve_serves_the_board_on_loopback(demo: Demo) -> None:
    with qa_serve(demo) as (url, printed):
        page = httpx.get(f"{url}/executions/{demo.new}")
        assert page.status_code == 200 and "evaluation" in page.text
    assert f"the board of board/demo at {url}/" in printed[0]


def test_qa_serve_with_a_token_prints_the_url_to_open_and_requires_it(demo: Demo) -> None:
    with qa_serve(demo, "--token", "s3cret") as (url, printed):
        assert httpx.get(url).status_code == 401
        with httpx.Client() as client:
            opened = client.get(f"{url}/?token=s3cret", follow_redirects=True)
            assert opened.status_code == 200 and "Executions" in opened.text
    assert f"{url}/?token=s3cret" in printed[0]
