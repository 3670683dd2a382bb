"""`qa init`: write a sample project that works at once (`qa batch my-batch`)."""

from __future__ import annotations

from pathlib import Path

import click

from qaflow.cli.main import Globals
from qaflow.config.project import CONFIG_FILENAME
from qaflow.errors import UsageError

FILES = {
    CONFIG_FILENAME: """\
# qaflow project settings. Every key is optional; see the README for all of them.
project:
  name: {name}
  url: {url}                  # QA-Board needs it too
  entrypoint: qa/main.py      # defines run(context)
inputs:
  database: data              # relative input paths are resolved against this folder
  globs: ['*.txt']            # how folders expand into inputs
  batches: [qa/batches.yaml]
outputs:
  metrics: qa/metrics.yaml    # how metrics are shown and compared
storage: output               # where --share and CI runs go (local runs: output/)
""",
    "qa/metrics.yaml": """\
available_metrics:
  characters: {{label: Characters, smaller_is_better: false}}
  words: {{label: Words, smaller_is_better: false}}
default_metric: characters
""",
    "qa/batches.yaml": """\
# Batches: inputs x configurations. Run one with `qa batch my-batch`.
my-batch:
  inputs:
  - A.txt
  - B.txt
  configs:
  - base
  - {{scale: 2}}

# every input under a folder of the database, with a matrix of parameters
my-sweep:
  inputs: [.]
  matrix:
    scale: [1, 2, 3]
  configs:
  - scale: ${{matrix.scale}}
""",
    "qa/main.py": '''\
"""Your code, called once per run by qaflow (the same API as QA-Board)."""

from __future__ import annotations


def run(context):
    """Process context.input_path, write files in context.output_dir, return metrics."""
    text = context.input_path.read_text()
    scale = context.params.get("scale", 1)
    print(f"processing {{context.rel_input_path}} with configs {{context.configs}}")
    (context.output_dir / "output.txt").write_text(text.upper() * scale)
    return {{"characters": len(text) * scale, "words": len(text.split())}}
''',
    "data/A.txt": "hello world\n",
    "data/B.txt": "the quick brown fox\n",
}


@click.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.pass_obj
def init(g: Globals, folder: Path | None) -> int:
    """Create a sample project in FOLDER (default: the current folder, or -C DIR)."""
    root = (folder or g.project_dir or Path.cwd()).resolve()
    existing = [name for name in FILES if (root / name).exists()]
    if existing:
        raise UsageError(
            f"{str(root)!r} already has {', '.join(existing)}; qa init writes nothing over existing files. Choose an empty folder: `qa init my-project`."
        )
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=root.name, url=_remote_url(root)))
    click.echo(f"Created a qaflow project in {root}:")
    for name in FILES:
        click.echo(f"  {name}")
    where = "" if root == Path.cwd().resolve() else f"-C {root} "
    click.echo(f"Next: qa {where}batch my-batch")
    return 0


def _remote_url(root: Path) -> str:
    """The git remote `origin` of the folder (QA-Board's project.url), else a file:// URL."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=root if root.is_dir() else root.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return root.as_uri()
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else root.as_uri()
