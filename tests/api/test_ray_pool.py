"""The pool's cases under trouble (tests/api/test_pool.py) with the Ray executor, on a local
Ray instance of two CPUs: a worker killed mid-request, a deadline overrun, a full pool; and
the same numbers as the local pool's."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import ray

from app import examples
from engine.boundary import prepare
from tests.api.conftest import array, assert_problem, b64, serve_in_process
from tests.api.test_jobs import poll, until_state
from tests.api.test_pool import ENDLESS_STEPS, FOREVER, THROUGH_THE_POOL, TWO_DOT, assert_serves, restarts, until

pytestmark = [pytest.mark.anyio, pytest.mark.ray]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """Ray on this machine, two CPU slots, no GPU, shared by the module's apps."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def serve_on_ray(**settings):
    return serve_in_process(executor="ray", **THROUGH_THE_POOL, **settings)


def actor_pids() -> set[int]:
    """Pids of this process's descendants that are gradserve's worker actors (Ray titles an
    actor's process `ray::WorkerActor`, then `ray::WorkerActor.run` while it computes)."""
    children: dict[int, list[int]] = {}
    titles: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            titles[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, pending = set(), [os.getpid()]
    while pending:
        for child in children.get(pending.pop(), []):
            pending.append(child)
            if titles.get(child, b"").startswith(b"ray::WorkerActor"):
                found.add(child)
    return found


async def test_a_worker_killed_mid_request_fails_only_that_request():
    async with serve_on_ray(workers=1, queue_size=1, deadline_seconds=60, max_steps=ENDLESS_STEPS) as client:
        (actor,) = actor_pids()
        pool = client.app.state.pool
        running = asyncio.create_task(client.post("/v1/evaluate", json=FOREVER))
        await until(lambda: pool.stats().busy == 1)
        waiting = asyncio.create_task(client.post("/v1/grad", json=TWO_DOT))
        await until(lambda: pool.stats().queued == 1)

        os.kill(actor, signal.SIGKILL)

        body = assert_problem(await running, 500, "worker-crashed")
        assert "replaced" in body["detail"]
        response = await waiting  # queued behind the dead actor, run by its replacement
        assert response.status_code == 200
        np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), [0.0, 4.0, 8.0, 12.0])
        await assert_serves(client)
        assert actor not in actor_pids()
        assert restarts((await client.get("/metrics")).text, "crash") == 1


async def test_an_idle_worker_killed_is_replaced():
    async with serve_on_ray(workers=1) as client:
        (actor,) = actor_pids()
        os.kill(actor, signal.SIGKILL)
        await assert_serves(client)  # whether or not Ray has noticed the death yet
        assert (await client.get("/readyz")).status_code == 200
        assert actor not in actor_pids()


async def test_a_computation_past_the_deadline_is_stopped_and_answered_504():
    # The next request's deadline covers starting the replacement actor: 3 s leaves it room.
    async with serve_on_ray(workers=1, deadline_seconds=3, max_steps=ENDLESS_STEPS) as client:
        (actor,) = actor_pids()
        body = assert_problem(await client.post("/v1/evaluate", json=FOREVER), 504, "deadline-exceeded")
        assert "3 s" in body["detail"]
        await assert_serves(client)
        assert restarts((await client.get("/metrics")).text, "deadline") == 1
        assert actor not in actor_pids()


async def test_a_full_pool_answers_503_with_retry_after():
    async with serve_on_ray(workers=1, queue_size=0, deadline_seconds=3, max_steps=ENDLESS_STEPS) as client:
        pool = client.app.state.pool
        running = asyncio.create_task(client.post("/v1/evaluate", json=FOREVER))
        await until(lambda: pool.stats().busy == 1)

        response = await client.post("/v1/grad", json=TWO_DOT)
        assert_problem(response, 503, "overloaded")
        assert int(response.headers["retry-after"]) >= 1
        assert "gradserve_busy_workers 1.0" in (await client.get("/metrics")).text

        assert_problem(await running, 504, "deadline-exceeded")
        await assert_serves(client)


async def test_a_job_on_ray_is_done_and_one_cancelled_frees_its_actor():
    async with serve_on_ray(workers=1, max_steps=ENDLESS_STEPS) as client:
        done = await client.post("/v1/jobs", json={"operation": "grad", **TWO_DOT})
        job, seen = await poll(client, done.headers["location"])
        assert job["state"] == "done" and seen[-1] == (1, 1)
        assert job["result"]["gradient"]["x"] == [0.0, 4.0, 8.0, 12.0]

        (actor,) = actor_pids()
        started = await client.post("/v1/jobs", json={"operation": "evaluate", **FOREVER})
        await until_state(client, started.headers["location"], "running")
        cancelled = await client.delete(started.headers["location"])
        assert cancelled.json()["state"] == "cancelled"
        await assert_serves(client)
        assert actor not in actor_pids()


REQUESTS = [
    ("grad", TWO_DOT),
    ("grad", {"function": {"program": examples.DETACH_PROGRAM}, "inputs": {"x": [0.0, 1.0, 2.0, 3.0]}}),
    ("grad", {"function": {"program": examples.CONTROL_FLOW_PROGRAM}, "inputs": {"a": -1.7}}),
    ("jacobian", {"function": {"expression": "tanh(matmul(W, v))"},
                  "inputs": {"W": [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], "v": [0.2, -0.4, 0.9]}}),
    ("hessian", examples.HESSIAN["quadratic_form"]["value"]),
    ("jvp", examples.JVP["directional"]["value"]),
    ("vjp", {"function": {"expression": "x * x"}, "inputs": {"x": [0.0, 1.0, 2.0]}, "cotangent": [0.5, -1.0, 2.0]}),
    ("evaluate", {"function": {"expression": "log(x)"}, "inputs": {"x": [-1.0, 0.0, 1.0]}}),
    ("grad", {"function": {"expression": "x + undefined_name"}, "inputs": {"x": 1.0}}),  # a 422
]  # fmt: skip


async def answers(client) -> list[tuple[int, dict]]:
    found = []
    for endpoint, request in REQUESTS:
        response = await client.post(f"/v1/{endpoint}", json=request)
        body = response.json()
        body.get("meta", {}).pop("timings_ms", None)
        body.pop("request_id", None)
        found.append((response.status_code, body))
    return found


async def test_answers_equal_the_local_pools():
    async with serve_in_process(workers=1, **THROUGH_THE_POOL) as client:
        local = await answers(client)
    async with serve_on_ray(workers=1) as client:
        on_ray = await answers(client)
    assert [status for status, _ in local][-1] == 422
    assert on_ray == local


async def test_a_linearization_made_by_an_actor_serves_products_in_the_api():
    function = {"expression": "sum(tanh(x @ W))"}
    inputs = {"x": [[0.1, 0.2], [0.3, -0.4]], "W": [[1.0, -0.5], [0.25, 2.0]]}
    async with serve_on_ray(workers=1) as client:
        linearized = await client.post("/v1/linearize", json={"function": function, "inputs": inputs})
        assert linearized.status_code == 200, linearized.text
        handle = linearized.json()["handle"]["id"]
        through = await client.post(f"/v1/linearize/{handle}/vjp", json={"cotangent": 1.5})
        direct = await client.post("/v1/vjp", json={"function": function, "inputs": inputs, "cotangent": 1.5})
    assert through.status_code == 200, through.text
    for name in inputs:
        np.testing.assert_allclose(array(through.json()["vjp"][name]), array(direct.json()["vjp"][name]), rtol=1e-12)


async def test_large_arrays_travel_through_the_object_store():
    x = np.linspace(-1.0, 1.0, 1_000_000)
    request = {"function": {"expression": "sum(sin(x) * x)"}, "inputs": {"x": b64(x)}, "encoding": "base64"}
    async with serve_on_ray(workers=1) as client:
        response = await client.post("/v1/grad", json=request)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(array(response.json()["gradient"]["x"]), np.cos(x) * x + np.sin(x), rtol=1e-12)


def test_a_tasks_arrays_reach_a_worker_in_place_not_copied():
    """What the pool puts in the object store comes back as read-only views of it, not copies."""
    task = prepare({"expression": "sum(x * y)"}, {"x": np.arange(100_000.0), "y": np.ones(100_000)}, "grad")
    readonly = ray.get(ray.remote(lambda task: [not a.flags.writeable for a in task.arguments]).remote(ray.put(task)))
    assert readonly == [True, True]
