"""The compute POSTs (`/v1/grad` and every other operation of the registry) answered without
FastAPI's request handling, innermost of the middlewares.

For a small request FastAPI's part (routing through the included routers, the Request object,
dependency solving, its own pass over the body) took more CPU than the gradient itself: about
half of the ~0.65 ms an n=4 gradient cost in the API process (issue 14). None of it shapes
these endpoints' answers: their body is read, checked and validated by `app.bodies` against
the route's own body field, the dispatcher answers a Response (which FastAPI passes on without
validating it against the response model), and their errors are `app.problems`' handlers. So
this layer does those same steps itself, and leaves to FastAPI, which keeps the routes (and so
the OpenAPI document), everything it does not answer: other paths and methods, and a body that
is empty, not JSON, cut short by the client, or stopped by an outer middleware's deadline or
size limit, which FastAPI is handed exactly as it came (`_Replay`) and answers in its own words.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import bodies, problems
from app.dispatch import Dispatcher
from engine.operations import OPERATIONS


class ComputeFastPath:
    def __init__(self, app: ASGIApp, dispatcher: Dispatcher, reader: bodies.BodyReader, routes: Iterable[BaseRoute]):
        self.app = app
        self.dispatcher = dispatcher
        self.reader = reader
        # The FastAPI route of each operation's path: its body field validates the body, and it
        # is what the metrics and the log line are labelled by (as when FastAPI matched it).
        self.routes = {
            route.path: route
            for route in routes
            if getattr(route, "path", None) in _OPERATION_PATHS and "POST" in getattr(route, "methods", ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or scope.get("root_path"):
            # Under a root path FastAPI matches on the path less that prefix: left to it.
            await self.app(scope, receive, send)
            return
        replay = _Replay()
        raw = await replay.read(receive)
        headers = Headers(scope=scope)
        if not raw or not bodies.is_json(headers.get("content-type")):
            await self.app(scope, replay.receive(receive), send)
            return
        del replay  # its chunks of a large body would be a second copy held while computing
        scope["route"] = route
        operation = _OPERATION_PATHS[route.path]
        try:
            request = await self.reader.read(raw, headers.get("content-encoding"), route.body_field)
            response = await self.dispatcher.compute(operation, request)
        except problems.HANDLED as error:
            response = problems.answer(Request(scope), error)
        await response(scope, receive, send)


_OPERATION_PATHS = {f"/v1/{name}": name for name in OPERATIONS}


class _Replay:
    """A request's body read to its end, kept so that the app inside can be handed the same
    messages (and the same failure, if receiving raised) when this layer does not answer."""

    def __init__(self):
        self.messages: list[Message] = []
        self.error: BaseException | None = None

    async def read(self, receive: Receive) -> bytes | None:
        """The whole body, or None when it did not arrive whole (a disconnect, an error)."""
        while True:
            try:
                message = await receive()
            except Exception as error:  # noqa: BLE001 - raised again to FastAPI, which answers it as before
                # (the outer middlewares' deadline, 408, and size limit, 413, are raised here)
                self.error = error
                return None
            self.messages.append(message)
            if message["type"] != "http.request":
                return None
            if not message.get("more_body", False):
                break
        if len(self.messages) == 1:
            return self.messages[0].get("body", b"")
        return b"".join(message.get("body", b"") for message in self.messages)

    def receive(self, receive: Receive) -> Receive:
        pending = list(self.messages)

        async def replayed() -> Message:
            if pending:
                return pending.pop(0)
            if self.error is not None:
                raise self.error
            return await receive()

        return replayed
