"""How statuses, counts, times and durations of executions read, for the CLI and the board alike."""

from __future__ import annotations

import time
from collections import Counter

from qaflow.store.records import ExecutionRecord
from qaflow.worker.model import RunStatus

WORDS = {  # run status -> the word `qa status` counts it under, in display order
    RunStatus.SUCCEEDED: "done",
    RunStatus.CACHED: "cached",
    RunStatus.RUNNING: "running",
    RunStatus.FAILED: "failed",
    RunStatus.ERRORED: "failed",
    RunStatus.SKIPPED: "skipped",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.INTERRUPTED: "interrupted",
    RunStatus.PENDING: "waiting",
}
ORDER = list(dict.fromkeys(WORDS.values()))


def words(counts: dict[str, int]) -> dict[str, int]:
    """Run counts by status -> by word (done, cached, running, failed…, waiting) and total."""
    out: Counter[str] = Counter(dict.fromkeys(ORDER, 0))
    for name, count in counts.items():
        out[WORDS[RunStatus(name)]] += count
    return {**out, "total": sum(counts.values())}


def counts_text(counts: dict[str, int]) -> str:
    """ "12 done, 3 running, 1 failed, 4 waiting": the non-zero counts, in display order."""
    shown = words(counts)
    parts = [f"{shown[word]} {word}" for word in ORDER if shown[word]]
    return ", ".join(parts) or "no runs yet"


def ago(when: float, now: float | None = None) -> str:
    seconds = max(0.0, (time.time() if now is None else now) - when)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size * (1 if unit != "s" else 5):
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"


def duration(record: ExecutionRecord) -> float:
    return max(0.0, (record.ended_at or time.time()) - record.started_at)


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def git_text(record: ExecutionRecord) -> str:
    git = record.git
    if not git.commit:
        return ""
    return f"{git.branch or 'detached'}@{git.commit[:7]}{'*' if git.dirty else ''}"


def summary_line(record: ExecutionRecord) -> str:
    """One line: `execution ID succeeded after 3.2s: 4 done, 1 cached`."""
    verb = "is running for" if record.status == "running" else f"{record.status} after"
    took = human_duration(duration(record))
    return f"execution {record.id} {verb} {took}: {counts_text(record.counts)}"
