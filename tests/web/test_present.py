"""How the board words values: metric columns, query strings, progress shares."""

from __future__ import annotations

from qaflow.web.present import (
    command_text,
    config_text,
    numeric_names,
    progress,
    query,
    statuses_of,
)


def test_metric_columns_are_numeric_without_bookkeeping() -> None:
    rows = [{"compute_time": 0.1, "is_failed": False, "words": 3, "note": "x"}, {"lines": 2}]
    assert numeric_names(rows) == ["words", "lines"]
    assert numeric_names(rows, limit=1) == ["words"]
    assert numeric_names([{}, None]) == []  # type: ignore[list-item]


def test_query_strings_keep_what_is_set_and_quote_it() -> None:
    params = {"batch": "a b", "status": "", "sort": "input"}
    assert query(params, page=2) == "?batch=a+b&sort=input&page=2"
    assert query(params, batch=None, sort=None) == "?"
    assert query({}, ref="<x>&") == "?ref=%3Cx%3E%26"


def test_progress_shares_and_finished_percent() -> None:
    shown = progress({"succeeded": 2, "running": 1, "pending": 1})
    assert shown["shares"] == {"done": 50.0, "running": 25.0, "waiting": 25.0}
    assert shown["percent"] == 50.0
    assert progress({})["percent"] == 0.0


def test_words_and_configurations() -> None:
    assert statuses_of("failed") == ["failed", "errored"]
    assert config_text(["base", {"k": 1}]) == 'base · {"k":1}'


def test_the_command_line_names_qa_once() -> None:
    assert command_text(["/work/venv/bin/qa", "batch", "my batch"]) == "qa batch 'my batch'"
    assert command_text(["/x/qaflow/__main__.py", "run"]) == "qa run"
    assert command_text(["script.py", "--x"]) == "script.py --x"
    assert command_text([]) == ""
