"""A store of entries kept in the API process by random id, for a while: bounded by count and
bytes, least recently used out first, each entry expiring at its own time. Linearize handles
(`app.handles`) and jobs (`app.jobs`) are kept in one each.

An entry may be kept from eviction and expiry (`expires_at` None: a job still running); when
the store is full of such entries, `add` refuses with the store's `full` error.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from app.errors import ServiceError
from app.ownership import new_owned_id

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    id: str
    value: T
    size: int  # bytes, against the store's max_bytes
    expires_at: float | None  # seconds since the epoch; None: kept (neither evicted nor expired)

    @property
    def expires_at_text(self) -> str | None:
        return None if self.expires_at is None else timestamp_text(self.expires_at)


def timestamp_text(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 in UTC: 2026-11-30T00:00:00Z."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Store(Generic[T]):
    def __init__(
        self,
        max_count: int,
        max_bytes: int,
        not_found: Callable[[str], ServiceError],
        full: Callable[[], ServiceError],
        clock: Callable[[], float] = time.time,
    ):
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.not_found = not_found
        self.full = full
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, Entry[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[T]:
        return [entry.value for entry in self._entries.values()]

    def add(self, value: T, size: int, expires_at: float | None) -> Entry[T]:
        """A new entry, after the least recently used that may go have made room for it."""
        self._drop_expired()
        while len(self._entries) >= self.max_count or self.bytes + size > self.max_bytes:
            evictable = self._least_recently_used()
            if evictable is None:
                raise self.full()
            self._remove(evictable)
        entry = Entry(new_owned_id(), value, size, expires_at)
        self._entries[entry.id] = entry
        self.bytes += size
        return entry

    def settle(self, entry: Entry[T], size: int, expires_at: float) -> None:
        """A kept entry's final size and expiry: from now it may expire, and be evicted (least
        recently used first) to make room. Others are evicted while the bytes are over the bound."""
        if self._entries.get(entry.id) is not entry:
            return
        self.bytes += size - entry.size
        entry.size, entry.expires_at = size, expires_at
        while self.bytes > self.max_bytes:
            evictable = self._least_recently_used(but=entry)
            if evictable is None:
                return
            self._remove(evictable)

    def get(self, entry_id: str) -> Entry[T]:
        self._drop_expired()
        entry = self._entries.get(entry_id)
        if entry is None:
            raise self.not_found(entry_id)
        self._entries.move_to_end(entry_id)
        return entry

    def delete(self, entry_id: str) -> None:
        self.get(entry_id)
        self._remove(entry_id)

    def _least_recently_used(self, but: Entry[T] | None = None) -> str | None:
        """The id of the least recently used entry that may be evicted (other than `but`)."""
        return next((e.id for e in self._entries.values() if e.expires_at is not None and e is not but), None)

    def _remove(self, entry_id: str) -> None:
        self.bytes -= self._entries.pop(entry_id).size

    def _drop_expired(self) -> None:
        now = self.clock()
        expired = [e.id for e in self._entries.values() if e.expires_at is not None and e.expires_at <= now]
        for entry_id in expired:
            self._remove(entry_id)


def shown_id(entry_id: str) -> str:
    """An id as a problem's detail repeats it (a client's text, of any length)."""
    return entry_id if len(entry_id) <= 40 else entry_id[:40] + "..."
