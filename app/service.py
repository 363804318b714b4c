"""What every endpoint does between the request model and the response bytes.

In the API process: cast and size the arrays, parse and build the function (expressions and
graphs, with shape inference), check sizes from static shapes; then one worker computes;
then the arrays are encoded here. A program is only syntax-checked here: it is built by
running it, so in the worker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response

from app import arrays
from app.errors import TooLargeError
from app.pool import Pool
from app.problems import json_pointer
from app.schemas import EvaluateRequest, FunctionSpec, ValidateRequest
from app.settings import Settings
from app.tasks import SizeLimits, Task, check_sizes, intermediate_limit_detail, result_limit_detail
from engine import cost, frontends
from engine.errors import BAD_INPUT, EngineError
from engine.ir import Function, ShapedArray


class Service:
    def __init__(self, settings: Settings, pool: Pool):
        self.settings = settings
        self.pool = pool
        self.sizes = SizeLimits(
            settings.max_result_elements, settings.max_intermediate_elements, settings.max_total_elements
        )
        self.budgets = frontends.Limits(
            max_source_chars=settings.max_source_chars,
            max_depth=settings.max_depth,
            max_nodes=settings.max_nodes,
            max_steps=settings.max_steps,
            max_elements=settings.max_intermediate_elements,
        )
        self.device = "gpu" if settings.backend == "cupy" else "cpu"

    async def compute(self, operation: str, request: EvaluateRequest) -> Response:
        started = time.perf_counter()
        # Building a large function and checking its sizes takes milliseconds to seconds of
        # CPU: off the event loop, so that other requests (and health checks) are answered.
        task = await asyncio.to_thread(self.prepare, operation, request)
        prepared = time.perf_counter()
        outcome = await self.pool.submit(task)
        computed = time.perf_counter()
        body = arrays.encode_tree(outcome.results, request.encoding)
        encoded = time.perf_counter()
        timings = {"prepare": prepared - started, "worker": computed - prepared, "compute": outcome.compute_seconds,
                   "encode": encoded - computed, "total": encoded - started}  # fmt: skip
        body["meta"] = {
            "device": self.device,
            "backend": self.settings.backend,
            "nodes": outcome.nodes,
            **({"mode": outcome.results["mode"]} if "mode" in outcome.results else {}),
            "timings_ms": {name: round(seconds * 1e3, 3) for name, seconds in timings.items()},
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    def prepare(self, operation: str, request: EvaluateRequest) -> Task:
        inputs = {
            name: self._array(a, request.dtype, json_pointer(("inputs", name))) for name, a in request.inputs.items()
        }
        cotangent = getattr(request, "cotangent", None)
        tangents = getattr(request, "tangents", None)
        wrt = getattr(request, "wrt", None)
        task = Task(
            operation=operation,
            inputs=inputs,
            sizes=self.sizes,
            budgets=self.budgets,
            program=request.function.program,
            wrt=tuple(wrt) if wrt is not None else None,
            reduce=getattr(request, "reduce", "none"),
            mode=getattr(request, "mode", "auto"),
            cotangent=None if cotangent is None else self._array(cotangent, request.dtype, "/cotangent"),
            tangents=None if tangents is None else {
                name: self._array(t, request.dtype, json_pointer(("tangents", name))) for name, t in tangents.items()
            },
            backend=self.settings.backend,
        )  # fmt: skip
        if task.program is not None:
            frontends.check_program(task.program, self.budgets)
            return task
        fn = self.build(request.function, {name: _aval(a, request.dtype) for name, a in inputs.items()})
        check_sizes(fn, task)
        _check_extra_shapes(fn, task)
        return replace(task, function=fn)

    def build(self, spec: FunctionSpec, avals: dict[str, ShapedArray]) -> Function:
        if spec.expression is not None:
            return frontends.from_expression(spec.expression, avals, self.budgets)
        return frontends.from_graph(spec.graph.model_dump(), avals, self.budgets)

    def validate(self, request: ValidateRequest) -> dict[str, Any]:
        """Shapes and cost without computing. Sizes over the limits are reported, not refused."""
        avals = {name: _aval(value, request.dtype) for name, value in request.inputs.items()}
        too_large = [f"{json_pointer(('inputs', name))}: {detail}" for name, aval in avals.items()
                     if (detail := self._array_limit_detail(aval.size))]  # fmt: skip
        if request.function.program is not None:
            parameters = frontends.check_program(request.function.program, self.budgets)
            return {"valid": True, "output": None, "cost": None, "parameters": parameters,
                    "within_limits": not too_large, "limit_detail": "; ".join(too_large) or None}  # fmt: skip
        fn = self.build(request.function, avals)
        estimate = cost.estimate(fn, request.operation, wrt=request.wrt, mode=request.mode, reduce=request.reduce)
        too_large += filter(None, [result_limit_detail(estimate.result_elements, self.sizes),
                                   intermediate_limit_detail(estimate, self.sizes)])  # fmt: skip
        summary = asdict(estimate)
        return {"valid": True, "output": summary.pop("output"), "cost": summary,
                "within_limits": not too_large, "limit_detail": "; ".join(too_large) or None}  # fmt: skip

    def _array(self, array: np.ndarray, dtype: str, location: str) -> np.ndarray:
        detail = self._array_limit_detail(array.size)
        if detail:
            raise TooLargeError(detail, location)
        return array.astype(dtype, copy=False) if array.dtype.kind == "f" else array

    def _array_limit_detail(self, size: int) -> str | None:
        if size > self.settings.max_array_elements:
            return f"the array has {size:,} elements; the limit is {self.settings.max_array_elements:,}"
        return None


def _aval(value: np.ndarray | ShapedArray, dtype: str) -> ShapedArray:
    """The shape and dtype of an input, floating ones at the request's precision."""
    aval = value if isinstance(value, ShapedArray) else ShapedArray(tuple(value.shape), value.dtype.name)
    return ShapedArray(aval.shape, dtype) if aval.is_float else aval


def _check_extra_shapes(fn: Function, task: Task) -> None:
    """A cotangent shaped like the output, each tangent like its input: checked here, so that a
    mismatch is answered without a worker."""
    if task.cotangent is not None and task.cotangent.shape != fn.output.aval.shape:
        raise EngineError(BAD_INPUT, f"the cotangent must have the output's shape {list(fn.output.aval.shape)}, "
                          f"got {list(task.cotangent.shape)}", "/cotangent")  # fmt: skip
    avals = fn.input_avals
    for name, tangent in (task.tangents or {}).items():
        if name in avals and tangent.shape != avals[name].shape:
            raise EngineError(BAD_INPUT, f"the tangent of {name!r} must have its shape {list(avals[name].shape)}, "
                              f"got {list(tangent.shape)}", json_pointer(("tangents", name)))  # fmt: skip
