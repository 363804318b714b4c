"""A request for state another API process owns goes to that process (`--processes N`).

State made by a request (a linearize handle; later, a job) stays in the API process that made
it, under an id that names it (`app.ownership`). A request for such an id that lands on another
process is sent on, whole, to the owner's private Unix socket, and the owner's answer (status,
headers, body) goes back as it came. The receiving process has already checked the caller
(API key, rate limit) and keeps its own request id, log line and metrics; the owner's peer
listener trusts what arrives on its socket (`FORWARDED` in the scope) and does not check the
caller again. The socket lives in a directory only this user can open.
"""

from __future__ import annotations

import logging

import httpx
from starlette.exceptions import HTTPException
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from app import ownership
from app.problems import HTTP_KINDS, problem

# The paths whose next segment is an owned id.
OWNED_PREFIXES = ("/v1/linearize/", "/v1/jobs/")
FORWARDED = "gradserve.forwarded"  # set in the scope of a request that came from a peer
# Headers of one hop: the connection's own, and the body's framing (recomputed for the next hop).
_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host", b"upgrade",
                  b"te", b"trailer", b"date", b"server"})  # fmt: skip


def owner_elsewhere(path: str) -> int | None:
    """The index of the API process that owns the id in `path`, when it is not this one."""
    for prefix in OWNED_PREFIXES:
        if path.startswith(prefix):
            return ownership.elsewhere(path[len(prefix) :].split("/", 1)[0])
    return None


class ForwardToOwnerMiddleware:
    def __init__(self, app: ASGIApp, router: Router):
        self.app = app
        self.router = router  # to label a forwarded request's log line and metrics by its route
        self._clients: dict[int, httpx.AsyncClient] = {}
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per forwarded request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = None if scope["type"] != "http" or FORWARDED in scope else owner_elsewhere(scope["path"])
        if owner is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _body(receive)
        except HTTPException as error:  # the body's deadline or size, raised by the middlewares outside
            kind, title = HTTP_KINDS.get(error.status_code, (f"http-{error.status_code}", "HTTP error"))
            await problem(error.status_code, kind, title, str(error.detail), headers=error.headers)(
                scope, _no_body, send
            )
            return
        for route in self.router.routes:
            if route.matches(scope)[0] is Match.FULL:
                scope["route"] = route
                break
        await self._forward(owner, scope, body, send)

    async def _forward(self, owner: int, scope: Scope, body: bytes, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name not in _HOP]
        url = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        client = self._client(owner)
        try:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
        except httpx.TransportError:
            detail = (f"the API process that holds this id (process {owner}) is not answering; it may be restarting, "
                      "and what it held is then gone")  # fmt: skip
            await problem(503, "overloaded", "Owner unavailable", detail, headers={"Retry-After": "1"})(
                scope, _no_body, send
            )
            return
        try:
            answer_headers = [(n, v) for n, v in response.headers.raw if n.lower() not in _HOP]
            length = response.headers.get("content-length")
            if length is not None:
                answer_headers.append((b"content-length", length.encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": answer_headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    def _client(self, owner: int) -> httpx.AsyncClient:
        client = self._clients.get(owner)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=ownership.peer_socket(owner))
            timeout = httpx.Timeout(None, connect=5.0)  # the owner answers within its own deadline
            client = httpx.AsyncClient(transport=transport, base_url="http://gradserve-peer", timeout=timeout)
            self._clients[owner] = client
        return client


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def trusted(app: ASGIApp) -> ASGIApp:
    """The app as a peer listener serves it: every request marked FORWARDED."""

    async def from_peer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, FORWARDED: True}
        await app(scope, receive, send)

    return from_peer
