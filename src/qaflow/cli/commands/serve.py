"""`qa serve`: the board, a web app over the run store (see `qaflow.web`)."""

from __future__ import annotations

import ipaddress
import secrets

import click

from qaflow.cli.main import Globals
from qaflow.errors import UsageError
from qaflow.interpreter import resume_gc


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the board on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5151, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="QA_TOKEN",
    help="Access token, required when HOST is not a loopback address (default: $QA_TOKEN).",
)
@click.pass_obj
def serve(g: Globals, host: str, port: int, token: str | None) -> int:
    """Serve the board: executions, their DAG live, runs with their files, comparisons.

    It binds 127.0.0.1 unless told otherwise. On any other address it requires a token
    (--token or QA_TOKEN): open the printed URL once (it ends with ?token=…), or send
    `Authorization: Bearer TOKEN`. Only files under the storage folder are served."""
    token = token or None
    if not is_loopback(host) and token is None:
        raise UsageError(
            f"qa serve --host {host}: the board would be reachable from other machines, so it "
            "needs an access token. Give one with --token TOKEN or the QA_TOKEN environment "
            f"variable (for example: --token {secrets.token_urlsafe(16)}), or bind 127.0.0.1."
        )
    project = g.project()
    resume_gc()
    import uvicorn

    from qaflow.web.app import LOOPBACK_NAMES, create_app

    hosts = None if token else [*LOOPBACK_NAMES, host]  # a token makes Host checks moot
    app = create_app(project, token=token, hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"qa serve: the board of {project.name} at {url} (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
