"""Who is let in, and when: admission by expected time, in lanes that keep long work from
taking every worker or every preparing thread.

Work is sorted into two lanes. Short work (an expression or a graph whose static cost is
small) may use every worker; long work (a program, whose time nothing bounds but its step
budget and the deadline, or a large static cost) may hold only the workers that leave one
free for short work. Each lane keeps a moving estimate of how long its tasks take, so a
request is admitted while the wait ahead of it plus its own work fits the deadline, and
refused (503) with a Retry-After computed from that estimate past it. The count of admitted
requests is bounded too, as a bound on memory, not as the admission rule.

Jobs (`app.jobs`) are admitted by the same rule, but their times are not observed: a job is
long by design (its deadline is job_deadline_seconds), and one would move the estimate so far
that synchronous requests were refused for a while after it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.errors import OverloadedError

SHORT, LONG = "short", "long"
# How much a new observation moves a lane's estimate: recent behaviour matters most, and
# one odd request does not swing it.
SMOOTHING = 0.2
# Where a lane's estimate starts before anything was observed: optimistic, so a fresh
# service admits; real observations correct it within a few requests.
INITIAL_ESTIMATE_SECONDS = {SHORT: 0.005, LONG: 0.05}


@dataclass
class Lane:
    name: str
    estimate_seconds: float
    admitted: int = 0  # tasks let in and not yet finished (waiting or running)
    running: int = 0

    def observe(self, seconds: float) -> None:
        self.estimate_seconds += SMOOTHING * (seconds - self.estimate_seconds)


@dataclass
class Admission:
    """The lanes of one pool of `workers`, and the rule that admits into them."""

    workers: int
    deadline_seconds: float
    max_admitted: int
    lanes: dict[str, Lane] = field(init=False)
    _long_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.lanes = {name: Lane(name, seconds) for name, seconds in INITIAL_ESTIMATE_SECONDS.items()}
        self._long_slots = asyncio.Semaphore(self.long_slots)

    @property
    def long_slots(self) -> int:
        """Workers long work may hold at once: all but one, so short work always has one
        (a pool of one worker cannot keep one back)."""
        return max(1, self.workers - 1)

    def expected_seconds(self, lane: Lane) -> float:
        """When a task admitted now into `lane` would be done: the tasks ahead of it, as many
        at a time as the lane has workers, then its own."""
        if lane.name == LONG:
            slots = self.long_slots
        else:
            slots = max(1, self.workers - self.lanes[LONG].running)
        return (lane.admitted // slots + 1) * lane.estimate_seconds

    @asynccontextmanager
    async def admit(self, lane_name: str, on_admitted: Callable[[], None] | None = None) -> AsyncIterator[Lane]:
        """Hold a place in the lane while the task waits and runs; refuse at once when it
        could not be done within the deadline, or when the count bound is reached. `on_admitted`
        is called once the task holds its place (before it waits for a worker)."""
        lane = self.lanes[lane_name]
        admitted = sum(each.admitted for each in self.lanes.values())
        expected = self.expected_seconds(lane)
        if admitted >= self.max_admitted:
            raise OverloadedError(
                f"{admitted:,} requests are admitted, the most this service holds at once; retry shortly",
                retry_after=_whole_seconds(expected),
            )
        if expected > self.deadline_seconds:
            raise OverloadedError(
                f"the {lane.name} work admitted already would keep this request past the deadline of "
                f"{self.deadline_seconds:g} s (about {expected:.1f} s expected); retry later",
                retry_after=_whole_seconds(expected - self.deadline_seconds),
            )
        lane.admitted += 1
        try:
            if on_admitted is not None:
                on_admitted()
            if lane.name == LONG:
                async with self._long_slots:
                    lane.running += 1
                    try:
                        yield lane
                    finally:
                        lane.running -= 1
            else:
                yield lane
        finally:
            lane.admitted -= 1


class Gate:
    """At most `concurrency` requests inside at once and `max_waiting` waiting to enter; past
    that a request is refused at once (503) instead of queueing without end."""

    def __init__(self, what: str, concurrency: int, max_waiting: int):
        self.what = what
        self.max_waiting = max_waiting
        self.waiting = 0
        self._inside = asyncio.Semaphore(concurrency)

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[None]:
        if self.waiting >= self.max_waiting:
            raise OverloadedError(f"{self.waiting:,} requests are waiting to be {self.what}; retry shortly")
        self.waiting += 1
        try:
            await self._inside.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._inside.release()


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))
