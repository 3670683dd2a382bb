"""Planning batches into runs: the QA-Board batches language, with its documented results."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.config.project import Project
from qaflow.errors import BatchSpecError, GraphError, InterpolationError
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan


def runs_of(root: Path, *names: str, **options: object) -> list[dict]:
    return [r.to_dict() for r in plan(Project.load(root), list(names), PlanOptions(**options)).runs]


def test_documented_configs_forms(project):
    root = project(
        batches="""
        using-a-custom-configuration:
          configs: [base]
          inputs: [Bayer/A.dng, Bayer/B.dng]
        multiple-configs:
          configs: [base, low-light]
          inputs: [Bayer/A.dng]
        configs-can-be-complex-objects:
          configs:
            - base
            - low-light
            - cde: ["-w 9920"]
          inputs: [Bayer/A.dng]
        """,
        files=["Bayer/A.dng", "Bayer/B.dng"],
    )
    first = runs_of(root, "using-a-custom-configuration")
    assert [r["configurations"] for r in first] == [["base"], ["base"]]
    assert [r["rel_input_path"] for r in first] == ["Bayer/A.dng", "Bayer/B.dng"]
    assert runs_of(root, "multiple-configs")[0]["configurations"] == ["base", "low-light"]
    complex_run = runs_of(root, "configs-can-be-complex-objects")[0]
    assert complex_run["configurations"] == ["base", "low-light", {"cde": ["-w 9920"]}]
    assert complex_run["params"] == {"cde": ["-w 9920"]}


def test_per_input_configurations_are_appended_in_both_forms(project):
    root = project(
        batches="""
        each-input-can-have-its-own-configuration:
          configs: [base]
          inputs:
          - Bayer/A.dng:
          - Bayer/B.dng:
              - low-light
              - cde:
                - "-DD"
        each-input-can-appear-twice:
          configurations: [base]
          inputs:
          - a.txt: {crop: A}
          - a.txt: {crop: B}
          - [a.txt, {crop: C}]
        """,
        files=["Bayer/A.dng", "Bayer/B.dng", "a.txt"],
    )
    runs = runs_of(root, "each-input-can-have-its-own-configuration")
    assert [r["configurations"] for r in runs] == [
        ["base"],
        ["base", "low-light", {"cde": ["-DD"]}],
    ]
    twice = runs_of(root, "each-input-can-appear-twice")
    assert [r["configurations"] for r in twice] == [
        ["base", {"crop": "A"}],
        ["base", {"crop": "B"}],
        ["base", {"crop": "C"}],
    ]
    assert [r["params"] for r in twice] == [{"crop": "A"}, {"crop": "B"}, {"crop": "C"}]
    assert len({r["output_dir"] for r in twice}) == 3


def test_nested_lists_are_flattened_and_anchors_work(project):
    root = project(
        batches="""
        .base: &base
          - base
          - partial
        hdr:
          configs:
            - *base
            - hdr
          inputs: [A]
        .inputs: &inputs
          inputs: [A, B]
        .HDR: &HDR
          configs: [[x, [y]], z]
        merged:
          <<: [*HDR, *inputs]
        """,
        files=["A", "B"],
    )
    assert runs_of(root, "hdr")[0]["configurations"] == ["base", "partial", "hdr"]
    merged = runs_of(root, "merged")
    assert [r["configurations"] for r in merged] == [["x", "y", "z"]] * 2
    assert [r["rel_input_path"] for r in merged] == ["A", "B"]


def test_matrix_of_threshold_and_mode_gives_eight_runs(project):
    root = project(
        batches="""
        my-batch-multiple-values:
          inputs: [image.raw]
          matrix:
            threshold: [1, 2, 3, 4]
            mode: ["a", "b"]
          configs:
            - base
            - block.threshold: ${matrix.threshold}
            - block.mode: ${matrix.mode}
        """,
        files=["image.raw"],
    )
    runs = runs_of(root, "my-batch-multiple-values")
    assert len(runs) == 8
    got = [(r["params"]["block.threshold"], r["params"]["block.mode"]) for r in runs]
    # keys in YAML order (threshold, mode), the last varying fastest, as QA-Board 1.1.1
    assert got == [(t, m) for t in (1, 2, 3, 4) for m in "ab"]
    assert all(isinstance(r["params"]["block.threshold"], int) for r in runs)
    assert runs[0]["configurations"] == ["base", {"block.threshold": 1}, {"block.mode": "a"}]
    assert runs[0]["matrix"] == {"threshold": 1, "mode": "a"}
    assert len({r["output_dir"] for r in runs}) == 8


def test_matrix_configs_platform_and_indexing(project):
    root = project(
        batches="""
        multiple-configs:
          inputs: [a.raw]
          matrix:
            configs:
              - [base, tuning]
              - [base]
        appended:
          inputs: [a.raw]
          configs: [first]
          matrix:
            configs: [second, third]
            platform: [linux, arm]
        versions:
          inputs: [a.raw]
          matrix:
            version: [1, 2]
          configs:
            - base-v${matrix.version}
        objects:
          inputs: [a.raw]
          matrix:
            point: [{x: 10, y: 40}, {x: 20, y: 50}]
            p: [[7, 8]]
          configs:
            - base
            - flags: "-x=${matrix.point[x]} -y=${matrix.point[y]}"
              first: ${matrix.p[0]}
              whole: ${matrix.point}
        """,
        files=["a.raw"],
    )
    assert [r["configurations"] for r in runs_of(root, "multiple-configs")] == [
        ["base", "tuning"],
        ["base"],
    ]
    appended = runs_of(root, "appended")
    assert [(r["configurations"], r["platform"]) for r in appended] == [
        (["first", "second"], "linux"),
        (["first", "second"], "arm"),
        (["first", "third"], "linux"),
        (["first", "third"], "arm"),
    ]
    assert len({r["output_dir"] for r in appended}) == 4
    assert [r["configurations"] for r in runs_of(root, "versions")] == [["base-v1"], ["base-v2"]]
    objects = runs_of(root, "objects")
    assert [r["params"]["flags"] for r in objects] == ["-x=10 -y=40", "-x=20 -y=50"]
    assert objects[0]["params"]["first"] == 7
    assert objects[0]["params"]["whole"] == {"x": 10, "y": 40}


def test_undefined_matrix_variable_is_an_error(project):
    root = project(
        batches="""
        bad:
          inputs: [a]
          matrix: {x: [1]}
          configs: ["${matrix.y}"]
        no-matrix:
          inputs: [a]
          configs: ["${matrix.x}"]
        """,
        files=["a"],
    )
    with pytest.raises(InterpolationError, match=r"batch 'bad'.*matrix\.y"):
        runs_of(root, "bad")
    with pytest.raises(InterpolationError, match=r"batch 'no-matrix'.*matrix"):
        runs_of(root, "no-matrix")


def test_shell_variables_are_left_alone(project):
    root = project(batches="b:\n  inputs: [a]\n  configs: ['${HOME}/x']\n", files=["a"])
    assert runs_of(root, "b")[0]["configurations"] == ["${HOME}/x"]


def test_top_level_defaults_apply_to_the_batches_of_their_file(project):
    root = project(
        qaboard="inputs:\n  batches: [qa/batches.yaml, qa/more/*.yaml]\n",
        batches="""
        database: db
        configs: [file-default]
        platform: arm
        uses-defaults:
          inputs: [A.jpg]
        overrides:
          database: other
          configs: [own]
          platform: x86
          inputs: [A.jpg]
        """,
        files=["db/A.jpg", "other/A.jpg", "third/A.jpg"],
        extra={"qa/more/x.yaml": "elsewhere:\n  inputs: [third/A.jpg]\n"},
    )
    [default] = runs_of(root, "uses-defaults")
    assert default["database"] == str(root / "db")
    assert default["input_path"] == str(root / "db" / "A.jpg")
    assert (default["configurations"], default["platform"]) == (["file-default"], "arm")
    [override] = runs_of(root, "overrides")
    assert override["database"] == str(root / "other")
    assert (override["configurations"], override["platform"]) == (["own"], "x86")
    [elsewhere] = runs_of(root, "elsewhere")
    assert elsewhere["configurations"] == [] and elsewhere["database"] == str(root)


def test_database_per_platform_and_cli_defaults(project, tmp_path):
    other = tmp_path / "mnt"
    (other / "imgs").mkdir(parents=True)
    (other / "imgs" / "x.jpg").write_text("x")
    root = project(
        qaboard="inputs:\n  configs: [project-default]\n",
        batches=f"""
        per-os:
          database: {{linux: {other}, windows: 'D:/db'}}
          inputs: [imgs/x.jpg]
        plain:
          inputs: [imgs/x.jpg]
        """,
    )
    [run] = runs_of(root, "per-os")
    assert run["input_path"] == str(other / "imgs" / "x.jpg")
    assert run["rel_input_path"] == "imgs/x.jpg"
    assert run["configurations"] == ["project-default"]
    [cli_run] = runs_of(root, "plain", database=other, configs=("base", "delta"), platform="arm")
    assert cli_run["database"] == str(other)
    assert (cli_run["configurations"], cli_run["platform"]) == (["base", "delta"], "arm")


def test_folders_globs_types_and_use_parent_folder(project):
    root = project(
        qaboard="""
        inputs:
          globs: ['*.jpg']
          types:
            default: image
            image: {globs: '*.raw'}
            movie: {globs: frame_000.jpg, use_parent_folder: true}
        """,
        batches="""
        images:
          inputs: [set]
        movies:
          type: movie
          inputs: [movies]
        patterns:
          inputs: ['set/**/*.raw']
        jpgs:
          globs: '*.jpg'
          inputs: [set]
        """,
        files=[
            "set/a.raw",
            "set/sub/b.raw",
            "set/c.jpg",
            "movies/m1/frame_000.jpg",
            "movies/m1/frame_001.jpg",
            "movies/m2/frame_000.jpg",
        ],
    )
    assert [r["rel_input_path"] for r in runs_of(root, "images")] == ["set/a.raw", "set/sub/b.raw"]
    movies = runs_of(root, "movies")
    assert [r["rel_input_path"] for r in movies] == ["movies/m1", "movies/m2"]
    assert {r["type"] for r in movies} == {"movie"}
    assert [r["rel_input_path"] for r in runs_of(root, "patterns")] == [
        "set/a.raw",
        "set/sub/b.raw",
    ]
    assert [r["rel_input_path"] for r in runs_of(root, "jpgs")] == ["set/c.jpg"]
    # `qa --type movie batch movies` uses the type from the CLI
    assert [r["rel_input_path"] for r in runs_of(root, "movies", type="image")] == [
        "movies/m1",
        "movies/m2",
    ]


def test_a_folder_of_the_database_is_a_batch(project):
    root = project(
        qaboard="inputs:\n  globs: '*.png'\n",
        batches="",
        files=["imgs/a.png", "imgs/b.png", "imgs/n.txt", "imgs/d/c.png"],
    )
    assert [r["rel_input_path"] for r in runs_of(root, "imgs")] == [
        "imgs/a.png",
        "imgs/b.png",
        "imgs/d/c.png",
    ]
    # as QA-Board: without globs, the folder itself is the one input
    no_globs = project(qaboard="", files=["data/x.bin", "data/deep/y.bin"])
    assert [r["rel_input_path"] for r in runs_of(no_globs, "data")] == ["data"]


def test_aliases_recursive_wildcards_and_several_targets(project):
    root = project(
        batches="""
        aliases:
          all: [smoke, batch-*]
          smoke: [a]
        groups:
          ignored-when-aliases-exist: [a]
        a: {inputs: [x]}
        batch-1: {inputs: [x]}
        batch-2: {inputs: [y]}
        """,
        files=["x", "y"],
    )
    the_plan = plan(Project.load(root), ["all"])
    assert the_plan.batches == ["a", "batch-1", "batch-2"]
    assert [r.batch for r in plan(Project.load(root), ["batch-2", "a", "a"]).runs] == [
        "batch-2",
        "a",
    ]


def test_alias_cycle_is_reported(project):
    root = project(batches="aliases:\n  x: [y]\n  y: [a, x]\na: {inputs: [f]}\n", files=["f"])
    with pytest.raises(GraphError, match=r"x -> y -> x"):
        plan(Project.load(root), ["x"])


def test_unknown_batch_suggests_close_names(project):
    root = project(batches="my-batch: {inputs: [f]}\n", files=["f"])
    with pytest.raises(BatchSpecError, match=r"Unknown batch 'my-bacth'.*Did you mean 'my-batch'"):
        plan(Project.load(root), ["my-bacth"])


def test_missing_input_is_an_error(project):
    root = project(batches="b:\n  inputs: [nope.jpg]\n")
    with pytest.raises(BatchSpecError, match=r"batch 'b'.*'nope.jpg' does not exist"):
        plan(Project.load(root), ["b"])


def test_duplicate_batches_in_several_files(project):
    root = project(
        qaboard="inputs:\n  batches: 'sub/*/batches.yaml'\n  allow_duplicate_batches: true\n",
        extra={
            "sub/a/batches.yaml": "ci: {inputs: [f]}\n",
            "sub/b/batches.yaml": "ci: {inputs: [f]}\n",
        },
        files=["f"],
    )
    runs = plan(Project.load(root), ["ci"]).runs
    assert len(runs) == 2
    assert runs[0].output_dir != runs[1].output_dir
    replaced = project(
        qaboard="inputs:\n  batches: ['one.yaml', 'two.yaml']\n",
        extra={"one.yaml": "ci: {inputs: [f]}\n", "two.yaml": "ci: {inputs: [g]}\n"},
        files=["f", "g"],
    )
    assert [r.rel_input_path for r in plan(Project.load(replaced), ["ci"]).runs] == ["g"]


def test_output_dirs_are_deterministic_and_distinct(project):
    root = project(
        batches="""
        one:
          inputs: [a, [a, x], [a, y]]
          matrix: {platform: [p1, p2]}
        two:
          inputs: [a]
        """,
        files=["a"],
    )
    first = plan(Project.load(root), ["one", "two"]).runs
    again = plan(Project.load(root), ["one", "two"]).runs
    assert [r.output_dir for r in first] == [r.output_dir for r in again]
    assert len({r.output_dir for r in first}) == len(first) == 7
    assert all(r.output_dir.is_relative_to(root / "output" / "runs") for r in first)


def test_tuning_parameters_are_extra_parameters_merged_into_params_last(project):
    # QA-Board: --tuning goes to extra_parameters (and params), not into configurations
    root = project(batches="b:\n  inputs: [a]\n  configs: [base, {k: 1, n: {a: 1}}]\n", files=["a"])
    [run] = runs_of(root, "b", extra_parameters={"n": {"b": 2}})
    assert run["configurations"] == ["base", {"k": 1, "n": {"a": 1}}]
    assert run["params"] == {"k": 1, "n": {"a": 1, "b": 2}}
    [plain] = runs_of(root, "b")
    assert plain["id"] != run["id"] and plain["fingerprint"] != run["fingerprint"]


def test_tuning_parameters_stay_in_params_of_batches_that_need_others(project):
    root = project(
        batches="""
        up: {inputs: [a]}
        down:
          needs: up
          inputs: [a]
          configs: ["${needs['up'].output_dir}", {k: 1}]
        """,
        files=["a"],
    )
    runs = runs_of(root, "down", extra_parameters={"t": 2})
    down = next(r for r in runs if r["batch"] == "down")
    assert down["params"] == {"k": 1, "t": 2} and len(down["configurations"]) == 2


def test_tuning_parameters_go_only_to_the_tuned_batches(project):
    root = project(
        batches="up:\n  inputs: [a]\ndown:\n  needs: up\n  inputs: [a]\n  configs: [base]\n",
        files=["a"],
    )
    tuned = {
        r["batch"]: r
        for r in runs_of(root, "down", extra_parameters={"k": 1}, tuned_batches=("down",))
    }
    assert tuned["down"]["params"] == {"k": 1} and tuned["up"]["params"] == {}
    plain = {r["batch"]: r for r in runs_of(root, "down")}
    assert tuned["up"]["id"] == plain["up"]["id"] and tuned["down"]["id"] != plain["down"]["id"]
    everywhere = {r["batch"]: r for r in runs_of(root, "down", extra_parameters={"k": 1})}
    assert everywhere["up"]["params"] == {"k": 1}  # qa --tuning: every planned batch


def test_planning_stops_past_max_runs_naming_the_limit(project):
    root = project(
        qaboard="max_runs: 3\n",
        batches="a: {inputs: [f1, f2]}\nb: {inputs: [f1, f2], needs: a}\n",
        files=["f1", "f2"],
    )
    with pytest.raises(BatchSpecError, match=r"batch 'b': the plan would have more than 3 runs"):
        plan(Project.load(root), ["b"])
    assert len(plan(Project.load(root), ["a"]).runs) == 2
