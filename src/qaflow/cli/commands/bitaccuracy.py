"""QA-Board's bit-accuracy checks: `qa check-bit-accuracy` (output files of two versions,
by hash, on top of `qa compare --files`) and `qa check-bit-accuracy-manifest` (the runs'
files against the manifests kept in the database's input folders).

Without --strict, as in QA-Board, only files present on both sides are compared; with it,
a file on one side only fails the check too. `bit_accuracy.ignore` of qaboard.yaml lists
globs of files left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qaflow.cli.commands.batch_qaboard import BATCHES_FILE, with_batches_files
from qaflow.cli.commands.status import open_store
from qaflow.cli.main import Globals
from qaflow.config.git import git_info
from qaflow.errors import UsageError

STRICT = click.option("--strict", is_flag=True, help="A file on one side only fails too.")


@click.command()
@click.option(
    "--reference",
    metavar="REF",
    help="Branch, tag or commit (default: project.reference_branch, else master).",
)
@click.option("--batch", "-b", "batches", multiple=True, metavar="NAME", help="Only these batches.")
@BATCHES_FILE
@STRICT
@click.option(
    "--reference-label", metavar="LABEL", help="Compare with this label (NEW: --label) instead."
)
@click.option("--reference-platform", metavar="PLATFORM", help="Not supported by qaflow.")
@click.pass_obj
def check_bit_accuracy(
    g: Globals,
    reference: str | None,
    batches: tuple[str, ...],
    batches_files: tuple[Path, ...],
    strict: bool,
    reference_label: str | None,
    reference_platform: str | None,
) -> int:
    """Check that the output files of this commit (or of --label) are identical to REF's."""
    from qaflow.results.filecompare import compare_files
    from qaflow.results.refs import compare_refs

    if reference_platform:
        raise UsageError(
            "--reference-platform is not supported: compare two labels with --reference-label, or two executions with `qa compare REF NEW --files`."
        )
    project = with_batches_files(g.project(), batches_files)
    ref = (
        reference_label
        or reference
        or project.settings.get("project", {}).get("reference_branch", "master")
    )
    new = g.label if reference_label else git_info(project.root).commit or g.label
    ignore = tuple((project.settings.get("bit_accuracy") or {}).get("ignore") or ())
    failed, compared = False, 0
    with open_store(project) as store:
        for batch in batches or (None,):
            comparison = compare_refs(store, str(ref), new, batch=batch).comparison
            files = compare_files(comparison, ignore=ignore, root=project.root)
            for run in files.runs:
                compared += 1
                bad = [
                    f
                    for f in run.files
                    if f.status == "different" or (strict and f.status != "identical")
                ]
                failed = failed or bool(bad)
                for diff in bad:
                    click.echo(f"✗ {run.batch} {run.input or '-'}: {diff.path} {diff.status}")
    click.echo(
        f"{compared} run(s) compared with {ref!r}: "
        + ("NOT bit-accurate" if failed else "bit-accurate")
    )
    return 1 if failed else 0


@click.command()
@click.option(
    "--batch",
    "-b",
    "batches",
    multiple=True,
    required=True,
    metavar="NAME",
    help="The batches to check.",
)
@BATCHES_FILE
@STRICT
@click.pass_obj
def check_bit_accuracy_manifest(
    g: Globals, batches: tuple[str, ...], batches_files: tuple[Path, ...], strict: bool
) -> int:
    """Check the runs of the batches against manifest.outputs.json / manifest.inputs.json kept
    in each input folder of the database."""
    from qaflow.plan.planner import plan

    project = with_batches_files(g.project(), batches_files)
    the_plan = plan(project, list(batches), g.plan_options())
    # the newest result of each run's identity: saving manifests in an input folder changes
    # that input's content, so its fingerprint (and planned output directory) too
    with open_store(project) as store:
        latest = store.lookups.last_successes([run.key for run in the_plan.runs])
    failed, compared, missing = False, 0, 0
    for run in the_plan.runs:
        folder = run.input_path
        if folder is None or not folder.is_dir():
            continue
        output_dir = Path(latest[run.key].output_dir) if run.key in latest else run.output_dir
        for name in ("manifest.inputs.json", "manifest.outputs.json"):
            expected = _read(folder / name)
            if expected is None:
                continue
            actual = _read(output_dir / name)
            if actual is None:
                missing += 1
                click.echo(
                    f"✗ {run.batch} {run.rel_input_path}: no result yet (run `qa batch {run.batch}`)"
                )
                continue
            compared += 1
            for path in _differences(expected, actual, strict):
                failed = True
                click.echo(f"✗ {run.batch} {run.rel_input_path}: {name}: {path}")
    if not compared and not missing:
        click.echo("warning: nothing was compared: no input folder holds a manifest.", err=True)
    click.echo(
        f"{compared} manifest(s) checked, {missing} run(s) missing: "
        + ("NOT bit-accurate" if failed or missing else "bit-accurate")
    )
    return 1 if failed or missing else 0


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _differences(expected: dict[str, Any], actual: dict[str, Any], strict: bool) -> list[str]:
    """Paths whose md5 differ (and with `strict`, paths on one side only)."""
    out = []
    for path in sorted(set(expected) | set(actual)):
        if path in expected and path in actual:
            if expected[path].get("md5") != actual[path].get("md5"):
                out.append(f"{path} differs")
        elif strict:
            out.append(f"{path} only in the {'manifest' if path in expected else 'run'}")
    return out
