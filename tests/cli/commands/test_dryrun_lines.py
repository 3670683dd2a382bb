"""`qa --dryrun batch`'s run lines: a run's folder relative to the project, as pathlib says."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from qaflow.cli.commands.batch import _configs_text, _describe_run
from qaflow.plan.memo import ByObject
from qaflow.plan.model import RunSpec

names = st.sampled_from(["a", "b", "ab", "a.b", "é", "x y", "..a"])
folders = st.lists(names, max_size=4).map(lambda parts: Path("/", *parts))


def _run(output_dir: Path, configurations: tuple[object, ...]) -> RunSpec:
    return RunSpec(
        batch="b",
        batch_file=None,
        input_path=None,
        rel_input_path=None,
        database=Path("/db"),
        type="default",
        configurations=configurations,
        params={},
        platform="linux",
        matrix={},
        output_dir=output_dir,
        key="k",
    )


@settings(max_examples=300, deadline=None)
@given(folders, folders, st.booleans())
@example(Path("/a"), Path("/ab/c"), False)  # a prefix of the string, not of the path
@example(Path("/"), Path("/"), False)
def test_a_folder_is_shown_relative_to_the_project_when_under_it(
    root: Path, out: Path, under: bool
) -> None:
    out = root / out.relative_to("/") if under else out
    shown = out.relative_to(root) if out.is_relative_to(root) else out
    base = str(root).rstrip("/") + "/"
    line = _describe_run(_run(out, ("c",)), base, "run", ByObject(_configs_text))
    assert line.endswith(f"  -> {shown}")


def test_configurations_are_written_once_per_object_and_shown_alike() -> None:
    configs = ("c", {"x": 1}, [2, "y"])
    written: list[tuple[object, ...]] = []
    shown = ByObject(lambda given: written.append(given) or _configs_text(given))
    first = _describe_run(_run(Path("/p/o/1"), configs), "/p/", "cached", shown)
    second = _describe_run(_run(Path("/p/o/2"), configs), "/p/", "run", shown)
    assert '[c, {"x": 1}, [2, "y"]]' in first and '[c, {"x": 1}, [2, "y"]]' in second
    assert first.startswith("cached  b  -  [") and first.endswith("-> o/1")
    assert written == [configs]
