"""The `qaboard` compatibility package: QA-Board's client API over qaflow, with no side effect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qaboard.conventions import location_from_spec, slugify
from qaboard.utils import merge

SRC = Path(__file__).resolve().parents[2] / "src"


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "GIT_COMMIT")}
    environ |= {"PYTHONPATH": str(SRC), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_importing_it_writes_nothing_and_prints_nothing(tmp_path):
    result = python(
        """
        import qaboard
        from qaboard import is_ci, on_linux, on_windows, config, merge, slugify, __version__
        import qaboard.config, qaboard.utils
        print(__version__, is_ci, on_linux, on_windows, callable(merge), slugify("A b"))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1.1.1", "False", "True", "False", "True", "a-b"]
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # no output/ folder, no store, no cache


def sample(root: Path) -> Path:
    """A project shaped like QA-Board's sample: a subproject including a shared YAML file."""
    (root / "qa").mkdir(parents=True)
    (root / "qaboard.yaml").write_text(
        textwrap.dedent("""
        project: {name: user/sample_project, url: git@github.com/user/sample_project, type: git}
        inputs: {database: {linux: /, windows: 'C://'}, batches: [qa/batches.yaml]}
        outputs: {metrics: qa/metrics.yaml, visualizations: [{path: a.jpg}]}
        storage: {outputs: {linux: '/mnt/{user}/outputs'}, artifacts: /mnt/artifacts}
        """)
    )
    (root / "qa" / "metrics.yaml").write_text("available_metrics: {loss: {label: Loss}}\n")
    (root / "included.yaml").write_text("test_include: true\nproject: {reference_branch: dev}\n")
    (root / "sub").mkdir()
    (root / "sub" / "qaboard.yaml").write_text(
        "include: included.yaml\noutputs:\n  visualizations: [super, {path: c.jpg}]\n"
    )
    return root


def test_config_reads_the_layered_project_settings(tmp_path):
    root = sample(tmp_path / "p")
    code = """
        import json
        from qaboard import config
        import qaboard.config as c
        print(json.dumps({
            "project": str(c.project), "subproject": str(c.subproject), "is_ci": c.is_ci,
            "include": config["test_include"], "ref": config["project"]["reference_branch"], "viz": [v["path"] for v in config["outputs"]["visualizations"]],
            "metrics": list(c.available_metrics), "outputs_root": str(c.outputs_root),
            "artifacts_root": str(c.artifacts_root), "commit": c.commit_id, "branch": c.commit_branch,
            "user": c.user, "outputs_commit": str(c.outputs_commit),
        }))
    """
    sha = "0123456789abcdef0123456789abcdef01234567"
    result = python(
        code,
        root / "sub",
        CI="1",
        CI_COMMIT_SHA=sha,
        CI_COMMIT_REF_NAME="origin/dev",
        QA_USER="ann",
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["project"] == "user/sample_project/sub" and facts["subproject"] == "sub"
    assert facts["is_ci"] is True and facts["include"] is True and facts["ref"] == "dev"
    # the subproject's `super` keeps the parent's list
    assert facts["viz"] == ["a.jpg", "c.jpg"]
    assert facts["metrics"] == ["loss"]
    assert (
        facts["outputs_root"] == "/mnt/ann/outputs" and facts["artifacts_root"] == "/mnt/artifacts"
    )
    assert facts["commit"] == sha and facts["branch"] == "dev" and facts["user"] == "ann"
    assert facts["outputs_commit"] == "/mnt/ann/outputs/user/sample_project/01/23456789abcdef/sub"


def test_outside_ci_and_git_the_commit_is_local(tmp_path):
    root = sample(tmp_path / "p")
    result = python("import qaboard.config as c; print(c.is_ci, c.commit_id)", root, QA_USER="bo")
    assert result.stdout.split() == ["False", "<local:bo>"]


def test_merge_is_qaboards_deep_merge_with_super():
    dest = {"a": {"x": 1, "y": [1]}, "l": [1, 2], "s": "old"}
    out = merge({"a": {"y": ["super", 2]}, "l": [3], "s": {"k": 1}}, dest)
    assert out is dest
    assert out == {"a": {"x": 1, "y": [1, 2]}, "l": [3], "s": {"k": 1}}


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Hello World", "hello-world"),
        ("a--b__c", "a-b-c"),
        ("-x=1.5-", "x=1.5"),
        ("A" * 40, "a" * 31),
    ],
)
def test_slugify(text, slug):
    assert slugify(text) == slug


def test_location_from_spec_picks_the_host_and_fills_placeholders():
    assert location_from_spec({"linux": "/m/{project}", "windows": "X:"}, {"project": "p"}) == Path(
        "/m/p"
    )
    with pytest.raises(ValueError, match="linux"):
        location_from_spec({"windows": "X:"})
