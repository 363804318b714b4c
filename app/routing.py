"""How JSON bodies reach the endpoints: read by app.bodies (checked from their bytes, parsed
with orjson, off the event loop when large), then handed to FastAPI's handler as one model."""

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from app import bodies


class OrjsonRequest(Request):
    """A request whose JSON body app.bodies reads (orjson, off the event loop when large) and
    validates before FastAPI's handler runs; FastAPI's own validation of the model it is handed
    back is then a no-op. The endpoints of an OrjsonRoute take their body as one model."""

    async def read_body(self, model: Any) -> None:
        raw = await self.body()
        # The same condition as FastAPI's for parsing a body: otherwise it answers (415, 422).
        if raw and bodies.is_json(self.headers.get("content-type")):
            self._json = await self.app.state.bodies.read(raw, self.headers.get("content-encoding"), model)

    async def json(self) -> Any:
        return self._json


class OrjsonRoute(APIRoute):
    def body_model(self) -> Any:
        """What validates the body: FastAPI's field of the endpoint's body model."""
        return self.body_field

    def get_route_handler(self):
        handler = super().get_route_handler()
        model = self.body_model()

        async def handle(request: Request):
            request = OrjsonRequest(request.scope, request.receive)
            if model is not None:
                await request.read_body(model)
            return await handler(request)

        return handle
