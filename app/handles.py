"""Linearize handles: linearizations kept in the API process, by id, for a while.

A handle's residuals live here, in the process that answers its products: a product runs
on them here (most are small) or in any worker (its residuals travel with it), so a worker
that dies loses no handle. The store is bounded by count and bytes, least recently used
first out, and each handle expires a fixed time after it was made.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import ServiceError
from app.ownership import new_owned_id
from engine.errors import TOO_LARGE, EngineError
from engine.linearize import Linearization


class HandleNotFoundError(ServiceError):
    kind = "handle-not-found"
    status = 404
    title = "Handle not found"


@dataclass(frozen=True)
class Handle:
    id: str
    linearization: Linearization
    expires_at: float  # seconds since the epoch

    @property
    def expires_at_text(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class HandleStore:
    def __init__(self, max_count: int, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.time):
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.bytes = 0
        self._handles: OrderedDict[str, Handle] = OrderedDict()

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, linearization: Linearization) -> Handle:
        size = linearization.nbytes
        if size > self.max_bytes:
            raise EngineError(
                TOO_LARGE,
                f"the linearization holds {size:,} bytes; handles may hold {self.max_bytes:,} bytes in all",
            )
        self._drop_expired()
        while self._handles and (len(self._handles) >= self.max_count or self.bytes + size > self.max_bytes):
            self._remove(next(iter(self._handles)))
        handle = Handle(new_owned_id(), linearization, self.clock() + self.ttl_seconds)
        self._handles[handle.id] = handle
        self.bytes += size
        return handle

    def get(self, handle_id: str) -> Handle:
        self._drop_expired()
        handle = self._handles.get(handle_id)
        if handle is None:
            raise _not_found(handle_id)
        self._handles.move_to_end(handle_id)
        return handle

    def delete(self, handle_id: str) -> None:
        self.get(handle_id)
        self._remove(handle_id)

    def _remove(self, handle_id: str) -> None:
        self.bytes -= self._handles.pop(handle_id).linearization.nbytes

    def _drop_expired(self) -> None:
        now = self.clock()
        for handle_id in [h.id for h in self._handles.values() if h.expires_at <= now]:
            self._remove(handle_id)


def _not_found(handle_id: str) -> HandleNotFoundError:
    shown = handle_id if len(handle_id) <= 40 else handle_id[:40] + "..."
    return HandleNotFoundError(
        f"no handle {shown!r}: it expired, was deleted or evicted, or never existed; linearize again",
        "/handle",
    )
