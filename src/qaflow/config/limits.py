"""Bounds on the work of one expression beyond its own steps: what a call may go through, and
which values a whole expression may give.

A call of a builtin (`str`, `max`, `sorted`…) or a comparison runs in C over its arguments
however big they are: `str([list('a'*999999)]*999999)` builds 10^12 characters without a
single step of the evaluator. So, before such a call, the values it would go through are
counted (`work`, stopping as soon as the count passes the budget, so counting is itself
bounded) and the call is refused past MAX_CALL_WORK. A whole expression must give a value a
configuration can hold: not a function (`${{ sorted }}`), not an infinite or NaN number.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

MAX_CALL_WORK = 1_000_000  # values a function call or a comparison may go through


def work(value: Any, budget: int = MAX_CALL_WORK) -> int:
    """How many values going through `value` visits (items of containers, 64-character
    chunks of strings, recursively), counted up to just past `budget`, in time bounded by it."""
    total, stack = 0, [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += 1 + len(item) // 64
        elif isinstance(item, Mapping):
            total += 1 + len(item)
            stack.extend(itertools.islice(item.items(), max(0, budget - total + 1)))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1 + len(item)
            stack.extend(itertools.islice(item, max(0, budget - total + 1)))
        else:
            total += 1
    return total


def unfit_result(value: Any, is_function: Callable[[object], bool]) -> str | None:
    """Why `value` cannot be the value of a configuration, or None if it can."""
    if is_function(value):
        name = getattr(value, "__name__", "it")
        return f"'{name}' is a function, not a value: call it, e.g. {name}(…)"
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"the result is {item} (a number too large, or undefined): keep values finite"
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif is_function(item):
            return "the result holds a function, not a value: call it"
    return None
