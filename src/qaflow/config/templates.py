"""What the interpolation passes share without importing the interpolation code: the roots
every pass knows (`KNOWN_ROOTS`), the cheap test for a `${…}` template (`has_templates`) and
the signal of a value not known yet (`Deferred`).

Configurations without templates (most of them) are never interpolated, so planning them
imports neither `qaflow.config.expressions` nor its evaluator (~5 ms of a ~150 ms `qa`).
"""

from __future__ import annotations

KNOWN_ROOTS: frozenset[str] = frozenset(
    {"needs", "depends", "matrix", "previous", "input_path", "output_dir"}
)


class Deferred(Exception):
    """A value that is not known yet: an upstream run's metrics, read while planning.

    Not an error (not a QaflowError): it tells the caller of an interpolation pass to leave
    the run `deferred` and run the pass again when the value exists (see `config.passes`).
    The evaluator lets it through untouched."""


def has_templates(value: object) -> bool:
    """True if any string inside value (lists, dict values) contains `${` (cheap check)."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, list):
        return any(has_templates(item) for item in value)
    if isinstance(value, dict):
        return any(has_templates(item) for item in value.values())
    return False
