"""The ASGI middlewares, outermost first in `install`: what every request gets (its id and log
line, the security headers, an unexpected error answered as a problem, the metrics, the body's
deadline), CORS, API keys and the rate limit, the body held to its size limit."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import forwarding, ownership, request_id, security
from app.metrics import Metrics, endpoint_label, method_label
from app.problems import problem
from app.settings import Settings

log = logging.getLogger("gradserve")
access_log = logging.getLogger("gradserve.access")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The API answers JSON, which no page has reason to run, style or frame. A page that needs
    # more (the docs) sets its own policy, which is kept.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class HttpMiddleware:
    """An ASGI middleware of HTTP requests: other scopes (the lifespan) pass through untouched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestMiddleware(HttpMiddleware):
    """What every request gets, in one layer (as five, they were five coroutines and four more
    wrapped sends and receives for every request), in the order they apply:

    - its id (the client's X-Request-ID when it is a safe token, else a new one), echoed on the
      response and held in `request_id.current` for whatever answers or logs inside, and its
      one log line: method, endpoint template, status, duration and the byte sizes of the two
      bodies, never their contents;
    - SECURITY_HEADERS on every response, keeping any that the response set itself;
    - an exception that no handler took answered with a 500 problem, and not re-raised.
      Starlette's own last-resort handler sends its 500 and then re-raises, so that uvicorn
      logs "Exception in ASGI application" and drops the keep-alive connection: the client's
      next request on it fails. Here the failure is logged once and the connection stays usable;
    - with `metrics`, every response counted, labelled by the route's path template (not the
      raw path, so that unknown URLs do not make a label each) and by the method, folded into
      a closed set;
    - with `body_seconds`, the request body's deadline: a body that stalls, or is shorter than
      its Content-Length, is answered 408 instead of holding a connection forever. A response
      started before the body was read to its end (that 408, or an early 401, 413 or 429)
      closes the connection, so that the unread rest cannot hold it either."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, body_seconds: float | None = None):
        super().__init__(app)
        self.metrics = metrics
        self.body_seconds = body_seconds
        if body_seconds is not None:
            self.late_body_detail = f"the request body did not arrive within {body_seconds:g} s of its headers"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        this_id = request_id.accept(headers.get(request_id.HEADER))
        token = request_id.current.set(this_id)
        started = time.perf_counter()
        status: int | None = None  # None: no answer was started (the client left, or a failure)
        request_bytes = response_bytes = 0
        body_pending = self.body_seconds is not None and (
            "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
        )
        if body_pending:
            deadline = asyncio.get_running_loop().time() + self.body_seconds

        async def receive_counted() -> Message:
            nonlocal request_bytes, body_pending
            if not body_pending:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    # Raised while the route reads the body, like BodyLimitMiddleware's 413.
                    raise HTTPException(408, self.late_body_detail) from None
                body_pending = message["type"] == "http.request" and message.get("more_body", False)
            request_bytes += len(message.get("body", b""))
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                if body_pending:
                    response_headers["Connection"] = "close"
                for name, value in SECURITY_HEADERS.items():
                    response_headers.setdefault(name, value)
                response_headers[request_id.HEADER] = this_id
            else:
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            try:
                await self.app(scope, receive_counted, send_with_headers)
            except Exception:
                log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
                # Once half a response is out the connection cannot carry another one, and
                # uvicorn closes it when the app returns without finishing the response.
                if status is None:
                    detail = "the service failed unexpectedly; the failure was logged"
                    await problem(500, "internal", "Internal error", detail)(scope, receive_counted, send_with_headers)
        finally:
            if self.metrics is not None:
                # No answer started: a failure (answered 500 above) or a client that left.
                counted = 500 if status is None else status
                self.metrics.observe(scope.get("route"), scope["method"], counted, time.perf_counter() - started)
            line = {
                "method": method_label(scope["method"]),
                "endpoint": endpoint_label(scope.get("route")),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_bytes": request_bytes,
                "response_bytes": response_bytes,
            }
            access_log.info("%(method)s %(endpoint)s %(status)s %(duration_ms).1f ms", line, extra=line)
            request_id.current.reset(token)


_BODY_HEADERS = ("content-type", "content-length")


class CORSProblemMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as a problem instead of plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        detail = (
            f"{bytes(response.body).decode()}: a browser may call this service from the origins of its "
            "cors_origins setting, with GET or POST"
        )
        cors_headers = {name: value for name, value in response.headers.items() if name not in _BODY_HEADERS}
        return problem(400, "cors-refused", "CORS preflight refused", detail, headers=cors_headers)


class AccessMiddleware:
    """Who may call: with API keys configured, a request must carry one (X-API-Key or
    Authorization: Bearer), else 401; with a rate set, each caller (its key, else its address)
    has a token bucket, else 429 with Retry-After. Health, docs and the OpenAPI document are
    open to all (`security.OPEN_PATHS`)."""

    def __init__(self, app: ASGIApp, keys: security.KeyRing | None, buckets: security.TokenBuckets | None):
        self.app = app
        self.keys = keys
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or security.is_open(scope["path"]) or forwarding.FORWARDED in scope:
            # A request forwarded by another API process was checked there (app.forwarding).
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        caller = client[0] if client else "unknown"
        if self.keys is not None:
            presented = _presented_key(Headers(scope=scope))
            key_name = self.keys.identify(presented) if presented else None
            if key_name is None:
                await _unauthorized(presented is not None)(scope, receive, send)
                return
            caller = key_name
        if self.buckets is not None and (wait := self.buckets.take(caller)):
            detail = f"over the rate limit of {self.buckets.rate:g} requests per second; retry in {wait} s"
            limited = problem(429, "rate-limited", "Too many requests", detail, headers={"Retry-After": str(wait)})
            await limited(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _presented_key(headers: Headers) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _unauthorized(key_sent: bool) -> Response:
    challenge = 'Bearer realm="gradserve"'
    if key_sent:
        detail = "the API key sent is not one of this service's keys"
        challenge += ', error="invalid_token"'
    else:
        detail = "this endpoint needs an API key: send it as X-API-Key: <key> or Authorization: Bearer <key>"
    return problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


class BodyLimitMiddleware(HttpMiddleware):
    """The request body's size limit: refused from Content-Length before a byte is read, and
    counted while reading a body sent without one (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        super().__init__(app)
        self.max_bytes = max_bytes
        self.detail = f"the request body is over the limit of {max_bytes:,} bytes; send large arrays as base64"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def install(app: FastAPI, metrics: Metrics, settings: Settings) -> None:
    # add_middleware wraps what is there: the last added is the outermost.
    if ownership.here().processes > 1:
        # Inside the caller's checks and the body's limits: what goes to the owner has passed them.
        app.add_middleware(forwarding.ForwardToOwnerMiddleware, router=app.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_keys or settings.rate_limit_per_second:
        app.add_middleware(AccessMiddleware, keys=_key_ring(settings), buckets=_token_buckets(settings))
    if settings.cors_origins:
        # Outside the keys: a browser's preflight carries no credentials, and a 401 or 429 must
        # carry the CORS headers for the page to read it.
        app.add_middleware(
            CORSProblemMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", request_id.HEADER],
            expose_headers=[request_id.HEADER, "Retry-After"],
        )
    app.add_middleware(RequestMiddleware, metrics=metrics, body_seconds=settings.body_timeout_seconds)


def _key_ring(settings: Settings) -> security.KeyRing | None:
    return security.KeyRing(settings.api_keys) if settings.api_keys else None


def _token_buckets(settings: Settings) -> security.TokenBuckets | None:
    if not settings.rate_limit_per_second:
        return None
    return security.TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst, settings.rate_limit_clients)
