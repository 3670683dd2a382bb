"""QA-Board's commands on qaflow: postprocess, sync, save-artifacts, the bit-accuracy checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import write_project

MAIN = """
from pathlib import Path

def run(context):
    text = Path(context.input_path).read_text() if Path(context.input_path).is_file() else "folder"
    gain = context.params.get("gain", 1)
    (context.output_dir / "out.txt").write_text(text * gain)
    return {"size": len(text) * gain}

def postprocess(metrics, context):
    return {**metrics, "post": metrics.get("post", 0) + 1}
"""

GIT = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        env={**os.environ, **GIT},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CI", "GIT_COMMIT", "QA_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    root = write_project(
        tmp_path / "repo",
        qaboard=f"""
        project: {{name: team/algo, reference_branch: main}}
        storage: {{outputs: {tmp_path / "shared"}, artifacts: {tmp_path / "artifacts"}}}
        artifacts:
          binaries: {{glob: 'build/*.bin'}}
        bit_accuracy: {{ignore: ['*.log']}}
        """,
        batches="images:\n  inputs: [a.txt, b.txt]\nfolders:\n  inputs: [f1]\n",
        files=["a.txt", "b.txt", "f1/x.txt", "build/tool.bin", "build/notes.md"],
        extra={"qa/main.py": MAIN},
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def metrics_of(root: Path, batch: str = "@run") -> list[dict]:
    """The metrics of the committed results: a run directory is a symlink to its committed
    attempt (`<fp12>.<execution>-<n>`), the attempts before it stay as they were."""
    return [
        json.loads((p / "metrics.json").read_text())
        for p in sorted((root / "output" / "runs" / batch).rglob("*"))
        if p.is_symlink() and (p / "metrics.json").is_file()
    ]


def test_postprocess_and_sync_act_on_the_results_of_qa_run(repo, qa):
    missing = qa("-C", str(repo), "postprocess", "-i", "a.txt")
    assert missing.exit_code == 2 and "qa run -i a.txt" in missing.stderr
    assert qa("-C", str(repo), "run", "-i", "a.txt").exit_code == 0
    [first] = metrics_of(repo)
    assert first["post"] == 1 and first["size"] == len("a.txt")
    assert qa("-C", str(repo), "postprocess", "-i", "a.txt").exit_code == 0
    assert [m["post"] for m in metrics_of(repo)] == [2]
    synced = qa("-C", str(repo), "sync", "-i", "a.txt")
    assert synced.exit_code == 0, synced.stdout + synced.stderr
    assert [m["post"] for m in metrics_of(repo)] == [2]  # recorded as it is, nothing ran


def test_save_artifacts_copies_the_groups_per_commit(repo, qa, tmp_path):
    commit = git(repo, "rev-parse", "HEAD")
    result = qa("-C", str(repo), "save-artifacts")
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "artifacts" / "team/algo" / commit[:2] / commit[2:16]
    assert (folder / "build/tool.bin").read_text() == "build/tool.bin"
    assert not (folder / "build/notes.md").exists()
    assert (folder / "qaboard.yaml").is_file() and (folder / "qa/main.py").is_file()
    manifest = json.loads((folder / "manifests" / "binaries.json").read_text())
    assert list(manifest) == ["build/tool.bin"] and manifest["build/tool.bin"]["st_size"] == 14
    only = qa("-C", str(repo), "save-artifacts", "nope")
    assert only.exit_code == 2 and "binaries" in only.stderr


def test_save_artifacts_outside_git_is_a_usage_error(project, qa, monkeypatch):
    root = project(qaboard="artifacts: {x: {glob: '*'}}\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(root.parent))
    result = qa("-C", str(root), "save-artifacts")
    assert result.exit_code == 2 and "git repository" in result.stderr


def test_check_bit_accuracy_between_labels_and_commits(repo, qa):
    assert qa("-C", str(repo), "--label", "ref", "batch", "images").exit_code == 0
    same = qa("-C", str(repo), "--label", "ref", "check-bit-accuracy", "--reference-label", "ref")
    assert same.exit_code == 0 and "bit-accurate" in same.stdout
    assert (
        qa(
            "-C", str(repo), "--label", "new", "--tuning", '{"gain": 2}', "batch", "images"
        ).exit_code
        == 0
    )
    changed = qa(
        "-C", str(repo), "--label", "new", "check-bit-accuracy", "--reference-label", "ref"
    )
    assert changed.exit_code == 1 and "out.txt different" in changed.stdout
    # the default: this commit's results against the reference branch (here, the same commit)
    by_commit = qa("-C", str(repo), "check-bit-accuracy", "--batch", "images")
    assert by_commit.exit_code in (0, 1) and "compared with 'main'" in by_commit.stdout
    unsupported = qa("-C", str(repo), "check-bit-accuracy", "--reference-platform", "windows")
    assert unsupported.exit_code == 2


def test_check_bit_accuracy_manifest(repo, qa):
    assert qa("-C", str(repo), "batch", "folders").exit_code == 0
    [run_dir] = [p.parent for p in (repo / "output" / "runs" / "folders").rglob("metrics.json")]
    for name in ("manifest.inputs.json", "manifest.outputs.json"):
        shutil.copy(run_dir / name, repo / "f1" / name)
    ok = qa("-C", str(repo), "check-bit-accuracy-manifest", "--batch", "folders")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "2 manifest(s) checked" in ok.stdout
    saved = json.loads((repo / "f1" / "manifest.outputs.json").read_text())
    saved["out.txt"]["md5"] = "0" * 32
    (repo / "f1" / "manifest.outputs.json").write_text(json.dumps(saved))
    bad = qa("-C", str(repo), "check-bit-accuracy-manifest", "--batch", "folders")
    assert bad.exit_code == 1 and "out.txt differs" in bad.stdout
