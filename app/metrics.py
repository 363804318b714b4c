"""Prometheus metrics: requests and latency per endpoint, and the pool's state.

Each app has its own registry, so several apps in one process (the tests) do not collide.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.pool import Pool

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _RestartCollector:
    def __init__(self, pool: Pool):
        self.pool = pool

    def collect(self):
        family = CounterMetricFamily("gradserve_worker_restarts", "Workers replaced, by reason", labels=["reason"])
        for reason, count in sorted(self.pool.stats().restarts.items()):
            family.add_metric([reason], count)
        yield family


class Metrics:
    def __init__(self, pool: Pool):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gradserve_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gradserve_request_duration_seconds", "Time to answer a request", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        queue = Gauge("gradserve_queue_depth", "Requests admitted and waiting for a worker", registry=self.registry)
        queue.set_function(lambda: pool.stats().queued)
        busy = Gauge("gradserve_busy_workers", "Workers computing a request", registry=self.registry)
        busy.set_function(lambda: pool.stats().busy)
        workers = Gauge("gradserve_workers", "Worker processes in the pool", registry=self.registry)
        workers.set_function(lambda: pool.stats().workers)
        self.registry.register(_RestartCollector(pool))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


class MetricsMiddleware:
    """Counts every response, labelled by the route's path template (not the raw path, so
    that unknown URLs do not make a label each)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(endpoint, scope["method"], status, time.perf_counter() - started)
