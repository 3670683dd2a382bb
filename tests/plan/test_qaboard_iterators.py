"""QA-Board 1.1.1's planning expectations (its tests/test_iterators.py), against qaflow's planner.

The project mirrors QA-Board's test setup: the database is a folder holding a.txt, b.txt and
dir/c.txt, the inputs' glob is '*.txt'. Each case names the batch and the result QA-Board
expects from it: how many runs, with which configurations, in which order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.config.project import Project
from qaflow.errors import BatchSpecError
from qaflow.plan.model import PlanOptions
from qaflow.plan.planner import plan

BATCHES = """
my-batch:
  inputs: [a.txt, b.txt]
you-can-override-the-default-database:
  database: {linux: ROOT, windows: ROOT}
  inputs: [cli_tests]
you-can-override-globs:
  globs: a.txt
  inputs: [a.txt, b.txt]
using-a-custom-configuration:
  configurations: [base]
  inputs: [a.txt]
multiple-configurations:
  configurations: [base, low-light]
  inputs: [a.txt]
configurations-can-be-complex-objects:
  configurations:
  - base
  - low-light
  - cde: ["-w 9920", "-h 2448", "-it BAYER10"]
  inputs: [a.txt]
each-input-can-have-its-own-configuration:
  configurations: [base]
  inputs:
  - a.txt:
  - b.txt: [low-light, {cde: ["-DD"]}]
each-input-can-have-its-own-configuration-and-appear-twice:
  configurations: [base]
  inputs:
  - a.txt: {crop: A}
  - a.txt: {crop: B}
  - [a.txt, {crop: C}]
expand-lists-to-work-well-with-aliases:
  configurations: [base, [delta1, delta2]]
  inputs:
  - a.txt:
aliases:
  my-alias: [my-batch, using-a-custom-configuration]
you-can-override-runner-config:
  local:
    param: value
  inputs:
   - a.txt
matrix-configurations:
  inputs: [a.txt]
  matrix:
    configurations: [[base], [base, delta]]
matrix-configurations-and-per-input:
  inputs: {a.txt: calibration}
  matrix:
    configurations: [[base]]
matrix-configurations-and-per-input-with-base:
  configs: [basebase]
  inputs: [a.txt]
  matrix:
    configurations: [[base], [base, delta]]
matrix-many:
  inputs: [a.txt]
  matrix:
    platform: [linux, windows]
    parameter: [1, 2]
    configurations: [[base], [base, delta]]
matrix-interpolation:
  inputs: [a.txt]
  matrix:
    x: [1, 2]
    configurations: [["base-${matrix.x}"], ["base-${matrix.x}", delta]]
matrix-keep-type:
  inputs: [a.txt]
  matrix:
    param: [1, 2]
  configurations: [base, {param: "${matrix.param}"}]
matrix-interpolate:
  inputs: [a.txt]
  matrix:
    version: [1, 2]
  configurations: [base, "config-v${matrix.version}", {version: "v${matrix.version}"}]
matrix-interpolate-2:
  inputs: [a.txt]
  matrix:
    version: [{major: 1}, {major: 2}]
    param: [3, 4]
  configurations: [base, "param-v${matrix.param}", {version: "v${matrix.version[major]}"}]
"""


@pytest.fixture
def iterators(tmp_path: Path) -> Project:
    """QA-Board's test layout: the project root holds cli_tests/, the database."""
    root = tmp_path / "sample_project"
    for name in ("a.txt", "b.txt", "dir/c.txt"):
        path = root / "cli_tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (root / "qa").mkdir()
    (root / "qa" / "batches.yaml").write_text(BATCHES.replace("ROOT", str(root)))
    (root / "qaboard.yaml").write_text("inputs:\n  globs: '*.txt'\n  database: cli_tests\n")
    return Project.load(root)


def configs(project: Project, name: str) -> list[list]:
    return [list(run.configurations) for run in plan(project, [name], PlanOptions()).runs]


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("my-batch", [[], []]),
        ("using-a-custom-configuration", [["base"]]),
        ("multiple-configurations", [["base", "low-light"]]),
        (
            "configurations-can-be-complex-objects",
            [["base", "low-light", {"cde": ["-w 9920", "-h 2448", "-it BAYER10"]}]],
        ),
        (
            "each-input-can-have-its-own-configuration",
            [["base"], ["base", "low-light", {"cde": ["-DD"]}]],
        ),
        (
            "each-input-can-have-its-own-configuration-and-appear-twice",
            [["base", {"crop": "A"}], ["base", {"crop": "B"}], ["base", {"crop": "C"}]],
        ),
        ("expand-lists-to-work-well-with-aliases", [["base", "delta1", "delta2"]]),
        ("matrix-configurations", [["base"], ["base", "delta"]]),
        ("matrix-configurations-and-per-input", [["base", "calibration"]]),
        (
            "matrix-configurations-and-per-input-with-base",
            [["basebase", "base"], ["basebase", "base", "delta"]],
        ),
        ("matrix-keep-type", [["base", {"param": 1}], ["base", {"param": 2}]]),
        (
            "matrix-interpolate",
            [["base", "config-v1", {"version": "v1"}], ["base", "config-v2", {"version": "v2"}]],
        ),
    ],
)
def test_configurations_as_qaboard_plans_them(iterators, batch, expected):
    assert configs(iterators, batch) == expected


@pytest.mark.parametrize(
    ("batch", "count"),
    [
        ("my-batch", 2),
        ("you-can-override-the-default-database", 3),
        ("you-can-override-globs", 1),
        ("my-alias", 3),
        ("my-*", 2),  # wildcards match batch names (not aliases)
        ("../cli_tests/dir", 1),  # a path of the database is a batch
        ("matrix-many", 8),  # `parameter` is used by no configuration: still distinct runs
        ("matrix-interpolate-2", 4),
    ],
)
def test_run_counts_as_qaboard_plans_them(iterators, batch, count):
    assert len(plan(iterators, [batch], PlanOptions()).runs) == count


def test_matrix_interpolation_makes_every_combination(iterators):
    found = configs(iterators, "matrix-interpolation")
    assert sorted(found) == sorted(
        [["base-1"], ["base-2"], ["base-1", "delta"], ["base-2", "delta"]]
    )


def test_matrix_many_iterates_in_yaml_order(iterators):
    runs = plan(iterators, ["matrix-many"], PlanOptions()).runs
    # QA-Board 1.1.1: the matrix keys vary in the order of the YAML, the last one fastest
    assert [(r.platform, r.matrix["parameter"], len(r.configurations)) for r in runs] == [
        ("linux", 1, 1), ("linux", 1, 2), ("linux", 2, 1), ("linux", 2, 2),
        ("windows", 1, 1), ("windows", 1, 2), ("windows", 2, 1), ("windows", 2, 2),
    ]  # fmt: skip
    assert len({r.key for r in runs}) == 8 and len({r.output_dir for r in runs}) == 8


def test_a_batchs_runner_section_becomes_the_runs_job_options(iterators):
    # QA-Board: `batches[0].job_options['param'] == 'value'`; qaflow keeps the batch's section
    # per runner and gives the runner's to the run's context (`context.job_options`)
    from qaflow.execution.driver import _task
    from qaflow.execution.model import Options
    from qaflow.worker.context import RunContext

    the_plan = plan(iterators, ["you-can-override-runner-config"], PlanOptions())
    [run] = the_plan.runs
    assert the_plan.settings[run.batch].job_options == {"local": {"param": "value"}}
    task = _task(iterators, the_plan, run, Options(runner="local"), None)
    job_options = RunContext.from_task(task).job_options
    assert job_options["param"] == "value" and job_options["type"] == "local"
    other = RunContext.from_task(_task(iterators, the_plan, run, Options(runner="dask"), None))
    assert "param" not in other.job_options and other.job_options["type"] == "dask"


def test_an_unknown_batch_is_an_error_not_zero_runs(iterators):
    # a deliberate difference: QA-Board warns and plans nothing
    with pytest.raises(BatchSpecError, match="Unknown batch 'nope'"):
        plan(iterators, ["nope"], PlanOptions())


def test_matrix_as_a_list_of_grids(project):
    # QA-Board: a list of grids explores only the combinations that make sense
    root = project(
        batches="""
        b:
          inputs: [a.txt]
          matrix:
          - {mode: [fast], level: [1, 2]}
          - {mode: [slow], level: [3]}
          configs: [{mode: "${matrix.mode}", level: "${matrix.level}"}]
        """,
        files=["a.txt"],
    )
    runs = plan(Project.load(root), ["b"], PlanOptions()).runs
    assert [r.params for r in runs] == [
        {"mode": "fast", "level": 1},
        {"mode": "fast", "level": 2},
        {"mode": "slow", "level": 3},
    ]


def test_an_undefined_input_type_is_an_error(project, qa):
    root = project(
        qaboard="inputs:\n  types: {image: {globs: '*.jpg'}}\n",
        batches="b:\n  type: movie\n  inputs: [a.jpg]\n",
        files=["a.jpg"],
    )
    result = qa("-C", str(root), "batch", "b", "--list")
    assert result.exit_code == 2 and "`type: movie`" in result.stderr
    assert "define 'movie' under inputs.types" in result.stderr
    assert "Use one of default, image" in result.stderr and "Traceback" not in result.stderr
    declared = qa("-C", str(root), "--type", "image", "batch", "b", "--list")
    assert declared.exit_code == 2  # the batch's own type wins over --type
    assert not (root / "output").exists()


# ---------------------------------------------------------------- test_flatten
def test_flatten_as_qaboard():
    from qaflow.config.project import flatten

    assert flatten([]) == []
    assert flatten([1]) == [1]
    assert flatten([1, [2]]) == [1, 2]
    assert flatten([1, [2], [3, 4, [5], [6, [7]]]]) == [1, 2, 3, 4, 5, 6, 7]
    assert flatten([1, {"cde": [2, 3]}]) == [1, {"cde": [2, 3]}]  # a mapping is a leaf


# ---------------------------------------------------------------- test_resolve_aliases
@pytest.mark.parametrize(
    ("aliases", "asked", "expected"),
    [
        ({"c": ["d", "e"], "f": ["g", "h"]}, ["a", "b"], ["a", "b"]),
        ({"ci": ["a", "b"], "b": ["e", "f"]}, ["ci", "xxxxx"], ["a", "e", "f", "xxxxx"]),
        (
            {"chain": ["remosaic", "hdr3", "hdr-2"], "branch-specific": ["small-group"]},
            ["branch-specific"],
            ["small-group"],
        ),
        ({"chain": ["self-referential"]}, ["self-referential"], ["self-referential"]),
    ],
)
def test_resolve_aliases_as_qaboard(project, aliases, asked, expected):
    # QA-Board resolves names it does not know to themselves; qaflow refuses an unknown batch
    # (a deliberate difference), so the names that resolve are batches here
    import yaml

    from qaflow.config.batches import Catalog

    batches = {name: {"inputs": ["a.txt"]} for name in expected}
    root = project(batches=yaml.safe_dump({**batches, "aliases": aliases}), files=["a.txt"])
    assert Catalog.load(Project.load(root)).resolve(asked) == expected


# ---------------------------------------------------------------- test_interpolation
@pytest.mark.parametrize(
    ("template", "name", "value", "expected"),
    [
        ("hello ${alice}", "alice", "bob", "hello bob"),
        ("hello ${alice}", "bob", "charly", "hello ${alice}"),  # not ours: left as written
        ("hello {alice}", "alice", "bob", "hello {alice}"),
        ("tuple ${tuple}", "tuple", (0, 1), "tuple (0, 1)"),
        ("tuple ${tuple[0]}", "tuple", (0, 1), "tuple 0"),
        ("string ${string[0]}", "string", "abcdef", "string a"),
        ("object ${object[test]}", "object", {"test": "abcdef"}, "object abcdef"),
        ("object ${object[a]} ${object[c]}", "object", {"a": "b", "c": "d"}, "object b d"),
        ("object ${matrix[test]}", "matrix", {"test": "abcdef"}, "object abcdef"),
        ("object ${matrix.test}", "matrix", {"test": "abcdef"}, "object abcdef"),
    ],
)
def test_interpolation_as_qaboards_deep_interpolate(template, name, value, expected):
    # QA-Board's deep_interpolate(template, name, value): qaflow's configurations are
    # interpolated by `interpolate` (in batches, the name is `matrix`)
    from qaflow.config.expressions import interpolate

    assert interpolate(template, {name: value}) == expected


def test_matrix_values_are_written_as_qaboard_writes_them(project):
    root = project(
        batches="""
        b:
          inputs: [a.txt]
          matrix:
            seq: [[0, 1]]
            string: [abcdef]
            object: [{test: abcdef}]
            f: [1.0]
          configs:
          - "seq ${matrix.seq} ${matrix.seq[0]}"
          - "string ${matrix.string[0]}"
          - "object ${matrix.object[test]} ${matrix[object][test]}"
          - "v${matrix.f}"
          - {param: "${matrix.f}"}
        """,
        files=["a.txt"],
    )
    [run] = plan(Project.load(root), ["b"], PlanOptions()).runs
    assert list(run.configurations) == [
        "seq [0, 1] 0",  # YAML has lists, not tuples
        "string a",
        "object abcdef abcdef",
        "v1.0",
        {"param": 1.0},  # a whole template keeps the value's type
    ]


# ---------------------------------------------------------------- runner settings
RUNNERS = """
inputs:
  globs: '*.txt'
  database: cli_tests
  types:
    test-vector:
      globs: '*.txt'
      runners:
        default: local
        lsf: {queue: input_type_queue, priority: 5}
"""
VECTOR_BATCHES = """
test-vector-batch:
  type: test-vector
  inputs: [a.txt]
test-vector-batch-lsf:
  type: test-vector
  runner: lsf
  inputs: [a.txt]
plain-batch:
  inputs: [a.txt]
"""


def job_options_of(project: Project, batch: str, **options):
    from qaflow.execution.driver import _task
    from qaflow.execution.model import Options
    from qaflow.worker.context import RunContext

    the_plan = plan(project, [batch], PlanOptions())
    [run] = the_plan.runs
    return RunContext.from_task(_task(project, the_plan, run, Options(**options), None)).job_options


@pytest.fixture
def vectors(project) -> Project:
    root = project(qaboard=RUNNERS, batches=VECTOR_BATCHES, files=["cli_tests/a.txt"])
    ignored = r"qaboard.yaml:9: `inputs.types.test-vector.runners.default` is ignored"
    with pytest.warns(UserWarning, match=ignored):
        return Project.load(root)


def test_input_type_runner_settings(vectors):
    # QA-Board: the type's `runners.lsf` is not applied on the local runner...
    local = job_options_of(vectors, "test-vector-batch", runner="local")
    assert local["type"] == "local" and "queue" not in local
    # ...and it is on the lsf runner (QA-Board's batch `runner: lsf`: qaflow runs an
    # execution on one runner, `--runner lsf`)
    lsf = job_options_of(vectors, "test-vector-batch", runner="lsf")
    assert lsf["type"] == "lsf" and lsf["queue"] == "input_type_queue"
    with pytest.warns(UserWarning, match="batch 'test-vector-batch-lsf': `runner` is ignored"):
        as_written = job_options_of(vectors, "test-vector-batch-lsf", runner="local")
    assert as_written["type"] == "local" and "queue" not in as_written
    assert "queue" not in job_options_of(vectors, "plain-batch", runner="lsf")  # other type


def test_cli_runner_overrides_precedence(vectors):
    # `qa batch --runner lsf --lsf-queue cli_queue --lsf-max-memory 8000`: the command line
    # wins over the input type's settings, which give what it does not set
    given = {"queue": "cli_queue", "max_memory": 8000}
    options = job_options_of(vectors, "test-vector-batch", runner="lsf", lsf=given)
    assert options["type"] == "lsf" and options["queue"] == "cli_queue"
    assert options["priority"] == 5 and options["max_memory"] == 8000


def test_a_batchs_runner_section_wins_over_its_input_types(project):
    root = project(
        qaboard="inputs: {runners: {local: {param: type, other: type}}}\n",
        batches="b: {inputs: [a.txt], local: {param: batch}}\n",
        files=["a.txt"],
    )
    options = job_options_of(Project.load(root), "b", runner="local")
    assert options["param"] == "batch" and options["other"] == "type"


def test_an_input_types_runner_options_must_be_a_mapping(project, qa):
    root = project(
        qaboard="inputs:\n  types:\n    raw:\n      runners: {lsf: long}\n",
        batches="b: {type: raw, inputs: [a.txt]}\n",
        files=["a.txt"],
    )
    result = qa("-C", str(root), "batch", "b", "--list")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "qaboard.yaml:4: invalid value for `inputs.types.raw.runners.lsf`" in result.stderr
    assert "expected a mapping of job options for the lsf runner" in result.stderr
    assert not (root / "output").exists()
