"""Linearize handles: linearizations kept in the API process, by id, for a while.

A handle's residuals live here, in the process that answers its products: a product runs
on them here (most are small) or in any worker (its residuals travel with it), so a worker
that dies loses no handle. The store (`app.store`) is bounded by count and bytes, least
recently used first out, and each handle expires a fixed time after it was made.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.errors import ServiceError
from app.store import Entry, Store, shown_id
from engine.errors import TOO_LARGE, EngineError
from engine.linearize import Linearization


class HandleNotFoundError(ServiceError):
    kind = "handle-not-found"
    status = 404
    title = "Handle not found"


Handle = Entry[Linearization]  # the linearization is its value


class HandleStore(Store[Linearization]):
    def __init__(self, max_count: int, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.time):
        super().__init__(max_count, max_bytes, _not_found, _never_full, clock)
        self.ttl_seconds = ttl_seconds

    def add(self, linearization: Linearization) -> Handle:  # type: ignore[override]
        size = linearization.nbytes
        if size > self.max_bytes:
            raise EngineError(
                TOO_LARGE,
                f"the linearization holds {size:,} bytes; handles may hold {self.max_bytes:,} bytes in all",
            )
        return super().add(linearization, size, self.clock() + self.ttl_seconds)


def _not_found(handle_id: str) -> HandleNotFoundError:
    return HandleNotFoundError(
        f"no handle {shown_id(handle_id)!r}: it expired, was deleted or evicted, or never existed; linearize again",
        "/handle",
    )


def _never_full() -> ServiceError:
    raise AssertionError("every handle may be evicted")  # pragma: no cover
