"""Between a validated request model and the response bytes: the engine prepares the task
(off the event loop), the pool computes it, and the arrays are encoded here.

Everything about the request is checked once, by `engine.operations.prepare`; a program,
which is built by running it, is checked by the engine in the worker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

import orjson
from fastapi.responses import Response

from app import arrays
from app.pool import Pool
from app.schemas import FunctionRequest, ValidateRequest
from app.settings import Settings
from engine import operations
from engine.frontends.inputs import aval_of
from engine.ir import ShapedArray
from engine.operations import Options


class Dispatcher:
    def __init__(self, settings: Settings, pool: Pool):
        self.settings = settings
        self.pool = pool
        self.limits = settings.limits()
        self.device = "gpu" if settings.backend == "cupy" else "cpu"

    async def compute(self, operation: str, request: FunctionRequest) -> Response:
        started = time.perf_counter()
        # Building a large function and checking its sizes takes milliseconds to seconds of
        # CPU: off the event loop, so that other requests (and health checks) are answered.
        task = await asyncio.to_thread(self.prepare, operation, request)
        prepared = time.perf_counter()
        answer = await self.pool.submit(task)
        computed = time.perf_counter()
        body = arrays.encode_tree(answer.fields, request.encoding)
        encoded = time.perf_counter()
        timings = {"prepare": prepared - started, "worker": computed - prepared, "compute": answer.seconds,
                   "encode": encoded - computed, "total": encoded - started}  # fmt: skip
        body["meta"] = {
            "device": self.device,
            "backend": self.settings.backend,
            "nodes": answer.nodes,
            **({"mode": answer.fields["mode"]} if "mode" in answer.fields else {}),
            "timings_ms": {name: round(seconds * 1e3, 3) for name, seconds in timings.items()},
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    def prepare(self, operation: str, request: FunctionRequest) -> operations.Task | operations.ProgramTask:
        extra = operations.lookup(operation).extra
        return operations.prepare(
            request.function.definition(),
            request.inputs,
            operation,
            getattr(request, extra.name) if extra else None,
            _options(request, request.dtype),
            self.limits,
        )

    def validate(self, request: ValidateRequest) -> dict[str, Any]:
        """Shapes and cost without computing. Sizes over the limits are reported, not refused."""
        avals = {name: _aval(value, request.dtype) for name, value in request.inputs.items()}
        described = operations.describe(
            request.function.definition(), avals, request.operation, _options(request), self.limits
        )
        summary = None if described.cost is None else asdict(described.cost)
        return {
            "valid": True,
            "output": summary and summary.pop("output"),
            "cost": summary,
            "parameters": described.parameters,
            "within_limits": described.limit_detail is None,
            "limit_detail": described.limit_detail,
        }


def _options(request: FunctionRequest, dtype: str | None = None) -> Options:
    wrt = getattr(request, "wrt", None)
    return Options(
        wrt=None if wrt is None else tuple(wrt),
        reduce=getattr(request, "reduce", "none"),
        mode=getattr(request, "mode", "auto"),
        dtype=dtype,
    )


def _aval(value: Any, dtype: str) -> ShapedArray:
    """The shape and dtype of an input (sent, or described alone), floating ones at the
    request's precision."""
    aval = value if isinstance(value, ShapedArray) else aval_of(value)
    return ShapedArray(aval.shape, dtype) if aval.is_float else aval
