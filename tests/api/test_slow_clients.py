"""Slow and greedy clients against the real server (finding 7): unfinished headers and bodies
are timed out, connections past the cap are refused, and other clients are answered meanwhile."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.api.conftest import PROBLEM, TYPE_BASE, serving_in_thread

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
# Generous against a loaded CI machine, and still far below "never".
PROMPTLY = 5.0


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving_in_thread(header_timeout_seconds=HEADER_TIMEOUT, body_timeout_seconds=BODY_TIMEOUT) as port:
        yield port


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=PROMPTLY + 5)


def seconds_until_closed(sock: socket.socket, drip: bytes = b"") -> float:
    """Reads (sending `drip` a byte at a time meanwhile) until the server closes the connection."""
    started = time.monotonic()
    sock.settimeout(0.1)
    for byte in drip:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    sock.settimeout(PROMPTLY + 5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def healthz(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROMPTLY)
    connection.request("GET", "/healthz")
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_connection_that_sends_half_its_headers_is_closed_within_the_header_timeout(port):
    sock = connect(port)
    sock.sendall(b"POST /v1/evaluate HTTP/1.1\r\nHost: gradserve.test\r\n")
    assert HEADER_TIMEOUT * 0.8 <= seconds_until_closed(sock) < PROMPTLY
    sock.close()


def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout(port):
    sock = connect(port)
    assert seconds_until_closed(sock) < PROMPTLY
    sock.close()


def test_headers_dripped_a_byte_at_a_time_do_not_reset_the_timeout(port):
    sock = connect(port)
    endless_header = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200
    assert seconds_until_closed(sock, drip=endless_header) < PROMPTLY
    sock.close()


def test_a_body_shorter_than_its_content_length_is_answered_408_within_the_body_timeout(port):
    sock = connect(port)
    body = b'{"function": {"expression": "x"}, '
    started = time.monotonic()
    sock.sendall(
        b"POST /v1/evaluate HTTP/1.1\r\nHost: gradserve.test\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: stalled-body-1\r\nContent-Length: %d\r\n\r\n%s" % (len(body) + 100, body)
    )
    response = http.client.HTTPResponse(sock)
    response.begin()
    problem = json.loads(response.read())
    assert BODY_TIMEOUT * 0.8 <= time.monotonic() - started < PROMPTLY
    assert response.status == 408
    assert response.getheader("content-type") == PROBLEM
    assert response.getheader("connection") == "close"
    assert problem["type"] == TYPE_BASE + "request-timeout"
    assert problem["request_id"] == "stalled-body-1"
    assert seconds_until_closed(sock) < PROMPTLY
    sock.close()


def test_other_clients_are_answered_while_slow_ones_hold_connections(port):
    half_headers = b"GET /healthz HTTP/1.1\r\n"
    half_body = b"POST /v1/grad HTTP/1.1\r\nContent-Length: 9\r\n\r\n{"
    slow = [connect(port) for _ in range(32)]
    for index, sock in enumerate(slow):
        sock.sendall(half_headers if index % 2 else half_body)
    started = time.monotonic()
    assert [healthz(port) for _ in range(5)] == [200] * 5
    assert time.monotonic() - started < HEADER_TIMEOUT, "the answers waited for the slow clients' timeouts"
    for sock in slow:
        sock.close()


def test_a_request_on_a_connection_past_the_cap_is_answered_503_and_the_connection_closed():
    with serving_in_thread(max_connections=2) as port:
        idle = [connect(port), connect(port)]
        time.sleep(0.2)  # the server registers a connection when its event loop gets to it
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROMPTLY)
        connection.request("GET", "/healthz", headers={"X-Request-ID": "past-the-cap"})
        refused = connection.getresponse()
        problem = json.loads(refused.read())
        assert refused.status == 503
        assert refused.getheader("content-type") == PROBLEM
        assert refused.getheader("retry-after") == "1"
        assert refused.getheader("connection") == "close"
        assert refused.getheader("x-content-type-options") == "nosniff"
        assert problem["type"] == TYPE_BASE + "overloaded" and problem["request_id"] == "past-the-cap"
        connection.close()

        for sock in idle:
            sock.close()
        time.sleep(0.2)
        assert healthz(port) == 200
