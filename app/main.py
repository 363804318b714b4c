"""The application: `create_app(settings)` builds it, its lifespan starts and stops the worker
pool, and `app` is the one uvicorn serves by default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import threadpoolctl
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import middleware, problems, security, worker
from app.bodies import BodyReader
from app.dispatch import Dispatcher
from app.fastpath import ComputeFastPath
from app.metrics import Metrics
from app.pool import LocalPool, Pool
from app.routes import catalogue, compute, docs, formula, health, jobs, linearize, playground, trace
from app.schemas import Problem
from app.settings import Settings
from engine import backend

VERSION = "1.0.0"
DESCRIPTION = """Values, gradients, Jacobians, vector-Jacobian and Jacobian-vector products, Hessians and
Hessian-vector products of a function given as an expression, a computational graph or a small
Python program, computed by gradserve's own automatic differentiation engine.

Errors are RFC 9457 problem details (`application/problem+json`) with a stable `type` URI per kind:
`https://gradserve.dev/problems/<kind>`. Sizes over the limits are refused with 413 before anything is
computed; a full pool answers 503 with `Retry-After`; a computation past the deadline is stopped and
answered 504 (`deadline-exceeded`)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    pool = make_pool(settings)
    dispatcher = Dispatcher(settings, pool)
    metrics = Metrics(pool, dispatcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            # The array namespace takes ~70 ms to import; pay it now, not in the first request.
            backend.host()
            # Small requests computed in this process run as a worker's do: on worker_threads
            # BLAS threads (OpenBLAS's own threads would spin on every core the server shares),
            # with the memory one frees kept for the next.
            threadpoolctl.threadpool_limits(limits=settings.worker_threads)
            worker.keep_freed_memory()
            await pool.start()
            yield
        finally:
            await dispatcher.jobs.cancel_all()
            pool.close()

    app = FastAPI(
        title="gradserve",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,
    )
    app.state.pool = pool
    app.state.metrics = metrics
    app.state.dispatcher = dispatcher
    app.state.bodies = BodyReader(settings.limits(), settings.max_body_bytes)
    problems.install(app)
    # Added first, so innermost: the compute POSTs pass every middleware as before.
    app.add_middleware(ComputeFastPath, dispatcher=dispatcher, reader=app.state.bodies, routes=compute.router.routes)
    middleware.install(app, metrics, settings)
    for module in (compute, jobs, trace, linearize, formula, catalogue, health):
        app.include_router(module.router)
    if settings.metrics_port is None:
        app.include_router(health.metrics_router)
    docs.install(app)
    playground.install(app)
    app.openapi = lambda: _openapi(app, settings)
    return app


def make_pool(settings: Settings) -> Pool:
    """The worker pool that `settings.executor` names."""
    if settings.executor == "ray":
        from app.ray_pool import RayPool  # Ray is an optional extra: imported only when chosen

        return RayPool(settings)
    return LocalPool(settings)


def metrics_app(metrics: Metrics) -> FastAPI:
    """/metrics alone, for the listener on `metrics_port`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.metrics = metrics
    app.include_router(health.metrics_router)
    return app


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document, plus the Problem schema that every error response refers to, and
    the security options in force."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )  # fmt: skip
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schema["components"]["schemas"].update(problem.pop("$defs", {}))
        schema["components"]["schemas"]["Problem"] = problem
        _document_access(schema, settings)
        app.openapi_schema = schema
    return app.openapi_schema


def _document_access(schema: dict[str, Any], settings: Settings) -> None:
    """API keys and the rate limit in the document, when they are on: with the security
    schemes declared, Swagger UI's Authorize button sends the key with each try."""
    refusals = {}
    if settings.api_keys:
        schema["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        }
        schema["security"] = [{"apiKey": []}, {"bearer": []}]
        refusals["401"] = problems.problem_response_doc("unauthorized: no API key, or not one of the service's")
    if settings.rate_limit_per_second:
        refusals["429"] = problems.problem_response_doc("rate-limited: over the rate limit; see Retry-After")
    for path, item in schema["paths"].items():
        for operation in item.values():
            if not security.is_open(path):
                operation["responses"].update(refusals)
            elif settings.api_keys:
                operation["security"] = []


app = create_app()
