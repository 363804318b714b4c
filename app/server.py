"""The app under uvicorn, as `gradserve serve` runs it: slow clients timed out, open
connections capped, no Server header, and /metrics on a port of its own with `metrics_port`."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from app import forwarding, main, middleware
from app.balancing import Balance
from app.problems import problem
from app.settings import Settings

log = logging.getLogger("gradserve")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the two limits it lacks.

    A request's headers must be complete within `header_timeout` of the connection's opening or
    of the request's first byte: uvicorn times out only an idle keep-alive connection, so a
    client that stops halfway through its headers holds the socket forever. (The body has its
    deadline in `middleware.RequestMiddleware`, which can still answer 408.)

    A connection opened while `max_connections` are open has its request answered by `refusal`
    (a 503 that closes it), so the connections past the cap live no longer than one request.

    With `balance` (one of several API processes on a shared socket, `app.balancing`), each
    connection that closes is taken off this process's count of open ones."""

    def __init__(
        self, *args: Any, header_timeout: float, max_connections: int, refusal: ASGIApp,
        balance: Balance | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.refusal = refusal
        self.balance = balance
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.app = self.refusal
        self._time_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._time_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)
        if self.balance is not None:
            self.balance.closed()

    def _time_headers(self) -> None:
        """Runs the timer while the client owes a request's headers (h11's IDLE: none of the
        request parsed yet), and stops it once they are in."""
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_timer()
        elif self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def send_400_response(self, msg: str) -> None:
        """The answer to bytes h11 cannot read as a request, as a problem like every other
        error (uvicorn's own is text/plain); the connection is then closed, as uvicorn does."""
        detail = "the request is not valid HTTP/1.1 (its request line, headers or framing); the connection is closed"
        answer = problem(400, "malformed-http", "Malformed request", detail)
        headers = [(b"content-type", answer.media_type.encode()), (b"content-length", b"%d" % len(answer.body)),
                   (b"connection", b"close")]  # fmt: skip
        for event in (h11.Response(status_code=400, headers=headers), h11.Data(data=answer.body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _headers_overdue(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE:
            log.info(
                "closing a connection from %s: no complete request headers within %g s",
                self.client,
                self.header_timeout,
            )
            self.timeout_keep_alive_handler()


def _no_delay(transport: asyncio.Transport) -> None:
    """Small answers leave at once (TCP_NODELAY). asyncio sets it only on sockets it made, and
    not on those accepted from a socket bound by a parent process (`app.processes`, proto 0):
    without it, a client waiting for each answer waits ~40 ms for the delayed ACK each time."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def refusal(settings: Settings) -> ASGIApp:
    """The answer to a request on a connection past the cap: a 503 problem that closes it, with
    the request id, security headers and log line of any other answer."""

    async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the service has its limit of {settings.max_connections:,} connections open; retry on a new one"
        # A connection frees as soon as any client's request is answered: retry at once.
        headers = {"Retry-After": "1", "Connection": "close"}
        await problem(503, "overloaded", "Service overloaded", detail, headers=headers)(scope, receive, send)

    return middleware.RequestMiddleware(over_capacity)


def uvicorn_config(
    app: ASGIApp, settings: Settings, host: str, port: int, log_level: str, balance: Balance | None = None,
    **options: Any,
) -> uvicorn.Config:  # fmt: skip
    """uvicorn's settings for one listener. Logging is `app.logs`'s, whose per-request line
    replaces uvicorn's access log."""
    protocol = functools.partial(
        GuardedH11Protocol,
        header_timeout=settings.header_timeout_seconds,
        max_connections=settings.max_connections,
        refusal=refusal(settings),
        balance=balance,
    )
    return uvicorn.Config(
        app, host=host, port=port, http=protocol, server_header=False, log_config=None, log_level=log_level,
        access_log=False, **options,
    )  # fmt: skip


def servers(
    app: FastAPI, settings: Settings, host: str, port: int, log_level: str, peer_socket: str | None = None,
    balance: Balance | None = None,
) -> list[uvicorn.Server]:  # fmt: skip
    """The API's server (its connections counted in `balance`, where given), the metrics' server
    when `metrics_port` is set, and with `peer_socket` the private listener on which the other
    API processes forward requests for this one's state."""
    listeners = [uvicorn.Server(uvicorn_config(app, settings, host, port, log_level, balance))]
    if settings.metrics_port is not None:
        metrics = main.metrics_app(app.state.metrics)
        config = uvicorn_config(
            metrics, settings, settings.metrics_host, settings.metrics_port, log_level, lifespan="off"
        )
        listeners.append(uvicorn.Server(config))
    if peer_socket is not None:
        peer = forwarding.trusted(app)
        listeners.append(
            uvicorn.Server(uvicorn_config(peer, settings, host, port, log_level, lifespan="off", uds=peer_socket))
        )
    return listeners


async def serve_together(
    listeners: list[uvicorn.Server], sockets: list[list[socket.socket] | None] | None = None
) -> None:
    """Runs the servers (each on its `sockets`, bound by a parent process, when given) until
    one stops (on a signal, or a failed start), then stops the rest."""
    sockets = sockets if sockets is not None else [None] * len(listeners)
    tasks = [asyncio.create_task(server.serve(sockets=bound)) for server, bound in zip(listeners, sockets, strict=True)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in listeners:
        server.should_exit = True
    await asyncio.gather(*tasks)
