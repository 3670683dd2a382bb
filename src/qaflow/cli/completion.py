"""Shell completion of `qa` for bash, zsh and fish, with click's completion protocol.

`qa completion SHELL` prints the script to source (`eval "$(qa completion bash)"`); the
script then calls `qa` with `_QA_COMPLETE=<shell>_complete` and the words typed so far.
Commands and options complete as click knows them; batch names (for `qa batch`, `qa dag`,
`qa why`) are read from the project's batches files, silently: a project with errors
completes nothing, and completion never writes anything.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class, shell_complete

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_QA_COMPLETE"  # click's protocol: the shell sets it to ask `qa` for completions


def complete(cli: click.Command, var: str) -> int:
    """Answer the shell's request in `var` (`bash_source`, `zsh_complete`…); the exit status."""
    import os

    instruction = os.environ.get(var, "")
    return shell_complete(cli, {}, "qa", var, instruction)


def batch_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The batch names and aliases of the project `qa` would use, that start with `incomplete`."""
    names: list[str] = []
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            names = _names(ctx.find_root().params.get("project_dir"))
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _names(project_dir: Path | str | None) -> list[str]:
    from qaflow.config.batches import Catalog
    from qaflow.config.project import Project

    root = Path(project_dir) if project_dir else None
    catalog = Catalog.load(Project.discover(root))
    found = {name for name in catalog.names if not name.startswith(".")}
    found.update(catalog.aliases)
    return sorted(found)


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> int:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(qa completion bash)"     (in ~/.bashrc)
    zsh:   eval "$(qa completion zsh)"      (in ~/.zshrc)
    fish:  qa completion fish | source      (in ~/.config/fish/config.fish)
    """
    cls = get_completion_class(shell)
    assert cls is not None  # one of click's shells
    root = click.get_current_context().find_root().command
    click.echo(cls(root, {}, "qa", COMPLETE_VAR).source())
    return 0
