"""A least-recently-used cache bounded by the weight of what it holds (equations), not by
its number of entries: one transform of a large function can weigh as much as thousands
of small ones, and a worker must not grow without bound."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from threading import Lock
from typing import Any

MAX_CACHED_EQUATIONS = 2_000_000


class WeightedCache:
    def __init__(self, max_weight: int = MAX_CACHED_EQUATIONS):
        self.max_weight = max_weight
        self.weight = 0
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = Lock()

    def memoize(self, weigh: Callable[[Any], int]) -> Callable[[Callable], Callable]:
        """Decorate a builder whose arguments are hashable; `weigh(result)` is its cost to keep."""

        def decorate(build: Callable) -> Callable:
            @wraps(build)
            def cached(*args: Any) -> Any:
                key = (build.__qualname__, *args)
                with self._lock:
                    if key in self._entries:
                        self._entries.move_to_end(key)
                        return self._entries[key][0]
                result = build(*args)
                self._store(key, result, weigh(result))
                return result

            cached.cache = self
            return cached

        return decorate

    def _store(self, key: tuple, result: Any, weight: int) -> None:
        if weight > self.max_weight:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (result, weight)
            self.weight += weight
            while self.weight > self.max_weight:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.weight = 0


TRANSFORMS = WeightedCache()
