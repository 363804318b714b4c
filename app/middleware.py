"""The ASGI middlewares, outermost first in `install`: every response counted, every
unexpected error answered as a problem, the body held to its size limit."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics
from app.problems import problem

log = logging.getLogger("gradserve")


class ContainErrorsMiddleware:
    """Answers an exception that no handler took with a 500 problem, and does not re-raise it.

    Starlette's own last-resort handler sends its 500 and then re-raises, so that uvicorn logs
    "Exception in ASGI application" and drops the keep-alive connection: the client's next
    request on it fails. Here the failure is logged once and the connection stays usable."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                # Half a response is out: the connection cannot carry another one, and
                # uvicorn closes it when the app returns without finishing the response.
                return
            detail = "the service failed unexpectedly; the failure was logged"
            await problem(500, "internal", "Internal error", detail)(scope, receive, send)


class MetricsMiddleware:
    """Counts every response, labelled by the route's path template (not the raw path, so
    that unknown URLs do not make a label each) and by the method, folded into a closed set."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.observe(scope.get("route"), scope["method"], status, time.perf_counter() - started)


class BodyLimitMiddleware:
    """The request body's size limit: refused from Content-Length before a byte is read, and
    counted while reading a body sent without one (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"the request body is over the limit of {max_bytes:,} bytes; send large arrays as base64"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem(413, "too-large", "Request too large", self.detail)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised while the route reads the body: FastAPI passes HTTPException on to
                    # the exception handlers, which answer with a problem.
                    raise HTTPException(413, self.detail)
            return message

        await self.app(scope, receive_within_limit, send)


def install(app: FastAPI, metrics: Metrics, max_body_bytes: int) -> None:
    # add_middleware wraps what is there: the last added is the outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(ContainErrorsMiddleware)
