"""Values computed once per object: planning's runs share their configurations, params and
matrix (the same objects), so what is derived from them (a hash, their JSON, their text)
is derived once, not once per run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ByObject(Generic[T]):
    """`compute(value)`, once per object: keyed by the object's identity, which stays its own
    because the object is held as long as the memo."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._found: dict[int, tuple[Any, T]] = {}  # id -> (the object, held; its value)

    def of(self, value: Any) -> T:
        found = self._found.get(id(value))
        if found is None:
            found = self._found[id(value)] = (value, self._compute(value))
        return found[1]
