"""`app.balancing`: a process with more open connections than the least loaded live one lets a
waiting connection go to it, for a moment at most."""

from __future__ import annotations

import socket

import pytest

from app.balancing import ABSENT, HOLD_SECONDS, Balance, BalancedSocket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_process_alone_or_among_absent_peers_never_holds_back():
    counts = [5, ABSENT, ABSENT]
    assert not Balance(counts, 0).holds_back()
    assert not Balance([3], 0).holds_back()


def test_the_least_loaded_process_accepts_and_a_more_loaded_one_holds_back():
    counts = [2, 1, 1]
    assert Balance(counts, 0, Clock()).holds_back()
    assert not Balance(counts, 1, Clock()).holds_back()  # ties accept: whichever is first takes it
    assert not Balance(counts, 2, Clock()).holds_back()


def test_a_hold_ends_after_hold_seconds_and_the_next_connection_gets_a_hold_of_its_own():
    clock = Clock()
    balance = Balance([4, 0], 0, clock)
    assert balance.holds_back()
    clock.now += HOLD_SECONDS / 2
    assert balance.holds_back()  # the same connection, still within its hold
    clock.now += HOLD_SECONDS / 2
    assert not balance.holds_back()  # the peer did not take it: accepted here
    clock.now += HOLD_SECONDS * 0.1
    assert balance.holds_back()  # the next connection waits for the peer again
    clock.now += HOLD_SECONDS * 10
    assert balance.holds_back()  # a refusal long after the last one holds a new connection afresh
    clock.now += HOLD_SECONDS * 0.9
    assert balance.holds_back()


def test_a_process_is_counted_once_it_serves_and_as_its_connections_open_and_close():
    counts = [ABSENT, 3]
    balance = Balance(counts, 0)
    balance.serving()
    assert counts == [0, 3]
    balance.opened()
    balance.opened()
    assert counts == [2, 3]
    for _ in range(3):
        balance.closed()
    assert counts == [0, 3]  # never below zero: absent is the parent's mark alone


def test_balanced_sockets_on_one_listening_socket_spread_the_connections():
    listening = socket.create_server(("127.0.0.1", 0))
    counts = [ABSENT, ABSENT]
    first = BalancedSocket.wrap(listening.dup(), Balance(counts, 0))
    second = BalancedSocket.wrap(listening, Balance(counts, 1))
    for wrapped in (first, second):
        wrapped.setblocking(False)  # as asyncio has it
        wrapped.listen()  # as the server starts: the other counts it from now on
    assert counts == [0, 0]
    clients, accepted = [], []
    try:
        for expected in (first, second, first, second):
            clients.append(socket.create_connection(first.getsockname()))
            takers = []
            for wrapped in (first, second):  # both are woken: the less loaded one takes it
                try:
                    accepted.append(wrapped.accept()[0])
                    takers.append(wrapped)
                except BlockingIOError:  # held back, or the other took it
                    pass
            assert takers == [expected]
        assert counts == [2, 2]
        assert not any(isinstance(connection, BalancedSocket) for connection in accepted)
    finally:
        for sock in [*clients, *accepted, first, second]:
            sock.close()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX])
def test_wrapping_keeps_the_listening_socket_and_detaches_the_original(family, tmp_path):
    address = ("127.0.0.1", 0) if family == socket.AF_INET else str(tmp_path / "socket")
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.bind(address)
    listening.listen()
    name = listening.getsockname()
    wrapped = BalancedSocket.wrap(listening, Balance([ABSENT], 0))
    try:
        assert listening.fileno() == -1
        assert (wrapped.family, wrapped.type, wrapped.getsockname()) == (family, socket.SOCK_STREAM, name)
    finally:
        wrapped.close()
