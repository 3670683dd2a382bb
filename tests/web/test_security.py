"""The board's security rules, over HTTP against a real uvicorn: only files under storage,
tokens off loopback, Host checks on loopback, scripts never run from a run's files."""

from __future__ import annotations

import http.client
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from qaflow.cli import main as cli  # noqa: F401  (before a command module: cli imports them all)
from qaflow.cli.commands.serve import is_loopback
from qaflow.web.app import create_app

from .conftest import Demo, Server


def raw_get(
    server: Server, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", (headers or {}).pop("Host", f"127.0.0.1:{server.port}"))
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def secret(demo: Demo) -> Path:
    """A file next to the storage folder, and symlinks to it from a run's directory."""
    path = demo.root / "secret.txt"
    path.write_text("TOP SECRET")
    run = next(p for p in (demo.project.storage / "runs").rglob("result.png")).parent
    (run / "leak.txt").symlink_to(path)
    (run / "leak_dir").symlink_to(demo.root / "qa", target_is_directory=True)
    return path


def run_url(demo: Demo, name: str) -> str:
    run = next(p for p in (demo.project.storage / "runs").rglob("result.png")).parent
    return "/files/" + (run / name).relative_to(demo.project.storage).as_posix()


TRAVERSALS = [
    "/files/../secret.txt",
    "/files/..%2fsecret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E%2Fsecret.txt",
    "/files/runs/%2e%2e/%2e%2e/secret.txt",
    "/files/runs/..%2F..%2Fsecret.txt",
    "/files/%2fetc%2fpasswd",
    "/files//etc/passwd",
    "/files/..%5csecret.txt",
    "/files/%252e%252e/secret.txt",
    "/files/runs/%00/../../secret.txt",
    "/files/.%2e/.%2e/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_refused_even_encoded(server: Server, secret: Path, target: str) -> None:
    status, body = raw_get(server, target)
    assert status in (400, 403, 404), (target, status)
    assert b"TOP SECRET" not in body and b"root:" not in body


def test_symlinks_out_of_storage_are_refused_and_files_inside_served(
    demo: Demo, server: Server, secret: Path
) -> None:
    status, body = raw_get(server, run_url(demo, "leak.txt"))
    assert status == 403 and b"TOP SECRET" not in body
    status, body = raw_get(server, run_url(demo, "leak_dir/main.py"))
    assert status == 403
    status, body = raw_get(server, run_url(demo, "result.png"))
    assert status == 200 and body.startswith(b"\x89PNG")
    page = httpx.get(f"{server.url}/runs/{demo.run_id('test1.txt')}")
    assert "leak.txt" not in page.text  # not even listed


def test_run_files_are_sandboxed_and_never_rendered_as_html(demo: Demo, server: Server) -> None:
    run = next(p for p in (demo.project.storage / "runs").rglob("result.png")).parent
    (run / "page.html").write_text("<script>alert(1)</script>")
    response = httpx.get(server.url + run_url(demo, "page.html"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    download = httpx.get(server.url + run_url(demo, "result.png") + "?download=1")
    assert download.headers["content-disposition"].startswith("attachment")


def test_pages_allow_only_the_boards_own_scripts(server: Server) -> None:
    policy = httpx.get(server.url + "/").headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )


def test_on_loopback_a_foreign_host_header_is_refused(server: Server) -> None:
    """A page of another site resolving its name to 127.0.0.1 (DNS rebinding) gets nothing."""
    assert raw_get(server, "/", {"Host": "evil.example:80"})[0] == 400
    assert raw_get(server, "/", {"Host": f"localhost:{server.port}"})[0] == 200


# ---------------------------------------------------------------- tokens
@pytest.fixture(scope="module")
def guarded(demo: Demo) -> Iterator[tuple[Server, str]]:
    token = secrets.token_urlsafe(16)
    with Server(create_app(demo.project, token=token)) as running:
        yield running, token


def test_with_a_token_every_request_needs_it(guarded: tuple[Server, str], demo: Demo) -> None:
    server, token = guarded
    preview = run_url(demo, "result.png").replace("/files/", "/previews/", 1)
    paths = ["/", f"/executions/{demo.ref}", run_url(demo, "result.png"), preview]
    for path in [*paths, "/static/board.css"]:
        assert httpx.get(server.url + path).status_code == 401, path
        assert (
            httpx.get(server.url + path, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        ok = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, path
    assert httpx.get(f"{server.url}/?token=wrong").status_code == 401


def test_a_token_in_the_url_becomes_a_cookie_and_leaves_the_url(
    guarded: tuple[Server, str], demo: Demo
) -> None:
    server, token = guarded
    with httpx.Client(base_url=server.url) as client:
        first = client.get(f"/executions/{demo.ref}?token={token}&batch=evaluation")
        assert first.status_code == 303
        assert first.headers["location"] == f"/executions/{demo.ref}?batch=evaluation"
        assert "httponly" in first.headers["set-cookie"].lower()
        assert client.get(first.headers["location"]).status_code == 200  # with the cookie


def test_the_loopback_check() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.10", "example.com", "::"]))


def test_qa_serve_refuses_another_address_without_a_token(
    demo: Demo, qa: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QA_TOKEN", raising=False)
    result = qa("-C", str(demo.root), "serve", "--host", "0.0.0.0", "--port", "1")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    message = result.stderr  # type: ignore[attr-defined]
    assert "needs an access token" in message and "--token" in message and "QA_TOKEN" in message
    assert "Traceback" not in message
    monkeypatch.setenv("QA_TOKEN", "")
    assert qa("-C", str(demo.root), "serve", "--host", "10.1.2.3").exit_code == 2  # type: ignore[attr-defined]
    assert "QA_TOKEN" not in os.environ or not os.environ["QA_TOKEN"]


# ---------------------------------------------------------------- bad input
BIG = str(10**40)


@pytest.mark.parametrize(
    "target",
    [
        f"/executions/{{new}}?page={BIG}",
        "/executions/{new}?page=-3",
        "/executions/{new}?page=nope",
        f"/live/executions/{{new}}/runs?page={BIG}",
        f"/executions/{{new}}?ref={{ref}}&tpage={BIG}",
        f"/runs/{BIG}",
        f"/runs/-{BIG}",
        f"/api/runs/{BIG}/log",
        f"/api/runs/{{run}}/log?offset={BIG}",
        "/api/runs/{run}/log?offset=-5",
        "/executions/{new}?q=" + "x" * 60_000,
        "/compare?ref=" + "r" * 60_000 + "&new={new}",
        "/runs/{run}?ref=" + "r" * 60_000,
        "/?label=" + "l" * 60_000,
    ],
)
def test_out_of_range_requests_are_client_errors(demo: Demo, server: Server, target: str) -> None:
    target = target.format(new=demo.new, ref=demo.ref, run=demo.run_id("test1.txt"))
    status, body = raw_get(server, target)
    assert 400 <= status < 500, (target[:80], status, body[:300])
    assert b"Traceback" not in body


def test_a_token_redirect_never_leaves_the_site(guarded: tuple[Server, str]) -> None:
    """`//evil.com/x` as a Location is another site (scheme-relative): the board redirects
    to its own path /evil.com/x instead."""
    server, token = guarded
    for target, expected in [
        (f"//evil.com/x?token={token}", "/evil.com/x"),
        (f"///evil.com/x?token={token}&a=1", "/evil.com/x?a=1"),
    ]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            assert response.status == 303, target
            assert response.getheader("location") == expected
        finally:
            connection.close()
