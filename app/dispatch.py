"""Between a validated request model and the response bytes: the engine prepares the task
(off the event loop), the pool computes it, and the arrays are encoded here.

Everything about the request is checked once, by `engine.boundary.prepare`; a program,
which is built by running it, is checked by the engine in the worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import orjson
from fastapi.responses import Response

from app import arrays, tracing
from app.admission import LONG, SHORT, Gate
from app.handles import HandleStore
from app.jobs import DONE, Job, JobStore
from app.pool import Pool
from app.schemas import (
    DerivativeFormulaRequest,
    FunctionRequest,
    FunctionSpec,
    LinearizeRequest,
    ProductRequest,
    TraceRequest,
    ValidateRequest,
)
from app.settings import Settings
from app.store import Entry
from engine import boundary, formula, linearize, operations, tasks
from engine import trace as engine_trace
from engine.frontends.inputs import aval_of
from engine.ir import ShapedArray
from engine.linearize import ProductTask
from engine.operations import Options

T = TypeVar("T")


# A function this large takes long to parse and build (seconds for 20,000 graph nodes).
LARGE_GRAPH_NODES = 1_000
LARGE_SOURCE_CHARS = 5_000
# Inline work must also be quick to transform the first time (before the transform is cached).
INLINE_OPERATIONS = 200


class Dispatcher:
    def __init__(self, settings: Settings, pool: Pool):
        self.settings = settings
        self.pool = pool
        self.limits = settings.limits()
        self.device = "gpu" if settings.backend == "cupy" else "cpu"
        self.inline_answers = 0  # requests computed in this process, not in a worker
        self.handles = HandleStore(settings.handles_max_count, settings.handles_max_bytes, settings.handles_ttl_seconds)
        self.jobs = JobStore(settings.jobs_max_count, settings.jobs_max_bytes, settings.jobs_ttl_seconds)
        # Preparing is CPU work in this process: bounded like the pool's, and large functions
        # one at a time, so that a flood of them cannot hold up small requests (or validate).
        waiting = settings.workers + settings.queue_size
        self._preparing = {
            SHORT: Gate("prepared", settings.prepare_threads, waiting),
            LONG: Gate("prepared (large functions, one at a time)", 1, waiting),
        }

    async def _prepared(self, function: FunctionSpec, work: Callable[[], T], inputs: dict | None = None) -> T:
        """`work` (parsing, building, checking) off the event loop, so that other requests and
        health checks are answered meanwhile, through the gate for the function's size. A short
        function of few input elements is prepared (and computed, when small) here instead:
        that takes tens of microseconds once built, less than a thread's handoff (~0.5 ms)."""
        if inputs is not None and _quick(function, inputs):
            return work()
        async with self._preparing[_preparation_lane(function)].enter():
            return await asyncio.to_thread(work)

    async def compute(self, operation: str, request: FunctionRequest) -> Response:
        started = time.perf_counter()
        task, answer = await self._prepared(
            request.function, lambda: self._prepare_small_inline(operation, request), _arrays_sent(operation, request)
        )
        prepared = time.perf_counter()
        if answer is None:
            answer = await self.pool.submit(task)
        return self._respond(answer, request.encoding, started, prepared)

    async def start_job(self, operation: str, request: FunctionRequest) -> Entry[Job]:
        """Prepare and admit as `compute` does (their refusals are answered at once), then
        compute in a task of the job's own, which outlives the request that made it."""
        started = time.perf_counter()
        task, answer = await self._prepared(request.function, lambda: self._prepare_small_inline(operation, request))
        prepared = time.perf_counter()
        entry = self.jobs.add(operation)
        if answer is not None:
            self.jobs.finish(entry, DONE, bytes(self._respond(answer, request.encoding, started, prepared).body))
            return entry

        async def compute(admitted: Callable[[], None]) -> bytes:
            answer = await self.pool.submit(
                task, progress=entry.value.advance, deadline_seconds=self.settings.job_deadline_seconds,
                admitted=admitted,
            )  # fmt: skip
            return bytes(self._respond(answer, request.encoding, started, prepared).body)

        admitted = self.jobs.start(entry, compute)
        running = entry.value.task
        await asyncio.wait([admitted, running], return_when=asyncio.FIRST_COMPLETED)
        if not admitted.done() and running.done() and not running.cancelled() and running.exception():
            raise running.exception()  # refused by admission: the job was dropped
        return entry

    async def trace(self, request: TraceRequest) -> Response:
        started = time.perf_counter()
        task, answer = await self._prepared(request.function, lambda: self._prepare_trace(request), request.inputs)
        prepared = time.perf_counter()
        if answer is None:
            answer = await self.pool.submit(task)
        return self._respond(answer, request.encoding, started, prepared, tracing.encode)

    async def linearize(self, request: LinearizeRequest) -> Response:
        """Linearize in a worker (the forward pass is the primal's work), then keep the
        linearization here, under a new handle."""
        started = time.perf_counter()
        definition, options = request.function.definition(), _options(request, request.dtype)
        task = await self._prepared(
            request.function, lambda: linearize.prepare(definition, request.inputs, options, self.limits)
        )
        prepared = time.perf_counter()
        answer = await self.pool.submit(task)
        handle = self.handles.add(answer.fields.pop("linearization"))
        answer.fields["handle"] = {"id": handle.id, "expires_at": handle.expires_at_text}
        return self._respond(answer, request.encoding, started, prepared)

    async def product(self, handle_id: str, product: str, request: ProductRequest) -> Response:
        started = time.perf_counter()
        linearization = self.handles.get(handle_id).value
        extra = operations.lookup(product).extra
        task = linearization.product(product, getattr(request, extra.name), self.limits)
        prepared = time.perf_counter()
        answer = task.run(self.settings.backend) if self._small(task) else await self.pool.submit(task)
        return self._respond(answer, request.encoding, started, prepared)

    def _respond(
        self,
        answer: tasks.Answer,
        encoding: str,
        started: float,
        prepared: float,
        encode: Callable[[dict, str], dict] = arrays.encode_tree,
    ) -> Response:
        computed = time.perf_counter()
        body = encode(answer.fields, encoding)
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
        if answer.verification is not None:
            body["meta"]["verification"] = answer.verification
        if answer.sweep is not None:
            body["meta"]["sweep"] = answer.sweep
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    def _prepare_small_inline(
        self, operation: str, request: FunctionRequest
    ) -> tuple[tasks.Task | tasks.ProgramTask, tasks.Answer | None]:
        """The task, and its answer when it is small enough to compute here, in the thread that
        prepared it: the worker's round trip would cost more than the work. Only expressions and
        graphs qualify, whose static cost bounds their time (a program can loop)."""
        task = self.prepare(operation, request)
        if self._small(task):
            self.inline_answers += 1
            return task, task.run(self.settings.backend)
        return task, None

    def _small(self, task: tasks.Task | tasks.ProgramTask | ProductTask | engine_trace.TraceTask) -> bool:
        if isinstance(task, tasks.ProgramTask) or task.estimate is None or self.settings.backend != "numpy":
            return False
        return (
            task.estimate.total_intermediate <= self.settings.inline_work_elements
            and task.estimate.operations <= INLINE_OPERATIONS
        )

    def _prepare_trace(self, request: TraceRequest) -> tuple[engine_trace.TraceTask, tasks.Answer | None]:
        """The trace's task, and its answer when it is small (as `_prepare_small_inline`'s)."""
        definition, options = request.function.definition(), _options(request, request.dtype)
        task = engine_trace.prepare(definition, request.inputs, options, request.summarize_above, self.limits)
        if self._small(task):
            self.inline_answers += 1
            return task, task.run(self.settings.backend)
        return task, None

    def prepare(self, operation: str, request: FunctionRequest) -> tasks.Task | tasks.ProgramTask:
        extra = operations.lookup(operation).extra
        return boundary.prepare(
            request.function.definition(),
            request.inputs,
            operation,
            getattr(request, extra.name) if extra else None,
            _options(request, request.dtype),
            self.limits,
        )

    async def derivative_formulas(self, request: DerivativeFormulaRequest) -> Response:
        """The derivative as text (engine.formula): symbolic work on shapes alone, done here."""
        started = time.perf_counter()
        avals = {name: _aval(value, request.dtype) for name, value in request.inputs.items()}
        wrt = None if request.wrt is None else tuple(request.wrt)
        definition = request.function.definition()
        formulas = await self._prepared(
            request.function,
            lambda: formula.derivative_formulas(definition, avals, wrt, request.order, request.reduce, self.limits),
        )
        body: dict[str, Any] = {
            "of": formulas.of,
            "derivative": {name: {source.kind: source.text} for name, source in formulas.formulas.items()},
        }
        if formulas.vectors:
            body["vectors"] = formulas.vectors
        total_ms = round((time.perf_counter() - started) * 1e3, 3)
        body["meta"] = {"nodes": formulas.nodes, "timings_ms": {"total": total_ms}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def validate(self, request: ValidateRequest) -> dict[str, Any]:
        """Shapes and cost without computing. Sizes over the limits are reported, not refused."""
        avals = {name: _aval(value, request.dtype) for name, value in request.inputs.items()}
        definition, options = request.function.definition(), _options(request)
        described = await self._prepared(
            request.function,
            lambda: boundary.describe(definition, avals, request.operation, options, self.limits),
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
    # A request model has the fields of its operation's options only. Read from the model's
    # __dict__ (where pydantic keeps the fields): getattr of an absent one goes through
    # pydantic's __getattr__ and an AttributeError, ~4 us each (two or three a request).
    fields = request.__dict__
    wrt = fields.get("wrt")
    return Options(
        wrt=None if wrt is None else tuple(wrt),
        reduce=fields.get("reduce", "none"),
        mode=fields.get("mode", "auto"),
        dtype=dtype,
        verify=fields.get("verify", False),
        format=fields.get("format", "dense"),
    )


# Prepared on the event loop: an expression or graph this small, of inputs this small (a build
# is cached; a first build or transform of a function this short takes a few milliseconds).
# Preparing does little per element (a cast to float32 at most), and computing inline, within
# `inline_work_elements`, takes a few milliseconds at most on inputs this size (the gradient of
# a 256x256 matmul, ~2.5 ms): about as long as reading their JSON body in place (app.bodies),
# where a thread's handoff costs ~0.3-0.5 ms (issue 14: 2*dot(x, x) of 1e5 floats, ~0.1 ms).
QUICK_SOURCE_CHARS = 500
QUICK_GRAPH_NODES = 50
QUICK_INPUT_ELEMENTS = 1 << 17


def _quick(function: FunctionSpec, inputs: dict) -> bool:
    if function.program is not None:
        return False
    if function.graph is not None:
        small = len(function.graph.nodes) <= QUICK_GRAPH_NODES
    else:
        small = len(function.expression) <= QUICK_SOURCE_CHARS
    return small and sum(getattr(value, "size", 1) for value in inputs.values()) <= QUICK_INPUT_ELEMENTS


def _arrays_sent(operation: str, request: FunctionRequest) -> dict:
    """The inputs, and the extra input of the operation (a tangent or cotangent), by name."""
    extra = operations.lookup(operation).extra
    sent = getattr(request, extra.name) if extra else None
    if isinstance(sent, dict):
        return {**request.inputs, **{f"{extra.name}:{name}": value for name, value in sent.items()}}
    return request.inputs if sent is None else {**request.inputs, extra.name: sent}


def _preparation_lane(function: FunctionSpec) -> str:
    if function.graph is not None:
        return LONG if len(function.graph.nodes) > LARGE_GRAPH_NODES else SHORT
    source = function.expression if function.expression is not None else function.program
    return LONG if len(source) > LARGE_SOURCE_CHARS else SHORT


def _aval(value: Any, dtype: str) -> ShapedArray:
    """The shape and dtype of an input (sent, or described alone), floating ones at the
    request's precision."""
    aval = value if isinstance(value, ShapedArray) else aval_of(value)
    return ShapedArray(aval.shape, dtype) if aval.is_float else aval
