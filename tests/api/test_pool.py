"""The worker pool under trouble: a worker killed mid-request, a computation past the
deadline, a full pool. Each is answered with a problem, and the next request succeeds."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from bench.server import spawned_children
from tests.api.conftest import array, assert_problem, serve_in_process

pytestmark = pytest.mark.anyio

FOREVER = {"function": {"program": "def f(x):\n    while True:\n        pass\n    return x\n"}, "inputs": {"x": 1.0}}
TWO_DOT = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [0.0, 1.0, 2.0, 3.0]}}
ENDLESS_STEPS = 10**9  # so that only the deadline or a kill stops FOREVER
# Small expressions are computed in the API process; these tests are about the workers.
THROUGH_THE_POOL = {"inline_work_elements": 0}


async def until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def assert_serves(client) -> None:
    response = await client.post("/v1/grad", json=TWO_DOT)
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), [0.0, 4.0, 8.0, 12.0])


def restarts(metrics: str, reason: str) -> float:
    prefix = f'gradserve_worker_restarts_total{{reason="{reason}"}}'
    return float(next(row for row in metrics.splitlines() if row.startswith(prefix)).split()[-1])


async def test_a_worker_killed_mid_request_fails_only_that_request():
    before = spawned_children(os.getpid())
    async with serve_in_process(
        workers=1, queue_size=1, deadline_seconds=60, max_steps=ENDLESS_STEPS, **THROUGH_THE_POOL
    ) as client:
        (worker,) = spawned_children(os.getpid()) - before
        pool = client.app.state.pool
        running = asyncio.create_task(client.post("/v1/evaluate", json=FOREVER))
        await until(lambda: pool.stats().busy == 1)
        waiting = asyncio.create_task(client.post("/v1/grad", json=TWO_DOT))
        await until(lambda: pool.stats().queued == 1)

        os.kill(worker, signal.SIGKILL)

        body = assert_problem(await running, 500, "worker-crashed")
        assert "replaced" in body["detail"]
        response = await waiting  # queued behind the dead worker, run by its replacement
        assert response.status_code == 200
        np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), [0.0, 4.0, 8.0, 12.0])
        await assert_serves(client)
        assert worker not in spawned_children(os.getpid())
        assert restarts((await client.get("/metrics")).text, "crash") == 1


async def test_an_idle_worker_killed_is_replaced():
    before = spawned_children(os.getpid())
    async with serve_in_process(workers=1, **THROUGH_THE_POOL) as client:
        (worker,) = spawned_children(os.getpid()) - before
        os.kill(worker, signal.SIGKILL)
        await assert_serves(client)  # whether or not pebble has noticed the death yet
        assert (await client.get("/readyz")).status_code == 200
        assert worker not in spawned_children(os.getpid())


async def test_a_computation_past_the_deadline_is_stopped_and_answered_504():
    # The next request's deadline covers the replacement worker's start (imports take a second
    # or more on a busy machine): 3 s leaves it room.
    async with serve_in_process(workers=1, deadline_seconds=3, max_steps=ENDLESS_STEPS, **THROUGH_THE_POOL) as client:
        body = assert_problem(await client.post("/v1/evaluate", json=FOREVER), 504, "deadline-exceeded")
        assert "3 s" in body["detail"]
        await assert_serves(client)
        assert restarts((await client.get("/metrics")).text, "deadline") == 1


async def test_a_full_pool_answers_503_with_retry_after():
    async with serve_in_process(
        workers=1, queue_size=0, deadline_seconds=2, max_steps=ENDLESS_STEPS, **THROUGH_THE_POOL
    ) as client:
        pool = client.app.state.pool
        running = asyncio.create_task(client.post("/v1/evaluate", json=FOREVER))
        await until(lambda: pool.stats().busy == 1)

        response = await client.post("/v1/grad", json=TWO_DOT)
        assert_problem(response, 503, "overloaded")
        assert int(response.headers["retry-after"]) >= 1
        metrics = (await client.get("/metrics")).text
        assert "gradserve_busy_workers 1.0" in metrics

        assert_problem(await running, 504, "deadline-exceeded")
        await assert_serves(client)


def _chain_graph(length: int) -> dict:
    """sin, cos, tanh, exp and a product with x, repeated: a large but valid graph."""
    functions = ["sin", "cos", "tanh", "exp"]
    nodes = [{"id": "n0", "op": "sin", "args": ["x"]}]
    for i in range(1, length):
        step = (
            {"op": "multiply", "args": [f"n{i - 1}", "x"]}
            if i % 5 == 0
            else {"op": functions[i % 4], "args": [f"n{i - 1}"]}
        )
        nodes.append({"id": f"n{i}", **step})
    nodes.append({"id": "out", "op": "sum", "args": [f"n{length - 1}"]})
    return {"inputs": ["x"], "nodes": nodes, "output": "out"}


async def test_a_large_function_does_not_stall_other_requests():
    """Building a 20,000-node graph and differentiating it twice takes seconds: that work is
    off the event loop (building) and in a worker (transforming), so a health check is
    answered meanwhile and the request itself ends at its deadline."""
    body = {"function": {"graph": _chain_graph(19_990)}, "inputs": {"x": [0.1, 0.2, 0.3]}}
    async with serve_in_process(deadline_seconds=3) as client:
        heavy = asyncio.create_task(client.post("/v1/hessian", json=body))
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        assert (await client.get("/healthz")).status_code == 200
        assert asyncio.get_running_loop().time() - started < 1.0
        response = await heavy
        assert response.status_code in (200, 504), response.text
        await assert_serves(client)
