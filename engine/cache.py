"""A least-recently-used cache bounded by the bytes of what it holds, not by its number of
entries: one transform of a large function can weigh as much as thousands of small ones,
and a worker must not grow without bound. Each entry's bytes are an estimate its kind
gives (`Function.approximate_bytes`, `Plan.approximate_bytes`), which a test holds above
what tracemalloc measures."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from threading import Lock
from typing import Any

MAX_CACHED_BYTES = 256 << 20


class WeightedCache:
    def __init__(self, max_bytes: int = MAX_CACHED_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = Lock()

    def memoize(self, weigh: Callable[[Any], int]) -> Callable[[Callable], Callable]:
        """Decorate a builder whose arguments are hashable; `weigh(result)` is its size in bytes."""

        def decorate(build: Callable) -> Callable:
            @wraps(build)
            def cached(*args: Any) -> Any:
                key = (build.__qualname__, *args)
                with self._lock:
                    # One lookup, not a test then a fetch: hashing a key that holds a
                    # Function costs a Python call, and a hit is the steady state.
                    entry = self._entries.get(key)
                    if entry is not None:
                        self.hits += 1
                        self._entries.move_to_end(key)
                        return entry[0]
                    self.misses += 1
                result = build(*args)
                self._store(key, result, weigh(result))
                return result

            cached.cache = self
            return cached

        return decorate

    def _store(self, key: tuple, result: Any, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (result, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


TRANSFORMS = WeightedCache()
