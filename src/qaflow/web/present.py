"""How the board shows values: durations, times, statuses, metrics, configurations."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import PurePath
from typing import Any
from urllib.parse import urlencode

from qaflow.results.metrics import BOOKKEEPING
from qaflow.results.present import WORDS, ago, git_text, human_duration, words

STATUS_WORDS = {status.value: word for status, word in WORDS.items()}


def statuses_of(word: str) -> list[str]:
    """The run statuses counted under a word (failed: failed and errored)."""
    return [status for status, w in STATUS_WORDS.items() if w == word]


def run_duration(started_at: float | None, ended_at: float | None) -> str:
    if started_at is None:
        return ""
    return human_duration(max(0.0, (ended_at or time.time()) - started_at))


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def config_text(configurations: list[Any]) -> str:
    """Configurations on one line: names as they are, mappings as compact JSON."""
    return " · ".join(
        c if isinstance(c, str) else json.dumps(c, default=str, separators=(",", ":"))
        for c in configurations
    )


def pretty(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


def progress(counts: dict[str, int]) -> dict[str, Any]:
    """Word counts, the share of each for a progress bar (percent), and the finished share."""
    shown = words(counts)
    total = shown["total"] or 1
    finished = shown["total"] - shown["waiting"] - shown["running"]
    return {
        "counts": shown,
        "shares": {w: 100.0 * n / total for w, n in shown.items() if w != "total" and n},
        "percent": 100.0 * finished / total if shown["total"] else 0.0,
    }


def query(params: dict[str, Any], **changes: Any) -> str:
    """`?a=1&b=2`: params with changes (None drops a key), empty values left out."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "", False)}
    return "?" + urlencode(kept) if kept else "?"


def numeric_names(metrics: list[dict[str, Any]], limit: int = 6) -> list[str]:
    """The names of numeric metrics, in first-seen order, qaflow's bookkeeping (is_failed,
    compute_time) left out: the table shows the duration already."""
    names: dict[str, None] = {}
    for values in metrics:
        for name, metric in (values or {}).items():
            if name not in BOOKKEEPING and isinstance(metric, int | float):
                names.setdefault(name)
    return list(names)[:limit]


def command_text(argv: list[str]) -> str:
    """The command line an execution was started with, as a user would type it: `qa …`
    for the qa script (recorded with its full path), else the program as recorded."""
    if not argv:
        return ""
    program = PurePath(argv[0]).name
    if program in ("qa", "qa.exe", "__main__.py"):
        return shlex.join(["qa", *argv[1:]])
    return shlex.join(argv)


FILTERS = {
    "ago": ago,
    "when": when,
    "config_text": config_text,
    "pretty": pretty,
    "git_text": git_text,
    "command_text": command_text,
}
GLOBALS = {
    "run_duration": run_duration,
    "query": query,
    "progress_of": progress,
}
