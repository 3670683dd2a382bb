"""Malformed projects and commands, tried through real `qa` processes.

Every case is a user error: `qa` must exit 2 with one paragraph (`error: …`) that names
the file, the batch or the field at fault, print no traceback, create or change nothing in
the project (its tree is compared before and after, bytes included), and end in bounded
time (the subprocess timeout catches a hang; nothing here measures speed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

SRC = Path(__file__).resolve().parents[2] / "src"
POSTGRES_ENV = "QA_TEST_POSTGRES_URL"  # the real server; a wrong password on it is tried
HANG = 60  # seconds: far beyond any of these cases; only a hang or a bomb reaches it

QABOARD = "# a project of malformed files\n"
BATCHES = "b:\n  inputs: [a.txt]\n  configs: [base]\nother:\n  inputs: [a.txt]\n"
MAIN = "def run(context):\n    return {'x': 1}\n"


@dataclass(frozen=True)
class Case:
    """A project (files over the valid base project; None deletes one) and a command."""

    files: dict[str, str | bytes | None] = field(default_factory=dict)
    args: tuple[str, ...] = ("batch", "b")
    says: tuple[str, ...] = ()  # regexes the error must match (file, batch, field, limit…)
    env: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # symlinks: name -> target
    fifos: tuple[str, ...] = ()


def batch(text: str, **kwargs: object) -> Case:
    return Case(files={"qa/batches.yaml": text}, **kwargs)  # type: ignore[arg-type]


def qaboard(text: str, **kwargs: object) -> Case:
    return Case(files={"qaboard.yaml": QABOARD + text}, **kwargs)  # type: ignore[arg-type]


def expression(template: str, *says: str) -> Case:
    text = f"b:\n  inputs: [a.txt]\n  configs:\n  - {json.dumps(template)}\n"
    return batch(text, says=(r"batches.yaml:4", r"batch 'b'", *says))


def laughs(levels: int) -> str:
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"b:\n  inputs: [a.txt]\n  configs: *l{levels}\n"])


MATRIX_1E10 = "b:\n  inputs: [a.txt]\n  matrix:\n" + "".join(
    f"    m{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(10)
)

CASES: dict[str, Case] = {
    # --- YAML and encoding
    "qaboard-binary": Case(
        files={"qaboard.yaml": b"\xff\xfe\x00\x01binary"}, says=(r"qaboard.yaml:1", "not UTF-8")
    ),
    "qaboard-latin1": Case(
        files={"qaboard.yaml": "project: {name: caf\xe9}\n".encode("latin-1")},
        says=(r"qaboard.yaml:1", "not UTF-8"),
    ),
    "qaboard-nul": Case(
        files={"qaboard.yaml": b"project: {name: x}\nstorage: \x00\n"},
        says=(r"qaboard.yaml:2", "NUL"),
    ),
    "qaboard-syntax": qaboard(
        "inputs:\n  globs: [a\nstorage: x\n", says=(r"qaboard.yaml:\d+: malformed YAML",)
    ),
    "qaboard-a-list": Case(files={"qaboard.yaml": "- a\n- b\n"}, says=(r"qaboard.yaml", "mapping")),
    "batches-latin1": Case(
        files={"qa/batches.yaml": "b:\n  inputs: [\xe9.txt]\n".encode("latin-1")},
        says=(r"batches.yaml:2", "not UTF-8"),
    ),
    "batches-binary": Case(files={"qa/batches.yaml": bytes(range(256))}, says=(r"batches.yaml",)),
    "batches-syntax": batch("b:\n  inputs: [a.txt\n", says=(r"batches.yaml:\d+: malformed YAML",)),
    "batches-a-list": batch("- b\n", says=(r"batches.yaml", "mapping of batch names")),
    "billion-laughs": batch(
        laughs(9), says=(r"batches.yaml", "aliases expand to more than 10,000,000 values")
    ),
    "alias-in-itself": batch("x: &a [1, *a]\n" + BATCHES, says=(r"batches.yaml", "contains it")),
    "tab-indented": batch("b:\n\tinputs: [a.txt]\n", says=(r"batches.yaml:\d+",)),
    # --- wrong types, at every level
    "project-a-number": qaboard("project: 3\n", says=(r"qaboard.yaml:2", "`project`")),
    "inputs-a-list": qaboard("inputs: [a]\n", says=(r"qaboard.yaml:2", "`inputs`")),
    "globs-a-number": qaboard("inputs: {globs: 3}\n", says=(r"qaboard.yaml:2", "`inputs.globs`")),
    "storage-a-list": qaboard("storage: [1]\n", says=(r"qaboard.yaml:2", "`storage`")),
    "concurrency-abc": qaboard(
        "runners:\n  local: {concurrency: abc}\n",
        says=(r"qaboard.yaml:3", "runners.local.concurrency"),
    ),
    "concurrency-zero": qaboard(
        "runners:\n  local: {concurrency: 0}\n",
        says=(r"qaboard.yaml:3", "runners.local.concurrency"),
    ),
    "max-runs-zero": qaboard("max_runs: 0\n", says=(r"qaboard.yaml:2", "`max_runs`")),
    "types-default-nosuch": qaboard(
        "inputs:\n  types: {default: imag, image: {globs: '*.txt'}}\n",
        says=(r"qaboard.yaml:3", "inputs.types.default", "'imag'", "Did you mean 'image'"),
    ),
    "batch-a-string": batch("b: just a string\n", says=(r"batches.yaml:1", "batch 'b'")),
    "batch-inputs-a-number": batch(
        "b:\n  inputs: 3\n", says=(r"batches.yaml:2", "batch 'b'", "`inputs`")
    ),
    "batch-matrix-a-list": batch(
        "b:\n  inputs: [a.txt]\n  matrix: [1, 2]\n", says=(r"batches.yaml:3", "`matrix`")
    ),
    "batch-matrix-empty": batch(
        "b:\n  inputs: [a.txt]\n  matrix: {x: []}\n", says=(r"batches.yaml:3", "matrix.x")
    ),
    "batch-timeout-abc": batch(
        "b:\n  inputs: [a.txt]\n  timeout: abc\n", says=(r"batches.yaml:3", "`timeout`")
    ),
    "batch-retries-negative": batch(
        "b:\n  inputs: [a.txt]\n  retries: -1\n", says=(r"batches.yaml:3", "`retries`")
    ),
    "batch-needs-a-number": batch(
        "b:\n  inputs: [a.txt]\n  needs: 3\n", says=(r"batches.yaml:3", "`needs`")
    ),
    "batch-type-nosuch": batch(
        "b:\n  inputs: [a.txt]\n  type: nosuch\n",
        says=(r"batches.yaml:3", "batch 'b'", "type: nosuch"),
    ),
    "input-type-nosuch": batch(
        "b:\n  inputs:\n  - a.txt: {type: nosuch}\n",
        says=(r"batches.yaml:3", "batch 'b'", "nosuch"),
    ),
    "resources-cpus-x": batch(
        "b:\n  inputs: [a.txt]\n  resources: {cpus: x}\n",
        says=(r"batches.yaml:3", "resources.cpus"),
    ),
    "local-concurrency-abc": batch(
        "b:\n  inputs: [a.txt]\n  local: {concurrency: abc}\n",
        says=(r"batches.yaml:3", "local.concurrency"),
    ),
    "local-concurrency-zero": batch(
        "b:\n  inputs: [a.txt]\n  local: {concurrency: 0}\n",
        says=(r"batches.yaml:3", "local.concurrency"),
    ),
    "local-a-number": batch(
        "b:\n  inputs: [a.txt]\n  local: 3\n", says=(r"batches.yaml:3", "`local`")
    ),
    "config-a-float": batch(
        "b:\n  inputs: [a.txt]\n  configs: [base, 1.5]\n",
        says=(r"batches.yaml:3", "batch 'b'", "1.5"),
    ),
    "input-config-a-number": batch(
        "b:\n  inputs:\n  - a.txt: [base, 7]\n", says=(r"batches.yaml:3", "batch 'b'", "7")
    ),
    "script-list-of-lists": batch(
        "b:\n  type: script\n  configs:\n  - [[echo, hi]]\n",
        says=(r"batches.yaml:4", "batch 'b'", "script"),
    ),
    "pipeline-bad-step": batch(
        "b:\n  type: pipeline\n  configs:\n  - {walk: x}\n",
        says=(r"batches.yaml:4", "pipeline 'b'"),
    ),
    # --- wrong types in file-level defaults (batch files' top level, qaboard.yaml's inputs)
    "file-configs-a-float": batch(
        "configs: [base, 1.5]\n" + BATCHES,
        says=(r"batches.yaml:1", "file-level `configs`", "batch 'b'", "1.5"),
    ),
    "file-configs-a-number": batch(
        "configs: 3\n" + BATCHES, says=(r"batches.yaml:1", "file-level `configs`", "valid list")
    ),
    "file-configurations-a-bool-overridden": batch(
        "configurations: [[x, true]]\n" + BATCHES,
        says=(r"batches.yaml:1", "file-level `configurations`", "True"),
    ),
    "file-database-a-number": batch(
        "database: 3\n" + BATCHES, says=(r"batches.yaml:1", "file-level `database`")
    ),
    "file-database-a-list": batch(
        "database: [a, b]\n" + BATCHES, says=(r"batches.yaml:1", "file-level `database`")
    ),
    "file-platform-a-list": batch(
        "platform: [linux]\n" + BATCHES, says=(r"batches.yaml:1", "file-level `platform`")
    ),
    "file-script-list-of-lists": batch(
        "configs:\n- [[echo, hi]]\nb:\n  type: script\n",
        says=(r"batches.yaml:2", "file-level `configs`", "batch 'b'", "script"),
    ),
    "qaboard-configs-a-float": qaboard(
        "inputs:\n  configs: [base, 1.5]\n",
        says=(r"qaboard.yaml:3", "`inputs.configs`", "item #2", "1.5"),
    ),
    "qaboard-configurations-a-bool": qaboard(
        "inputs:\n  configurations: [[base, false]]\n",
        says=(r"qaboard.yaml:3", "`inputs.configurations`", "False"),
    ),
    "action-on-existing-nosuch": qaboard(
        "outputs: {action_on_existing: nosuch}\n",
        says=(r"qaboard.yaml:2", "outputs.action_on_existing", "'skip'"),
    ),
    "action-on-pending-nosuch": qaboard(
        "outputs: {action_on_pending: nosuch}\n",
        says=(r"qaboard.yaml:2", "outputs.action_on_pending", "'wait'"),
    ),
    # --- unknown and misspelt keys
    "top-input-for-inputs": qaboard(
        "input:\n  database: .\n", says=(r"qaboard.yaml:2", "`input`", "did you mean `inputs`")
    ),
    "storage-capitalised": qaboard(
        "Storage: out\n", says=(r"qaboard.yaml:2", "did you mean `storage`")
    ),
    "inputs-batch-for-batches": qaboard(
        "inputs:\n  batch: qa/b.yaml\n", says=(r"qaboard.yaml:3", "did you mean `inputs.batches`")
    ),
    "runners-locale": qaboard(
        "runners:\n  locale: {concurrency: 2}\n",
        says=(r"qaboard.yaml:3", "did you mean `runners.local`"),
    ),
    "batch-input-for-inputs": batch(
        "b:\n  input: [a.txt]\n", says=(r"batches.yaml:2", "batch 'b'", "did you mean `inputs`")
    ),
    "batch-confgs": batch(
        "b:\n  inputs: [a.txt]\n  confgs: [base]\n",
        says=(r"batches.yaml:3", "did you mean `configs`"),
    ),
    "batch-need": batch(
        "b:\n  inputs: [a.txt]\n  need: other\nother: {inputs: [a.txt]}\n",
        says=(r"batches.yaml:3", "did you mean `needs`"),
    ),
    "unknown-batch": Case(args=("batch", "bb"), says=("Unknown batch 'bb'", "Did you mean 'b'")),
    "unknown-need": batch(
        "b:\n  inputs: [a.txt]\n  needs: othr\nother: {inputs: [a.txt]}\n", says=("othr", "other")
    ),
    # --- cycles
    "needs-cycle": batch(
        "b:\n  inputs: [a.txt]\n  needs: c\nc:\n  inputs: [a.txt]\n  needs: b\n",
        says=(r"b -> c -> b|c -> b -> c",),
    ),
    "needs-itself": batch("b:\n  inputs: [a.txt]\n  needs: b\n", says=(r"b -> b",)),
    "alias-cycle": batch(
        BATCHES + "aliases:\n  g: [h]\n  h: [g]\n", args=("batch", "g"), says=(r"g -> h -> g",)
    ),
    "pipeline-in-itself": batch("b:\n  type: pipeline\n  configs:\n  - batch: b\n", says=("b",)),
    # --- the expression sandbox: escapes and bombs
    "import": expression("${{ __import__('os').system('touch pwned') }}", "__import__"),
    "dunder": expression("${{ ().__class__.__bases__ }}", "__class__"),
    "open": expression("${{ open('pwned', 'w') }}", "open"),
    "lambda": expression("${{ (lambda: 1)() }}", "lambda"),
    "method-call": expression("${{ 'a'.join('b') }}", "join"),
    "walrus": expression("${{ (x := 1) }}", "':=' assignment"),
    "power-bomb": expression("${{ 9**9**9 }}", "exponent"),
    "repeat-bomb": expression("${{ 'a' * 10**10 }}", "1000000 items"),
    "str-bomb": expression(
        "${{ str([list('a'*999999)]*999999) }}",
        r"str\(\) would go through more than 1,000,000 values",
    ),
    "max-bomb": expression(
        "${{ max([list('a'*999999)]*999999) }}",
        r"max\(\) would go through more than 1,000,000 values",
    ),
    "compare-bomb": expression(
        "${{ [list('a'*999999)]*99 == [list('a'*999999)]*99 }}", "more than 1,000,000 values"
    ),
    "comprehension-bomb": expression(
        "${{ [1 for a in 'x'*999999 for b in 'x'*999999] }}", "100000 steps"
    ),
    "empty-expression": expression("${{ }}", "empty"),
    "a-function-as-value": expression("${{ sorted }}", "'sorted' is a function"),
    "float-overflow": expression("${{ 1e308 * 10 }}", "inf"),
    "nan": expression("${{ float('nan') }}", "nan"),
    "nested-deep": expression(
        "${{ " + "[" * 150 + "]" * 150 + " }}", "nested too deeply|invalid syntax"
    ),
    "too-long": expression("${{ " + "1+" * 1500 + "1 }}", "longer than 2000"),
    # --- unbounded work
    "matrix-1e10": batch(
        MATRIX_1E10,
        says=(r"batches.yaml:4", "batch 'b'", "10,000,000,000 points", "1,000,000 runs"),
    ),
    "max-runs-env": batch(
        "b:\n  inputs: [a.txt]\n  matrix: {x: [1, 2, 3]}\n",
        env={"QA_MAX_RUNS": "2"},
        says=("batch 'b'", "more than the 2 runs"),
    ),
    "max-runs-inputs": Case(
        files={
            "qaboard.yaml": QABOARD + "max_runs: 2\n",
            "qa/batches.yaml": "b:\n  inputs: [a.txt, b.txt, c.txt]\n",
            "b.txt": "b",
            "c.txt": "c",
        },
        says=("batch 'b'", "more than 2 runs"),
    ),
    # --- filesystem oddities
    "dangling-symlink-input": batch(
        "b:\n  inputs: [dangling.txt]\n",
        links={"dangling.txt": "nowhere.txt"},
        says=(r"batches.yaml", "batch 'b'", "dangling.txt", "does not exist"),
    ),
    "fifo-input": batch(
        "b:\n  inputs: [pipe.txt]\n",
        fifos=("pipe.txt",),
        says=(r"batches.yaml", "batch 'b'", "pipe.txt"),
    ),
    # `storage:` is where shared runs go (--share, or CI), as in QA-Board
    "storage-is-a-file": qaboard(
        "storage: a.txt\n",
        args=("--share", "batch", "b"),
        says=(r"storage", "a.txt", "not a folder"),
    ),
    "storage-under-a-file": qaboard(
        "storage: a.txt/out\n",
        args=("--share", "batch", "b"),
        says=(r"storage", "a.txt", "not a folder"),
    ),
    "storage-unwritable": qaboard(
        "storage: /proc/qaflow-adversarial\n",
        args=("--share", "batch", "b"),
        says=(r"storage", "/proc/qaflow-adversarial"),
    ),
    "entrypoint-missing": Case(
        files={"qa/main.py": None}, says=("entrypoint", "main.py", "does not exist")
    ),
    "entrypoint-syntax-error": Case(
        files={"qa/main.py": "def run(context:\n    pass\n"},
        says=(r"main.py:1", "not valid Python"),
    ),
    "entrypoint-without-run": Case(
        files={"qa/main.py": "def walk(context):\n    return {}\n"},
        says=("main.py", "defines no `run`"),
    ),
    "entrypoint-shell-script": Case(
        files={"qa/main.py": "#!/bin/sh\necho hello\n"}, says=(r"main.py:2", "not valid Python")
    ),
    "entrypoint-binary": Case(
        files={"qa/main.py": b"\x7fELF\x00\x01\x02"}, says=("main.py", "binary")
    ),
    "entrypoint-missing-for-qa-run": Case(
        files={"qa/main.py": None},
        args=("run", "-i", "a.txt"),
        says=("entrypoint", "does not exist"),
    ),
    "batches-file-is-a-folder": Case(
        files={"qa/batches.yaml": None, "qa/batches.yaml/x": "b: {}\n"}, says=("Unknown batch 'b'",)
    ),
    "input-missing": Case(args=("run", "-i", "nope.txt"), says=("nope.txt", "does not exist")),
    # --- option and environment values
    "option-local-concurrency-0": Case(
        args=("batch", "b", "--local-concurrency", "0"), says=("--local-concurrency 0",)
    ),
    "option-local-concurrency-minus-5": Case(
        args=("batch", "b", "--local-concurrency", "-5"), says=("--local-concurrency -5",)
    ),
    "option-local-concurrency-abc": Case(
        args=("batch", "b", "--local-concurrency", "abc"), says=("--local-concurrency",)
    ),
    "type-nosuch": Case(args=("--type", "nosuch", "batch", "b"), says=("--type 'nosuch'",)),
    "runner-nosuch": Case(args=("batch", "b", "--runner", "nosuch"), says=("nosuch",)),
    "tuning-not-json": Case(args=("--tuning", "{x", "batch", "b"), says=("--tuning",)),
    "tuning-a-number": Case(args=("--tuning", "1", "batch", "b"), says=("--tuning",)),
    "config-not-json": Case(args=("--config", "{x", "batch", "b"), says=("--config",)),
    "project-dir-missing": Case(args=("-C", "nowhere", "batch", "b"), says=("nowhere",)),
    "action-nosuch": Case(
        args=("batch", "b", "--action-on-existing", "nosuch"), says=("--action-on-existing",)
    ),
    "batch-timeout-env": Case(env={"QA_BATCH_TIMEOUT": "abc"}, says=("QA_BATCH_TIMEOUT='abc'",)),
    "batch-concurrency-env": Case(
        env={"QA_BATCH_CONCURRENCY": "0"}, says=("QA_BATCH_CONCURRENCY='0'",)
    ),
    "max-runs-env-abc": Case(env={"QA_MAX_RUNS": "abc"}, says=("QA_MAX_RUNS='abc'",)),
    "database-url-unsupported": qaboard(
        "database_url: mysql://u@h/db\n", says=("mysql", "database_url")
    ),
    "database-url-invalid": qaboard("database_url: 'not a url'\n", says=("database_url",)),
    "no-wait-entrypoint-missing": Case(
        files={"qa/main.py": None}, args=("batch", "b", "--no-wait"), says=("entrypoint",)
    ),
    # --- unknown ids (a project that never ran: nothing may be created by asking)
    "status-unknown": Case(args=("status", "abcdef123456"), says=("no execution 'abcdef123456'",)),
    "wait-unknown": Case(args=("wait", "abcdef123456"), says=("no execution 'abcdef123456'",)),
    "cancel-unknown": Case(args=("cancel", "abcdef123456"), says=("no execution 'abcdef123456'",)),
    "logs-unknown": Case(args=("logs", "abcdef123456"), says=("abcdef123456",)),
    "compare-unknown": Case(args=("compare", "abcdef", "123456"), says=("no execution 'abcdef'",)),
    "history-unknown": Case(args=("history", "b", "--metric", "x"), says=("batch 'b'",)),
}


def _make(root: Path, case: Case) -> None:
    files: dict[str, str | bytes | None] = {
        "qaboard.yaml": QABOARD,
        "qa/batches.yaml": BATCHES,
        "qa/main.py": MAIN,
        "a.txt": "a",
        **case.files,
    }
    for name, content in files.items():
        path = root / name
        if content is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name, target in case.links.items():
        (root / name).symlink_to(target)
    for name in case.fifos:
        os.mkfifo(root / name)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root: its kind and, for a file, a hash of its bytes."""
    seen: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                seen[rel] = f"link:{path.readlink()}"
            elif path.is_dir():
                seen[rel] = "dir"
            elif path.is_file():
                seen[rel] = hashlib.blake2b(path.read_bytes()).hexdigest()
            else:
                seen[rel] = "special"
    return seen


def qa(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("QA_")},
        "PYTHONPATH": str(SRC),
        "NO_COLOR": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "qaflow", *args],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_user_error_exits_2_with_a_message_and_writes_nothing(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    root = tmp_path / "project"
    root.mkdir()
    _make(root, case)
    before = snapshot(root)
    result = qa(root, *case.args, env=case.env)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    message = result.stderr
    assert message.strip(), "no message"
    for pattern in case.says:
        assert _search(pattern, message), f"{pattern!r} not in: {message}"
    assert snapshot(root) == before, "the project changed"
    assert not (root / "output").exists()


def _search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def test_each_error_is_one_paragraph_after_its_warnings(tmp_path: Path) -> None:
    """Unknown keys far from any known one stay warnings: they come first, then the error."""
    root = tmp_path / "project"
    root.mkdir()
    _make(root, qaboard("colour: blue\n"))
    (root / "qa/batches.yaml").write_text("b:\n  inputs: [a.txt]\n  flavour: x\n  type: nosuch\n")
    result = qa(root, "batch", "b")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["warning", "warning", "error"], lines
    assert "`colour` is ignored" in lines[0] and "`flavour` is ignored" in lines[1]


def test_an_unknown_key_far_from_known_ones_warns_and_runs(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    _make(root, Case(files={"qaboard.yaml": QABOARD + "colour_scheme: {}\n"}))
    result = qa(root, "batch", "b")
    assert result.returncode == 0, result.stderr
    assert "unknown key `colour_scheme` is ignored" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nobody listens there


@pytest.mark.parametrize(
    "args", [("batch", "b"), ("status",), ("history", "b", "--metric", "x"), ("gc",)]
)
def test_a_closed_database_port_is_a_usage_error_that_writes_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    url = f"postgresql://u:s3cret@127.0.0.1:{_free_port()}/x?connect_timeout=20"
    _make(root, qaboard(f"database_url: '{url}'\n"))
    before = snapshot(root)
    result = qa(root, *args)
    _assert_unreachable(result, "Is the database server running and reachable")
    assert snapshot(root) == before


def _wrong(part: str) -> str:
    url = make_url(os.environ.get(POSTGRES_ENV) or pytest.skip(f"{POSTGRES_ENV} is not set"))
    if part == "password":
        url = url.set(password="not-the-password")
    elif part == "user":
        url = url.set(username="qaflow_nobody")
    else:
        url = url.set(database="qaflow_no_such_database")
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("part", "hint"),
    [
        ("password", "refused the user name or password"),
        ("user", "refused the user name or password"),
        ("database", "no such database"),
    ],
)
def test_wrong_credentials_on_the_real_server_are_a_usage_error_that_writes_nothing(
    tmp_path: Path, part: str, hint: str
) -> None:
    """QA_DATABASE_URL overrides qaboard.yaml's `database_url`: the message names both."""
    root = tmp_path / "project"
    root.mkdir()
    _make(root, Case())
    before = snapshot(root)
    result = qa(root, "batch", "b", env={"QA_DATABASE_URL": _wrong(part)})
    _assert_unreachable(result, hint)
    assert "not-the-password" not in result.stderr
    assert snapshot(root) == before


def _assert_unreachable(result: subprocess.CompletedProcess[str], hint: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "s3cret" not in message and "***" in message
    for said in (hint, "`database_url` in qaboard.yaml", "QA_DATABASE_URL"):
        assert said in message, message


@pytest.mark.parametrize(
    "args",
    [
        ("batch", "b", "--list"),
        ("--dryrun", "batch", "b"),
        ("batch", "b", "--list-inputs"),
        ("dag", "b"),
        ("why", "b"),
        ("status",),
    ],
)
def test_reading_a_fresh_project_creates_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    root = tmp_path / "project"
    root.mkdir()
    _make(root, Case())
    before = snapshot(root)
    result = qa(root, *args)
    assert result.returncode == 0, result.stderr
    assert snapshot(root) == before


def test_minus_one_means_one_run_per_cpu(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    _make(root, Case())
    result = qa(root, "batch", "b", "--local-concurrency", "-1")
    assert result.returncode == 0, result.stderr
