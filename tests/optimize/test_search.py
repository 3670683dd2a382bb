"""The search file: QA-Board's form and qaflow's read into one `Search`; mistakes named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qaflow.errors import ConfigError, QaflowWarning
from qaflow.optimize.objective import TrialFailed, check_metrics, direction, objective
from qaflow.optimize.search import Dimension, Target, load_search, with_overrides
from qaflow.results.metrics import Metrics, MetricSpec

QABOARD_FORM = """
objective:
  loss: {weight: 2}
  score: {loss: relu-shift, margin: 0.5, reduce: l2}
  target: true
evaluations: 40
preset_params: {mode: fast}
parallel_sampling: 3
solver: {random_state: 5, n_initial_points: 4, acq_func: EI}
search_space:
- Real: {name: sigma, low: 0.001, high: 10, prior: log-uniform}
- Integer: {name: size, low: 1, high: 9}
- Categorical: {name: kernel, categories: [box, gauss]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_qaboard_form(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="acq_func"):
        search = load_search(write(tmp_path, QABOARD_FORM))
    assert search.dimensions == (
        Dimension(name="sigma", kind="real", low=0.001, high=10, log=True),
        Dimension(name="size", kind="integer", low=1, high=9),
        Dimension(name="kernel", kind="categorical", choices=("box", "gauss")),
    )
    assert [(t.metric, t.loss, t.weight, t.margin, t.reduce) for t in search.terms] == [
        ("loss", "identity", 2.0, 0.0, "sum"),
        ("score", "relu-shift", 1.0, 0.5, "l2"),
    ]
    assert (search.evaluations, search.parallel, search.seed, search.n_startup_trials) == (
        40,
        3,
        5,
        4,
    )
    assert search.preset_params == {"mode": "fast"} and search.sampler == "tpe"
    assert search.use_targets and not search.raw_objective


def test_qaflow_form(tmp_path: Path) -> None:
    search = load_search(
        write(
            tmp_path,
            """
            space:
              threshold: {low: 0, high: 1.0}
              count: {low: 1, high: 5}
              mode: [a, b]
            objective: {psnr: maximize}
            evaluations: 10
            sampler: random
            seed: 3
            """,
        )
    )
    assert search.dimensions == (
        Dimension(name="threshold", kind="real", low=0, high=1.0),
        Dimension(name="count", kind="integer", low=1, high=5),
        Dimension(name="mode", kind="categorical", choices=("a", "b")),
    )
    assert search.raw_objective and search.terms[0].direction == "maximize"
    assert (search.sampler, search.seed) == ("random", 3)
    assert with_overrides(search, parallel=4, seed=None).parallel == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("space: {}\nobjective: {loss: minimize}\nevaluations: 3", "search space is empty"),
        ("objective: {loss: minimize}\nevaluations: 3", "search space is empty"),
        (
            "space: {x: {low: 2, high: 1}}\nobjective: {loss: minimize}\nevaluations: 3",
            "`low` (2) is greater than `high` (1)",
        ),
        (
            "search_space:\n- Real: {name: x, low: 5.0, high: 1.0}\nobjective: {loss: null}\nevaluations: 3",
            "greater than",
        ),
        ("space: {x: [a, a]}\nobjective: {loss: minimize}\nevaluations: 3", "repeated choices"),
        ("space: {x: []}\nobjective: {loss: minimize}\nevaluations: 3", "non-empty list"),
        ("space: {x: {low: 0, high: 1}}\nevaluations: 3", "give an `objective`"),
        (
            "space: {x: {low: 0, high: 1}}\nobjective: {loss: upward}\nevaluations: 3",
            "use minimize or maximize",
        ),
        (
            "space: {x: {low: 0, high: 1}}\nobjective: {loss: minimize}",
            "`evaluations` must be a positive integer",
        ),
        (
            "space: {x: {low: 0, high: 1}}\nobjective: {loss: minimize}\nevaluations: 0",
            "positive integer",
        ),
        (
            "space: {x: {low: 0.0, high: 1}}\nobjective: {loss: minimize}\nevaluations: 3\nsampler: grid",
            "needs a `step`",
        ),
        (
            "space: {x: {low: 0, high: 1, log: true}}\nobjective: {loss: minimize}\nevaluations: 3",
            "log scale needs `low` > 0",
        ),
        (
            "search_space:\n- Complex: {name: x}\nobjective: {loss: null}\nevaluations: 3",
            "unknown dimension 'Complex'",
        ),
        ("- a\n- b", "expected a mapping"),
        (
            "space: {x: [1]}\nobjective: {loss: {loss: shift}, target: {branch: a, tag: b}}\nevaluations: 3",
            "exactly one of `id`",
        ),
        (
            "space: {x: [1]}\nobjective: {loss: {loss: shift}, target: {brnch: a}}\nevaluations: 3",
            "unknown key(s) brnch",
        ),
        (
            "space: {x: [1]}\nobjective: {loss: {loss: shift}, target: {branch: [a]}}\nevaluations: 3",
            "`branch` must be a name",
        ),
        (
            "space: {x: [1]}\nobjective: {loss: minimize, target: {branch: main}}\nevaluations: 3",
            "no metric of the objective is compared with it",
        ),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_search(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


@settings(max_examples=50, deadline=None)
@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    high=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_a_range_is_read_when_ordered_and_refused_otherwise(low: float, high: float) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = {"space": {"x": {"low": low, "high": high}}, "objective": {"m": "minimize"}}
        path = write(Path(folder), yaml.safe_dump({**data, "evaluations": 2}))
        if low > high:
            with pytest.raises(ConfigError, match="greater than"):
                load_search(path)
        else:
            (dimension,) = load_search(path).dimensions
            assert (dimension.low, dimension.high) == (low, high)


def metrics_of(**directions: bool) -> Metrics:
    return Metrics(
        available={
            k: MetricSpec(key=k, label=k, short_label=k, smaller_is_better=v, target=1.0)
            for k, v in directions.items()
        }
    )


def test_objective_as_qaboard_computes_it(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        search = load_search(write(tmp_path, QABOARD_FORM))
    metrics = metrics_of(loss=True, score=False)
    check_metrics(search, metrics)
    runs = [{"loss": 1.0, "score": 2.0}, {"loss": 3.0, "score": 0.0}]
    # loss: mean 2 * weight 2 = 4; score: relu((x - 1) * -1 + 0.5) = [0, 1.5] -> l2 norm / 2 = 0.75
    assert objective(search, metrics, runs) == pytest.approx(4.75)
    assert direction(search, metrics) == "minimize"
    with pytest.raises(TrialFailed, match="no number for the metric 'score'"):
        objective(search, metrics, [{"loss": 1.0}])


def test_unknown_metric_has_a_did_you_mean(tmp_path: Path) -> None:
    search = load_search(
        write(tmp_path, "space: {x: [1, 2]}\nobjective: {los: minimize}\nevaluations: 2")
    )
    with pytest.raises(ConfigError, match="Did you mean 'loss'"):
        check_metrics(search, metrics_of(loss=True))


def test_the_readme_search_file_is_read(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("# search.yaml — qaflow's form\n", 1)[1].split("```", 1)[0]
    search = load_search(write(tmp_path, block))
    assert search.names == ["threshold", "size", "mode"]
    assert (search.evaluations, search.parallel, search.seed, search.sampler) == (50, 2, 1, "tpe")
    assert search.raw_objective and search.terms[0].direction == "maximize"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("{branch: main}", Target("branch", "main")),
        ("{tag: v1, batch: nightly}", Target("tag", "v1", "nightly")),
        ("{id: 0123abcd, label: ref}", Target("id", "0123abcd", "ref")),
        ("my-label", Target("ref", "my-label")),
        ("true", None),
        ("{}", None),
    ],
)
def test_a_target_names_a_reference_execution(
    tmp_path: Path, target: str, expected: Target | None
) -> None:
    text = f"space: {{x: [1]}}\nobjective: {{loss: {{loss: relu-shift}}, target: {target}}}\nevaluations: 2"
    search = load_search(write(tmp_path, text))
    assert search.reference == expected
    assert search.use_targets == (target == "true")


@pytest.mark.parametrize("target", ["{batch: nightly}", "{label: nightly}"])
def test_a_target_naming_no_execution_means_the_targets_of_metrics_yaml(
    tmp_path: Path, target: str
) -> None:
    # as QA-Board's batch_objective: without `id` or `branch`, metrics.yaml's targets
    text = (
        f"space: {{x: [1]}}\nobjective: {{loss: {{loss: shift}}, target: {target}}}\nevaluations: 2"
    )
    with pytest.warns(QaflowWarning, match="names no execution"):
        search = load_search(write(tmp_path, text))
    assert search.reference is None and search.use_targets


def test_the_objective_compares_with_the_reference_runs_values(tmp_path: Path) -> None:
    text = "space: {x: [1]}\nobjective: {loss: {loss: shift}, score: {weight: 0.5}, target: {branch: m}}\nevaluations: 2"
    search = load_search(write(tmp_path, text))
    metrics = metrics_of(loss=True, score=False)  # metrics.yaml's targets (1.0) are not used
    check_metrics(search, metrics)
    runs = [{"loss": 1.0, "score": 2.0}, {"loss": 3.0, "score": 4.0}]
    targets = [{"loss": 0.5}, {"loss": 4.0}]
    # loss: mean(1 - 0.5, 3 - 4) = -0.25; score (identity, larger is better): -mean(2, 4) * 0.5
    assert objective(search, metrics, runs, targets) == pytest.approx(-0.25 - 1.5)
    with pytest.raises(TrialFailed, match="its reference run has no number for the metric 'loss'"):
        objective(search, metrics, runs, [{"loss": 1.0}, {}])
