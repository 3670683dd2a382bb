"""The `qa` command: parse arguments, call the library, print, exit with its code.

Exit codes are mapped in one place, `main`: 0 success, 1 a run failed (or an internal
error of ours), 2 usage or configuration error, printed as one paragraph without traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from qaflow.cli.completion import COMPLETE_VAR, complete
from qaflow.errors import QaflowError, QaflowWarning, UsageError, shown_warnings
from qaflow.interpreter import pause_gc, restore_gc

if TYPE_CHECKING:
    from qaflow.cli.spinner import Spinner
    from qaflow.config.project import Project
    from qaflow.execution.options import Options
    from qaflow.plan.model import PlanOptions


@dataclass
class Globals:
    """Options given before the command, as in QA-Board (`qa --label X batch Y`)."""

    project_dir: Path | None = None
    label: str = "default"
    configs: tuple[Any, ...] | None = None
    platform: str | None = None
    database: Path | None = None
    type: str | None = None
    dryrun: bool = False
    tuning: dict[str, Any] = field(default_factory=dict)
    forwarded_args: tuple[str, ...] = ()
    share: bool = False  # QA-Board's --share: runs go to `storage:` (as in CI)
    offline: bool = False  # QA-Board's --offline: qaflow never calls a server, so always true
    postprocess: bool = True  # False: QA-Board's --no-postprocess (also among forwarded args)

    def project(self) -> Project:
        from qaflow.config.project import Project

        if self.project_dir is not None and not self.project_dir.is_dir():
            raise UsageError(f"-C {str(self.project_dir)!r}: no such folder.")
        return Project.discover(self.project_dir, share=self.share)

    def extra_parameters(self) -> dict[str, Any]:
        """QA-Board's extra parameters: forwarded args (as `forwarded_args`), then --tuning."""
        forwarded = [a for a in self.forwarded_args if a not in RUN_FLAGS]
        return {**({"forwarded_args": forwarded} if forwarded else {}), **self.tuning}

    def plan_options(self) -> PlanOptions:
        from qaflow.plan.model import PlanOptions

        return PlanOptions(
            configs=self.configs,
            platform=self.platform,
            database=self.database,
            type=self.type,
            label=self.label,
            extra_parameters=self.extra_parameters(),
            postprocess=self.postprocess and "--no-postprocess" not in self.forwarded_args,
        )

    def options(self, **execution: Any) -> Options:
        from qaflow.execution.options import Options

        return Options(
            label=self.label,
            plan=self.plan_options(),
            forwarded_args=tuple(a for a in self.forwarded_args if a not in RUN_FLAGS),
            dryrun=self.dryrun,
            argv=tuple(sys.argv),
            share=self.share,
            **execution,
        )


class LazyGroup(click.Group):
    """A group whose subcommands are named in COMMANDS and imported when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, name = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)

    # -- terminal experience (issue 16): begin
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its first sentence whole, wrapped, never cut mid-phrase."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    # -- terminal experience: end


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-C",
    "--project",
    "project_dir",
    type=click.Path(path_type=Path),
    help="Use the project in DIR (default: the nearest qaboard.yaml above the cwd).",
    metavar="DIR",
)
@click.option(
    "--label",
    "-l",
    default="default",
    show_default=True,
    help="Experiment name the execution is recorded under.",
)
@click.option(
    "--config",
    "--configuration",
    "-c",
    "configurations",
    multiple=True,
    help="Default configurations (`base:delta` or repeated); used by batches that set none.",
)
@click.option("--platform", help="Platform of the runs (default: the host's, e.g. linux).")
@click.option(
    "--database",
    type=click.Path(path_type=Path),
    help="Folder relative input paths are resolved against.",
)
@click.option("--type", "input_type", help="Input type (one of inputs.types in qaboard.yaml).")
@click.option("--dryrun", is_flag=True, help="Print what would run, run nothing.")
@click.option(
    "--tuning",
    multiple=True,
    metavar="JSON",
    help="Extra parameters as a JSON object, merged into params (repeatable).",
)
# -- QA-Board parity (issue 15): begin
@click.option(
    "--tuning-filepath",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="A file holding --tuning JSON (repeatable).",
)
@click.option(
    "--share", is_flag=True, help="Runs go to the shared `storage:` of qaboard.yaml (as in CI)."
)
@click.option(
    "--offline", is_flag=True, help="Accepted for QA-Board scripts: qaflow never calls a server."
)
# -- QA-Board parity: end
@click.version_option(package_name="qaflow", prog_name="qaflow")  # read only for --version
@click.pass_context
def cli(
    ctx: click.Context,
    project_dir: Path | None,
    label: str,
    configurations: tuple[str, ...],
    platform: str | None,
    database: Path | None,
    input_type: str | None,
    dryrun: bool,
    tuning: tuple[str, ...],
    tuning_filepath: tuple[Path, ...],
    share: bool,
    offline: bool,
) -> None:
    """qaflow: run your code on batches of inputs x configurations, chained into cached DAGs."""
    ctx.obj = Globals(
        project_dir=project_dir,
        label=label,
        configs=parse_configs(configurations) if configurations else None,
        platform=platform,
        database=database.resolve() if database else None,
        type=input_type,
        dryrun=dryrun,
        tuning=parse_tuning((*_read_tuning_files(tuning_filepath), *tuning)),
        forwarded_args=ctx.meta.get("qaflow.forwarded", ()),
        share=share,
        offline=offline,
    )


def parse_configs(values: tuple[str, ...]) -> tuple[Any, ...]:
    """`-c base:delta -c '{"k": 1}'` -> ("base", "delta", {"k": 1})."""
    out: list[Any] = []
    for value in values:
        if value.lstrip().startswith("{"):
            out.append(_json(value, "--config"))
        else:
            out.extend(part for part in value.split(":") if part)
    return tuple(out)


def parse_tuning(values: tuple[str, ...]) -> dict[str, Any]:
    """QA-Board's tuning: objects deep-merge; a string or a list adds to `_configs`."""
    from qaflow.config.layers import merge

    merged: dict[str, Any] = {}
    for value in values:
        parsed = _json(value, "--tuning")
        if isinstance(parsed, str | list):
            configs = merged.setdefault("_configs", [])
            configs.extend([parsed] if isinstance(parsed, str) else parsed)
        elif isinstance(parsed, dict):
            merge(parsed, merged)
        else:
            raise UsageError(
                f"--tuning {value!r}: expected a JSON object such as '{{\"threshold\": 0.5}}'."
            )
    return merged


def _read_tuning_files(paths: tuple[Path, ...]) -> list[str]:
    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(
                f"--tuning-filepath {str(path)!r}: cannot read it ({exc.strerror}). Give a file holding a JSON object of parameters."
            ) from None
    return texts


def _json(value: str, option: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{option} {value!r} is not valid JSON: {exc.msg} at character {exc.pos}."
        ) from exc


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `qa` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    forwarded: tuple[str, ...] = ()
    if "--" in args:  # QA-Board: what follows `--` is forwarded to the runs
        cut = args.index("--")
        args, forwarded = args[:cut], tuple(args[cut + 1 :])
    if COMPLETE_VAR in os.environ:  # the shell asks for completions (`qa completion SHELL`)
        sys.exit(complete(cli, COMPLETE_VAR))
    from qaflow.cli.spinner import for_command

    spinner = for_command(args)  # on a terminal, `qa batch` shows life before it plans
    pause_gc()  # planning builds a large graph: see `qaflow.interpreter`
    try:
        with (
            shown_warnings(lambda text: _warn(text, spinner)),
            contextlib.ExitStack() as stack,
        ):
            stack.callback(spinner.stop)  # before any message of the handlers below
            # QA-Board parity: its deprecated spellings, and every option from QA_* variables
            renamed = renamed_deprecated(args)
            ctx = stack.enter_context(cli.make_context("qa", renamed, auto_envvar_prefix="QA"))
            ctx.meta["qaflow.forwarded"] = forwarded
            ctx.meta["qaflow.spinner"] = spinner
            code = cli.invoke(ctx)
    except QaflowError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except BrokenPipeError:  # `qa status | head`: the reader left; no traceback, no more output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    finally:
        restore_gc()
    sys.exit(code if isinstance(code, int) else 0)


def _warn(text: str, spinner: Spinner) -> None:
    spinner.stop()  # its line is cleared first
    click.secho(text, fg="yellow", err=True)


# -- QA-Board parity (issue 15): begin
RUN_FLAGS = ("--keep-previous", "--no-postprocess", "--save-manifests-in-database")
"""Flags QA-Board's `qa batch` passes on to `qa run`, not to the user's code: wherever they
stand among the forwarded arguments, they are options of the execution (`--no-postprocess`:
`PlanOptions.postprocess`; `--keep-previous`: no effect, since qaflow never removes a
previous result), and the runs' `forwarded_args` do not have them."""

DEPRECATED = {
    "--input-path": "--input",
    "--output-path": "--output",
    "save_artifacts": "save-artifacts",
    "check_bit_accuracy": "check-bit-accuracy",
    "--reference-branch": "--reference",
    "--batch-label": "--label",
    "--inputs-database": "--database",
    "--save-manifests": "--save-manifests-in-database",
    "--return-prefix-outputs-path": "--list-output-dirs",
    "--ci": "--share",
    "--dry-run": "--dryrun",
    "--lsf-memory": "--lsf-max-memory",
    "--group": "--batch",
    "--groups-file": "--batches-file",
    "--no-qa-database": "--offline",
}
"""QA-Board's old option and command names (its compat.py) -> today's."""


def renamed_deprecated(args: list[str]) -> list[str]:
    """QA-Board's deprecated spellings replaced by today's, each with a warning on stderr."""
    out = []
    for arg in args:
        if arg == "--inputs-globs":
            raise UsageError(
                "--inputs-globs was removed (by QA-Board already): declare the globs of your inputs under `inputs.types` (or `inputs.globs`) in qaboard.yaml."
            )
        if arg in DEPRECATED:
            warnings.warn(
                f"{arg!r} is deprecated, use {DEPRECATED[arg]!r}.", QaflowWarning, stacklevel=1
            )
        out.append(DEPRECATED.get(arg, arg))
    return out


# -- QA-Board parity: end


def entry() -> NoReturn:
    """The `qa` console script and `python -m qaflow`: `main`, then a prompt exit.

    Once the command is done, the exit handlers run and the output is flushed, as at any
    exit; then the process ends without the interpreter's teardown, which frees every
    module and object one by one for nothing (0.1 s of the wait after `qa batch` over
    10,000 runs). Only when no other non-daemon thread runs: else a normal exit waits for it.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # what sys.exit does with a message
        sys.stderr.write(f"{code}\n")
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(status)


# Each subcommand's module is imported when that command runs (or `qa --help` lists them),
# not for every command: `qa status` needs none of what `qa batch` imports.
COMMANDS = {
    "batch": "qaflow.cli.commands.batch:batch",
    "run": "qaflow.cli.commands.run:run",
    "dag": "qaflow.cli.commands.dag:dag",
    "why": "qaflow.cli.commands.why:why",
    "init": "qaflow.cli.commands.init:init",
    "logs": "qaflow.cli.commands.logs:logs",
    "gc": "qaflow.cli.commands.gc:gc",
    "status": "qaflow.cli.commands.status:status",
    "wait": "qaflow.cli.commands.wait:wait",
    "cancel": "qaflow.cli.commands.cancel:cancel",
    "compare": "qaflow.cli.commands.compare:compare",
    "history": "qaflow.cli.commands.history:history",
    "serve": "qaflow.cli.commands.serve:serve",
    "optimize": "qaflow.cli.commands.optimize:optimize",
    "completion": "qaflow.cli.completion:completion",
    # QA-Board parity (issue 15)
    "get": "qaflow.cli.commands.qaboard:get",
    "postprocess": "qaflow.cli.commands.qaboard:postprocess",
    "sync": "qaflow.cli.commands.qaboard:sync",
    "save-artifacts": "qaflow.cli.commands.artifacts:save_artifacts",
    "check-bit-accuracy": "qaflow.cli.commands.bitaccuracy:check_bit_accuracy",
    "check-bit-accuracy-manifest": "qaflow.cli.commands.bitaccuracy:check_bit_accuracy_manifest",
}
