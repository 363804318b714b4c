"""Connections spread evenly over the API processes that accept on one shared socket.

Every process waits on the same listening socket, the kernel wakes them all when a client
connects, and asyncio's accept loop takes every connection waiting at once: four clients that
connect together often all land on one process, which then parses every body on one core while
the other idles (bench.http's 1e5-element rows swung from 0.76 to 2.11 of the bare endpoint
with that split). As nginx's accept mutex does, a process that holds more open connections than
the least loaded live one lets a waiting connection go for a moment, so that the other, woken
by the same event, takes it; past `HOLD_SECONDS` it accepts anyway, so that a peer that is busy,
stopped or dead delays a connection by no more than that.

Each process's count of open connections lives in one shared array (`counts`), written only by
that process (and by the parent, which marks a dead one's slot as absent before it starts
another); a slot is absent (-1) until its process starts serving (asyncio then calls `listen`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

ABSENT = -1
# Long enough for an idle peer, woken by the same connection, to take it; short enough that a
# connection waits unnoticed when the peer cannot (a spread of connections is not worth more).
HOLD_SECONDS = 0.002


class Balance:
    """One process's view of the counts: whether it lets a waiting connection go, and its own
    count kept as its connections open and close."""

    def __init__(self, counts: Any, index: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.counts = counts  # a shared array of ints, one slot per process
        self.index = index
        self.clock = clock
        self.held_since: float | None = None
        self.last_held = 0.0

    def holds_back(self) -> bool:
        """Whether a waiting connection is left for a less loaded process to take."""
        mine = self.counts[self.index]
        others = [count for i, count in enumerate(self.counts) if i != self.index and count != ABSENT]
        if not others or mine <= min(others):
            self.held_since = None
            return False
        now = self.clock()
        # Refusals a hold apart belong to different connections: each gets its own hold.
        if self.held_since is None or now - self.last_held > HOLD_SECONDS:
            self.held_since = now
        self.last_held = now
        if now - self.held_since < HOLD_SECONDS:
            return True
        self.held_since = None
        return False

    def serving(self) -> None:
        """From now on the others count this process as a peer."""
        self.counts[self.index] = 0

    def opened(self) -> None:
        self.counts[self.index] += 1

    def closed(self) -> None:
        self.counts[self.index] = max(self.counts[self.index] - 1, 0)


class BalancedSocket(socket.socket):
    """The shared listening socket as one process serves it: asyncio calls `listen` as the server
    starts, and `accept` in its accept loop, which answers "nothing waiting" while `balance`
    holds back, and counts what it takes. (An event loop that works on the descriptor itself,
    as uvloop does, accepts unbalanced.)"""

    balance: Balance

    @classmethod
    def wrap(cls, listening: socket.socket, balance: Balance) -> BalancedSocket:
        """`listening` itself (it is detached), as a balanced socket."""
        wrapped = cls(listening.family, listening.type, listening.proto, fileno=listening.detach())
        wrapped.balance = balance
        return wrapped

    def listen(self, backlog: int = socket.SOMAXCONN) -> None:
        super().listen(backlog)
        self.balance.serving()

    def accept(self) -> tuple[socket.socket, Any]:
        if self.balance.holds_back():
            os.sched_yield()  # the peer may be waiting for this core to take the connection
            raise BlockingIOError
        accepted = super().accept()
        self.balance.opened()
        return accepted
