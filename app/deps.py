"""What route handlers depend on, as FastAPI dependencies: the objects the app's factory
made, so that a handler names what it needs instead of reaching into `app.state`. They are
coroutines only because FastAPI runs a plain function dependency in a thread, a hop that
costs more than the lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.dispatch import Dispatcher
from app.metrics import Metrics
from app.pool import Pool


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


async def get_pool(request: Request) -> Pool:
    return request.app.state.pool


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
PoolDep = Annotated[Pool, Depends(get_pool)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
