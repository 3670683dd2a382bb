"""DAGs end to end: needs, script and pipeline batches, interpolation, order, failures."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import qaflow
from qaflow.config.project import Project
from qaflow.execution.report import RecordingReporter
from qaflow.plan.listing import to_json
from qaflow.plan.planner import plan
from qaflow.store import Store
from qaflow.worker.model import RunStatus

MAIN = """
import json, os, time
from pathlib import Path

def run(context):
    name = context.input_path.name if context.input_path else "-"
    marks = Path(context.database)
    if (marks / "slow.txt").exists():  # test_per_input_needs_stream's project
        if context.configs:  # an evaluation (it needs a run): it says it started
            (marks / f"evaluating-{name}").touch()
        elif "slow" in name:  # slow until a.txt's evaluation starts, a minute at most
            deadline = time.monotonic() + 60
            while not (marks / "evaluating-a.txt").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
    if "fail" in name:
        raise RuntimeError("failing on purpose")
    (context.output_dir / "out.txt").write_text(name)
    env = {k: os.environ.get(k) for k in ("PIPELINE_OUTPUT_DIR", "QA_PREVIOUS_BATCH")}
    return {"name": name, "configs": [str(c) for c in context.configs], "env": env, "score": len(name)}
"""


def execute(root: Path, *names: str) -> qaflow.Execution:
    return qaflow.batch(list(names), project=root, reporter=RecordingReporter())


def by_batch(execution: qaflow.Execution) -> dict[str, list[qaflow.Run]]:
    out: dict[str, list[qaflow.Run]] = {}
    for run in execution.runs():
        out.setdefault(run.spec.batch, []).append(run)
    return out


def assert_order(execution: qaflow.Execution) -> None:
    """A run never starts before every run it needs has finished."""
    results = execution.results
    for run in execution.runs():
        for upstream in execution.plan.needs(run.spec.key):
            assert results[upstream].ended_at <= run.result.started_at, (
                run.spec.batch,
                run.spec.rel_input_path,
            )


def test_the_seed_issue_example_verbatim(project):
    root = project(
        batches="""
        batch1:
          inputs:
          - A.jpg
          - B.jpg
          configurations:
          - base

        batch2:
          needs: batch1
          type: script
          configurations:
          - python my_script.py {o.output_dir for o in needs["batch1"]}
        """,
        files=["A.jpg", "B.jpg"],
        extra={"qa/main.py": MAIN, "my_script.py": "import sys\nprint('ARGS', sys.argv[1:])\n"},
    )
    the_plan = plan(Project.load(root), ["batch2"])
    assert [r.batch for r in the_plan.runs] == ["batch1", "batch1", "batch2"]
    a, b, script = the_plan.runs
    assert script.command == f"set -e\npython my_script.py {a.output_dir} {b.output_dir}"
    assert the_plan.needs(script.key) == {a.key, b.key}
    execution = execute(root, "batch2")
    assert execution.exit_code == 0
    # its fingerprint covers what batch1 produced: final, with its directory, once batch1 ran
    [ran] = [run for run in execution.runs() if run.spec.key == script.key]
    log = (ran.output_dir / "log.txt").read_text()
    assert f"ARGS ['{a.output_dir}', '{b.output_dir}']" in log
    assert_order(execution)


def test_the_calibration_example_of_the_spec_verbatim(project):
    root = project(
        batches="""
        my-calibration-images:
          configurations: [base]
          inputs: [DL50.raw, DL55.raw, DL65.raw, DL75.raw]

        my-calibration:
          needs: {calibration_images: my-calibration-images}
          type: script
          configurations:
          - python calibration.py ${o.output_directory for o in depends[calibration_images]}

        my-evaluation-batch:
          needs: {calibration: my-calibration}
          inputs: [test_image_1.raw, test_image_2.raw, test_image_3.raw]
          configurations:
          - base
          - ${depends[calibration].output_directory}/calibration.cde
        """,
        files=[
            "DL50.raw",
            "DL55.raw",
            "DL65.raw",
            "DL75.raw",
            "test_image_1.raw",
            "test_image_2.raw",
            "test_image_3.raw",
        ],
        extra={
            "qa/main.py": MAIN,
            "calibration.py": "import os, sys\nfrom pathlib import Path\nPath(os.environ['QA_OUTPUT_DIR'], 'calibration.cde').write_text(str(len(sys.argv) - 1))\n",
        },
    )
    execution = execute(root, "my-evaluation-batch")
    assert execution.exit_code == 0
    runs = by_batch(execution)
    assert [
        len(runs[b]) for b in ("my-calibration-images", "my-calibration", "my-evaluation-batch")
    ] == [4, 1, 3]
    [calibration] = runs["my-calibration"]
    dirs = " ".join(str(r.output_dir) for r in runs["my-calibration-images"])
    assert calibration.spec.configurations == (f"python calibration.py {dirs}",)
    assert (calibration.output_dir / "calibration.cde").read_text() == "4"
    for run in runs["my-evaluation-batch"]:
        assert run.metrics["configs"] == ["base", f"{calibration.output_dir}/calibration.cde"]
    assert_order(execution)


def test_the_pipeline_example_of_the_spec_verbatim(project):
    root = project(
        batches="""
        first-batch: {inputs: [a.txt]}
        second-batch: {inputs: [a.txt, b.txt]}
        third-batch: {inputs: [b.txt]}
        my-pipeline:
          type: pipeline
          configs:
          - run: echo "Step 1"
          - batch: first-batch
          - batch: [second-batch, third-batch, {label: batches running in parallel}]
          - run: ./some-postprocessing-script.py
        """,
        files=["a.txt", "b.txt"],
        extra={
            "qa/main.py": MAIN,
            "some-postprocessing-script.py": "#!/usr/bin/env python3\nimport json, os\nfrom pathlib import Path\nruns = json.loads(Path(os.environ['QA_PREVIOUS_BATCH']).read_text())\nPath(os.environ['PIPELINE_OUTPUT_DIR'], 'summary.json').write_text(json.dumps(sorted(r['batch'] + ':' + r['status'] for r in runs)))\n",
        },
    )
    script = root / "some-postprocessing-script.py"
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    execution = execute(root, "my-pipeline")
    assert execution.exit_code == 0, [r.error for r in execution.runs()]
    runs = by_batch(execution)
    step1, step4 = runs["my-pipeline"]
    folder = step1.output_dir.parent.parent  # PIPELINE_OUTPUT_DIR/step-1/<fingerprint>
    assert "Step 1" in (step1.output_dir / "log.txt").read_text()
    assert json.loads((folder / "summary.json").read_text()) == [
        "second-batch:succeeded",
        "second-batch:succeeded",
        "third-batch:succeeded",
    ]
    for name in ("first-batch", "second-batch", "third-batch"):
        for run in runs[name]:
            assert run.metrics["env"]["PIPELINE_OUTPUT_DIR"] == str(folder)
    first_listing = json.loads(
        Path(runs["first-batch"][0].metrics["env"]["QA_PREVIOUS_BATCH"]).read_text()
    )
    assert [r["id"] for r in first_listing] == [step1.spec.key]
    assert first_listing[0]["status"] == "succeeded"
    # steps run in order: every second/third-batch run starts after first-batch is done
    first_end = max(r.result.ended_at for r in runs["first-batch"])
    assert all(r.result.started_at >= first_end for r in runs["second-batch"] + runs["third-batch"])
    assert step4.result.started_at >= max(
        r.result.ended_at for r in runs["second-batch"] + runs["third-batch"]
    )
    assert_order(execution)


def test_needs_forms_and_a_batch_needed_twice_runs_once(project):
    root = project(
        batches="""
        base: {inputs: [a.txt]}
        left: {needs: base, inputs: [a.txt]}
        right: {needs: [base], inputs: [b.txt]}
        top:
          needs: {l: left, r: right}
          type: script
          configurations: ["echo ${l.output_dir} ${r.output_dir} ${needs['base'].output_dir if False else 0}"]
        """,
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": MAIN},
    )
    the_plan = plan(Project.load(root), ["top", "left"])
    assert [r.batch for r in the_plan.runs] == ["base", "left", "right", "top"]
    execution = execute(root, "top")
    assert execution.exit_code == 0
    assert len(execution.runs()) == 4
    assert_order(execution)


def test_a_failure_skips_what_is_downstream_and_spares_independent_branches(project, store_url):
    root = project(
        qaboard=f"database_url: {store_url}\n",
        batches="""
        upstream: {inputs: [fail.txt, ok.txt]}
        downstream: {needs: upstream, inputs: [ok.txt]}
        further: {needs: downstream, type: script, configurations: [echo hi]}
        independent: {inputs: [ok.txt]}
        aliases: {all: [further, independent]}
        """,
        files=["fail.txt", "ok.txt"],
        extra={"qa/main.py": MAIN},
    )
    execution = execute(root, "all")
    assert execution.exit_code == 1
    status = {(r.spec.batch, r.spec.rel_input_path): r.status for r in execution.runs()}
    assert status == {
        ("upstream", "fail.txt"): RunStatus.FAILED,
        ("upstream", "ok.txt"): RunStatus.SUCCEEDED,
        ("downstream", "ok.txt"): RunStatus.SKIPPED,
        ("further", None): RunStatus.SKIPPED,
        ("independent", "ok.txt"): RunStatus.SUCCEEDED,
    }
    skipped = next(r for r in execution.runs() if r.spec.batch == "downstream")
    assert skipped.error == "skipped (upstream failed): upstream fail.txt"
    with Store.open(store_url, storage=root / "output") as store:
        rows = {
            (r.batch, r.rel_input_path): (r.status, r.error)
            for r in store.lookups.runs(execution.id)
        }
    assert rows[("downstream", "ok.txt")] == (
        RunStatus.SKIPPED,
        "skipped (upstream failed): upstream fail.txt",
    )
    assert rows[("further", None)][0] is RunStatus.SKIPPED


def test_per_input_needs_stream(project):
    root = project(
        batches="""
        algo: {inputs: [a.txt, b.txt, slow.txt]}
        evaluate:
          needs: {raw: {batch: algo, per: input}}
          inputs: [a.txt, b.txt, slow.txt]
          configurations: ["${raw.output_dir}", "${len(needs[raw])}"]
        """,
        files=["a.txt", "b.txt", "slow.txt"],
        extra={"qa/main.py": MAIN},
    )
    the_plan = plan(Project.load(root), ["evaluate"])
    algo = {r.rel_input_path: r for r in the_plan.runs if r.batch == "algo"}
    for run in (r for r in the_plan.runs if r.batch == "evaluate"):
        assert the_plan.needs(run.key) == {algo[run.rel_input_path].key}
        assert run.configurations == (algo[run.rel_input_path].output_dir, 1)
    execution = qaflow.batch("evaluate", project=root, concurrency=2, reporter=RecordingReporter())
    assert execution.exit_code == 0
    runs = {(r.spec.batch, r.spec.rel_input_path): r.result for r in execution.runs()}
    # image a is evaluated while the slow image is still being processed (the slow run waits
    # for that, a minute at most: without streaming, it ends first)
    assert runs[("evaluate", "a.txt")].started_at < runs[("algo", "slow.txt")].ended_at
    assert_order(execution)


def test_upstream_metrics_are_resolved_when_the_run_starts(project):
    root = project(
        batches="""
        first: {inputs: [abc.txt]}
        second:
          needs: first
          inputs: [abc.txt]
          configurations: ["${needs['first'].metrics['score'] * 10}", "${first.output_dir}"]
        """,
        files=["abc.txt"],
        extra={"qa/main.py": MAIN},
    )
    the_plan = plan(Project.load(root), ["second"])
    second = the_plan.runs[-1]
    assert second.deferred and second.configurations == (
        "${needs['first'].metrics['score'] * 10}",
        "${first.output_dir}",
    )
    assert json.loads(to_json(the_plan))[-1]["deferred"] is True
    execution = execute(root, "second")
    assert execution.exit_code == 0
    run = execution.runs()[-1]
    assert run.metrics["configs"] == ["70", str(the_plan.runs[0].output_dir)]


def test_list_and_dryrun_show_the_whole_dag(project, qa):
    root = project(
        batches="up: {inputs: [a.txt]}\ndown:\n  needs: {u: up}\n  inputs: [a.txt]\n  configs: ['${u.output_dir}/x']\n",
        files=["a.txt"],
        extra={"qa/main.py": MAIN},
    )
    runs = qa("-C", str(root), "batch", "down", "--list").json()
    assert [r["batch"] for r in runs] == ["up", "down"]
    assert runs[1]["configurations"] == [runs[0]["output_dir"] + "/x"]
    assert runs[1]["needs"] == [runs[0]["id"]]
    lines = qa("-C", str(root), "--dryrun", "batch", "down").stdout.splitlines()
    assert lines[1].startswith(f"run     down  a.txt  [{runs[0]['output_dir']}/x]")
    assert not (root / "output" / "runs").exists()  # nothing ran (the input hash cache may be kept)


def test_errors_before_anything_runs(project, qa):
    cases = {
        "unknown": (
            "a: {inputs: [x], needs: bacth}\nbatch: {inputs: [x]}\n",
            "a",
            ["batches.yaml:1", "batch 'a'", "'bacth'", "Did you mean 'batch'"],
        ),
        "cycle": (
            "a: {inputs: [x], needs: b}\nb: {inputs: [x], needs: c}\nc: {inputs: [x], needs: a}\n",
            "a",
            ["cycle: a -> b -> c -> a"],
        ),
        "expression": (
            "a: {inputs: [x]}\nb:\n  needs: a\n  inputs: [x]\n  configs: ['${needs[a].nope}']\n",
            "b",
            ["batches.yaml:5", "batch 'b'", "`configs`", "${needs[a].nope}", "nope"],
        ),
        "syntax": (
            "a: {inputs: [x]}\nb:\n  needs: a\n  inputs: [x]\n  configs: ['${needs[a]..x}']\n",
            "b",
            ["batch 'b'", "${needs[a]..x}"],
        ),
        "per input": (
            "a: {inputs: [x]}\nb:\n  needs: {r: {batch: a, per: input}}\n  inputs: [y]\n",
            "b",
            ["per: input", "'a' has no run on the input 'y'"],
        ),
        "bad per": (
            "a: {inputs: [x]}\nb:\n  needs: {r: {batch: a, per: batch}}\n  inputs: [y]\n",
            "b",
            ["`needs.r`", "per: input"],
        ),
        "bad step": (
            "p:\n  type: pipeline\n  configs: [{jump: x}]\n",
            "p",
            ["pipeline 'p'", "step 1 must be `run: COMMAND` or `batch: NAME`"],
        ),
        "unknown step": (
            "p:\n  type: pipeline\n  configs: [{batch: nope}]\n",
            "p",
            ["Unknown batch 'nope'"],
        ),
    }
    for name, (batches, target, expected) in cases.items():
        root = project(batches=batches, files=["x", "y"], extra={"qa/main.py": MAIN})
        result = qa("-C", str(root), "batch", target)
        assert result.exit_code == 2, (name, result.stdout, result.stderr)
        for text in expected:
            assert text in result.stderr, (name, text, result.stderr)
        assert "Traceback" not in result.stderr
        assert not (root / "output").exists(), name


def test_qa_dag_formats(project, qa):
    root = project(
        batches="""
        images: {inputs: [a.txt, b.txt]}
        calib: {needs: {imgs: images}, type: script, configurations: [echo]}
        evaluate: {needs: {c: calib, i: {batch: images, per: input}}, inputs: [a.txt, b.txt]}
        """,
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": MAIN},
    )
    text = qa("-C", str(root), "dag", "evaluate").stdout.splitlines()
    assert text[0].split() == ["images", "2", "runs"]
    assert text[1].split() == ["calib", "1", "run", "after", "images", "(imgs)"]
    assert (
        text[2].split()[:3] == ["evaluate", "2", "runs"]
        and "calib (c)" in text[2]
        and "images (i per input)" in text[2]
    )
    assert text[3] == "3 batches, 5 runs, 6 edges between runs"
    dot = qa("-C", str(root), "dag", "evaluate", "--format", "dot").stdout
    assert '"images" -> "calib" [label="imgs"];' in dot and dot.startswith("digraph")
    mermaid = qa("-C", str(root), "dag", "evaluate", "--format", "mermaid").stdout.splitlines()
    assert (
        mermaid[0] == "flowchart LR"
        and '  b0["images<br/>2 runs"]' in mermaid
        and "  b1 -- c --> b2" in mermaid
    )


def test_qa_dag_of_a_pipeline_draws_its_steps_in_order(project, qa):
    root = project(
        batches="""
        first-batch: {inputs: [a.txt]}
        second-batch: {inputs: [a.txt]}
        third-batch: {inputs: [b.txt]}
        my-pipeline:
          type: pipeline
          configs:
          - run: echo "Step 1"
          - batch: first-batch
          - batch: [second-batch, third-batch]
          - run: echo done
        """,
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": MAIN},
    )
    lines = [line.split() for line in qa("-C", str(root), "dag", "my-pipeline").stdout.splitlines()]
    assert lines[0] == ["my-pipeline", "step", "1", "1", "run"]
    assert lines[1] == ["first-batch", "1", "run", "after", "my-pipeline", "step", "1"]
    assert lines[2][:3] == ["second-batch", "1", "run"] and lines[2][-1] == "first-batch"
    assert lines[3][:3] == ["third-batch", "1", "run"] and lines[3][-1] == "first-batch"
    assert lines[4] == [
        "my-pipeline",
        "step",
        "4",
        "1",
        "run",
        "after",
        "second-batch,",
        "third-batch",
    ]


def test_the_seeds_pipeline_verbatim_is_a_pipeline_without_type(project, qa):
    # the seed issue's user-land pipeline, as written there: no `type: pipeline`
    root = project(
        batches="""
        first-batch: {inputs: [a.txt]}
        second-batch: {inputs: [a.txt, b.txt]}
        third-batch: {inputs: [b.txt]}
        my-pipeline:
          configs:
          - run: echo "Step 1"
          - batch: first-batch
          - batch:
            - second-batch
            - third-batch
            - label: batches running in parallel
          - run: echo some-postprocessing-script.py
        """,
        files=["a.txt", "b.txt"],
        extra={"qa/main.py": MAIN},
    )
    listed = qa("-C", str(root), "batch", "my-pipeline", "--list").json()
    assert [r["batch"] for r in listed] == [
        "my-pipeline", "first-batch", "second-batch", "second-batch", "third-batch", "my-pipeline",
    ]  # fmt: skip
    assert listed[0]["command"] == 'echo "Step 1"'
    execution = execute(root, "my-pipeline")
    assert execution.exit_code == 0, [r.error for r in execution.runs()]
    assert len(execution.runs()) == 6
    assert_order(execution)
