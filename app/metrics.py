"""Prometheus metrics: requests and latency per endpoint, and the pool's state.

Each app has its own registry, so several apps in one process (the tests) do not collide.
"""

from __future__ import annotations

import collections
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app import ownership
from app.dispatch import Dispatcher
from app.pool import Pool
from app.schemas import JOB_STATES
from engine.boundary import BUILT

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Labels come from closed sets: a label taken verbatim from the request would let each made-up
# method (or path) add a series that is never freed.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ENDPOINT = "unmatched"


class _PoolCollector:
    """The pool's labelled figures, read when scraped: restarts by reason, and per admission
    lane the requests admitted and the estimate of a task's seconds."""

    def __init__(self, pool: Pool):
        self.pool = pool

    def collect(self):
        stats = self.pool.stats()
        restarts = CounterMetricFamily("gradserve_worker_restarts", "Workers replaced, by reason", labels=["reason"])
        for reason, count in sorted(stats.restarts.items()):
            restarts.add_metric([reason], count)
        admitted = GaugeMetricFamily("gradserve_lane_admitted", "Requests admitted, by lane", labels=["lane"])
        estimate = GaugeMetricFamily(
            "gradserve_lane_estimate_seconds", "Moving estimate of a task's seconds, by lane", labels=["lane"]
        )
        for lane, (count, seconds) in sorted(stats.lanes.items()):
            admitted.add_metric([lane], count)
            estimate.add_metric([lane], seconds)
        yield from (restarts, admitted, estimate)


class _DispatchCollector:
    """Where requests were computed, how often a built function was found in the cache, and
    the jobs kept, by state."""

    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher

    def collect(self):
        inline = CounterMetricFamily(
            "gradserve_inline_answers", "Requests small enough to be computed in the API process, without a worker"
        )
        inline.add_metric([], self.dispatcher.inline_answers)
        cache = CounterMetricFamily(
            "gradserve_function_cache", "Functions looked up in the cache of built functions", labels=["result"]
        )
        cache.add_metric(["hit"], BUILT.hits)
        cache.add_metric(["miss"], BUILT.misses)
        jobs = GaugeMetricFamily("gradserve_jobs", "Jobs kept, by state", labels=["state"])
        states = collections.Counter(job.state for job in self.dispatcher.jobs.values())
        for state in JOB_STATES:
            jobs.add_metric([state], states[state])
        yield from (inline, cache, jobs)


class Metrics:
    def __init__(self, pool: Pool, dispatcher: Dispatcher):
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
        # With --processes N, a scrape is answered by one API process, which says which: each
        # process's figures are its own (its requests, its share of the workers).
        place = ownership.here()
        process = Gauge("gradserve_api_process", "The API process that answered this scrape (always 1)",
                        ["index", "processes"], registry=self.registry)  # fmt: skip
        process.labels(str(place.index), str(place.processes)).set(1)
        self.registry.register(_PoolCollector(pool))
        self.registry.register(_DispatchCollector(dispatcher))

    def observe(self, route: Any, method: str, status: int, seconds: float) -> None:
        endpoint = endpoint_label(route)
        self.requests.labels(endpoint, method_label(method), str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


def endpoint_label(route: Any) -> str:
    """The matched route's path template; one value for every request that matched none."""
    return getattr(route, "path", None) or UNMATCHED_ENDPOINT


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD
