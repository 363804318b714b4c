"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import MetricsDep, PoolDep
from app.errors import NotReadyError
from app.problems import problem_response_doc
from app.schemas import Health

router = APIRouter(tags=["operations"])
# Its own router, so that /metrics can be served on a port of its own (`metrics_port`).
metrics_router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness", operation_id="healthz",
            description="200 while the process serves HTTP.")  # fmt: skip
def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    description="200 once the worker pool has started and is alive; 503 (not-ready) before that.",
    responses={503: problem_response_doc("not-ready")},
    operation_id="readyz",
)
def readyz(pool: PoolDep) -> dict:
    if not pool.check():
        raise NotReadyError("the worker pool is starting or restarting", retry_after=1)
    return {"status": "ready"}


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Requests and latency per endpoint, queue depth, busy workers and worker restarts, in the "
    "Prometheus text format.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "metrics"}},
    operation_id="metrics",
)
def metrics(service_metrics: MetricsDep) -> Response:
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
