"""Tests of qaflow.config.passes: which names each interpolation pass knows, and Deferred."""

from __future__ import annotations

import pytest

from qaflow.config.passes import Deferred, at_expansion, at_linking, at_run_start, later_names
from qaflow.errors import InterpolationError, QaflowError


class Upstream:
    """An upstream run whose metrics do not exist yet (as while planning)."""

    output_dir = "/out/up"

    @property
    def metrics(self) -> dict[str, float]:
        raise Deferred("known once it has run")


def linking(configs: list[object], **names: object) -> list[object]:
    upstream = names.pop("upstream", {})
    defaults: dict[str, object] = {
        "input_path": "/db/a.in",
        "rel_input_path": "a.in",
        "output_dir": "/out/a",
        "matrix": None,
        "previous": None,
        "commands": False,
    }
    return at_linking(configs, upstream=upstream, **{**defaults, **names})


def test_deferred_is_a_signal_not_an_error():
    assert not issubclass(Deferred, QaflowError)
    assert not issubclass(Deferred, InterpolationError)


def test_expansion_evaluates_the_matrix_and_leaves_later_names_and_the_shell_s():
    later = later_names(["calib"])
    assert {"needs", "depends", "input_path", "output_dir", "previous", "calib"} <= later
    configs = ["${matrix.x}", "${calib.output_dir}/${HOME}", {"p": "${input_path}"}]
    result = at_expansion(configs, matrix={"x": 2}, later=later, commands=False)
    assert result == [2, "${calib.output_dir}/${HOME}", {"p": "${input_path}"}]
    assert at_expansion(["run {matrix.x}"], matrix={"x": "a b"}, later=later, commands=True) == [
        "run 'a b'"
    ]


def test_expansion_without_a_matrix_fails_on_matrix_names():
    with pytest.raises(InterpolationError, match="matrix"):
        at_expansion(["${matrix.x}"], matrix=None, later=later_names([]), commands=False)


def test_linking_knows_the_run_and_its_upstream_runs():
    up = Upstream()
    upstream = {"needs": {"calib": [up]}, "depends": {"calib": [up]}, "calib": up}
    configs = ["${calib.output_dir}", "${input_path}", "${needs.calib[0].output_dir}"]
    assert linking(configs, upstream=upstream) == ["/out/up", "/db/a.in", "/out/up"]
    assert linking(["${matrix.x}"], matrix={"x": 1}) == [1]
    with pytest.raises(InterpolationError, match="previous"):
        linking(["${previous.output_dir}"])


def test_linking_lets_deferred_through_when_metrics_are_read():
    upstream = {"needs": {"calib": [Upstream()]}, "calib": Upstream()}
    with pytest.raises(Deferred):
        linking(["${calib.metrics.psnr}"], upstream=upstream)
    with pytest.raises(Deferred):
        linking(["x={calib.metrics['psnr']}"], upstream=upstream, commands=True)


def test_run_start_knows_the_run_alone():
    names = {
        "output_dir": "/out/a b",
        "params": {"t": 3},
        "configs": ["base"],
        "matrix": {},
        "input_path": "/db/a.in",
        "rel_input_path": None,
    }
    assert at_run_start("run {input_path} ${output_dir} ${params.t}", **names) == (
        "run /db/a.in '/out/a b' 3"
    )
    with pytest.raises(InterpolationError, match="needs"):
        at_run_start("echo ${needs.x}", **names)
    # a name that is neither given nor a root is the shell's: left as written
    assert at_run_start("echo ${rel_input_path}", **names) == "echo ${rel_input_path}"
