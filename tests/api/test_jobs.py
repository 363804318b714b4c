"""Jobs over HTTP: 202 and a Location, polled to the body the synchronous endpoint gives
(both encodings), progress that never goes back, cancellation that frees the worker, the
store's bounds (expiry, 503 when full), a client that leaves, and the same 422 as the endpoint."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import numpy as np
import pytest

from app.jobs import DONE, Job, JobStore
from app.settings import Settings
from bench.server import spawned_children
from engine.tasks import Answer
from tests.api.conftest import array, assert_problem, b64, serve_in_process, serving_in_thread
from tests.api.test_responses import assert_documented

pytestmark = pytest.mark.anyio

X = [0.5, -1.0, 2.0]
# Programs are computed by the workers (never in the API process): the path a job takes.
PROGRAMS = {
    "grad": "def f(x):\n    return sum(sin(x) * x)\n",
    "hessian": "def f(x):\n    return sum(sin(x) * x * x)\n",
    "jacobian": "def f(x):\n    return sin(x) * x[0]\n",
}
RESULTS = {"grad": "gradient", "hessian": "hessian", "jacobian": "jacobian"}
FOREVER = {"function": {"program": "def f(x):\n    while True:\n        pass\n    return x\n"}, "inputs": {"x": 1.0}}
# About a second of program steps, then an answer.
SLOW = {"function": {"program": "def f(x):\n    i = 0\n    while i < 20000:\n        i = i + 1\n    return x * x\n"},
        "inputs": {"x": 3.0}}  # fmt: skip
TWO_DOT = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [0.0, 1.0, 2.0, 3.0]}}
ENDLESS_STEPS = 10**9


async def poll(client: httpx.AsyncClient, location: str, timeout: float = 30.0) -> tuple[dict, list[tuple[int, int]]]:
    """The job once finished, and the progress seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(location)
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append((job["progress"]["done"], job["progress"]["total"]))
        if job["state"] in ("done", "failed", "cancelled"):
            return job, seen
        assert time.monotonic() < deadline, f"the job did not finish: {job}"
        await asyncio.sleep(0.02)


async def until_state(client: httpx.AsyncClient, location: str, state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (job := (await client.get(location)).json())["state"] != state:
        assert time.monotonic() < deadline, f"the job is {job['state']}, not {state}"
        await asyncio.sleep(0.02)
    return job


@pytest.mark.parametrize("encoding", ["json", "base64"])
@pytest.mark.parametrize("operation", ["jacobian", "hessian", "grad"])
async def test_a_job_gives_the_body_of_the_synchronous_endpoint(asgi_client, operation, encoding):
    inputs = {"x": b64(X) if encoding == "base64" else X}
    request = {"function": {"program": PROGRAMS[operation]}, "inputs": inputs, "encoding": encoding}
    started = await asgi_client.post("/v1/jobs", json={"operation": operation, **request})
    assert started.status_code == 202, started.text
    assert_documented("post", "/v1/jobs", started)
    accepted = started.json()
    assert started.headers["location"] == f"/v1/jobs/{accepted['id']}" == accepted["links"]["self"]
    assert accepted["operation"] == operation and accepted["state"] in ("queued", "running", "done")

    job, seen = await poll(asgi_client, started.headers["location"])
    assert_documented("get", "/v1/jobs/{job_id}", await asgi_client.get(started.headers["location"]))
    assert job["state"] == "done", job
    assert job["finished_at"].endswith("Z") and job["expires_at"].endswith("Z")
    fractions = [done / total for done, total in seen]
    assert fractions == sorted(fractions) and seen[-1][0] == seen[-1][1]
    assert all(0 <= done <= total for done, total in seen)

    direct = (await asgi_client.post(f"/v1/{operation}", json=request)).json()
    result = job["result"]
    assert set(result) == set(direct) and set(result["meta"]) == set(direct["meta"])
    derivative, expected = result[RESULTS[operation]]["x"], direct[RESULTS[operation]]["x"]
    if operation == "hessian":  # pairs: {"x": {"x": ...}}
        derivative, expected = derivative["x"], expected["x"]
    if encoding == "base64":
        assert result["value"]["dtype"] == "float64" and "data" in derivative
    np.testing.assert_array_equal(array(result["value"]), array(direct["value"]))
    np.testing.assert_array_equal(array(derivative), array(expected))
    assert np.abs(array(derivative)).sum() > 0


async def test_a_small_expression_job_is_done_at_once(asgi_client):
    started = await asgi_client.post("/v1/jobs", json={"operation": "grad", **TWO_DOT})
    assert started.status_code == 202 and started.json()["state"] == "done"
    assert started.json()["progress"] == {"done": 1, "total": 1}
    assert started.json()["result"]["gradient"]["x"] == [0.0, 4.0, 8.0, 12.0]


async def test_cancelling_a_running_job_frees_its_worker():
    before = spawned_children(os.getpid())
    async with serve_in_process(workers=1, inline_work_elements=0, max_steps=ENDLESS_STEPS) as client:
        (worker,) = spawned_children(os.getpid()) - before
        started = await client.post("/v1/jobs", json={"operation": "evaluate", **FOREVER})
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        running = await until_state(client, location, "running")
        assert running["progress"] == {"done": 0, "total": 1}

        cancelled = await client.delete(location)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled" and "result" not in cancelled.json()
        assert (await client.get(location)).json()["state"] == "cancelled"
        again = await client.delete(location)  # a finished job is left as it is
        assert again.status_code == 200 and again.json()["state"] == "cancelled"

        began = time.monotonic()
        response = await client.post("/v1/grad", json=TWO_DOT)
        assert response.status_code == 200, response.text
        assert time.monotonic() - began < 15  # the replacement worker's start, not a deadline
        assert 'gradserve_jobs{state="cancelled"} 1.0' in (await client.get("/metrics")).text
        assert response.json()["gradient"]["x"] == [0.0, 4.0, 8.0, 12.0]
        assert worker not in spawned_children(os.getpid())


async def test_a_job_past_its_deadline_fails_with_the_endpoints_problem():
    async with serve_in_process(
        workers=1, inline_work_elements=0, max_steps=ENDLESS_STEPS, deadline_seconds=0.5, job_deadline_seconds=1.5
    ) as client:
        started = await client.post("/v1/jobs", json={"operation": "evaluate", **FOREVER})
        job, _ = await poll(client, started.headers["location"])
        assert job["state"] == "failed" and "result" not in job
        problem = job["problem"]
        assert problem["type"].endswith("/deadline-exceeded") and problem["status"] == 504
        assert "1.5 s" in problem["detail"]
        # A job's time is not a request's: synchronous admission's estimate did not take it.
        assert client.app.state.pool._admission.lanes["long"].estimate_seconds < 0.5


async def test_a_job_whose_function_fails_in_the_worker_reports_the_problem(asgi_client):
    body = {"operation": "grad", "function": {"program": "def f(x):\n    return x\n"}, "inputs": {"x": [1.0, 2.0]}}
    started = await asgi_client.post("/v1/jobs", json=body)
    job, _ = await poll(asgi_client, started.headers["location"])
    direct = await asgi_client.post("/v1/grad", json={k: v for k, v in body.items() if k != "operation"})
    expected = assert_problem(direct, 422, "not-scalar")
    assert job["state"] == "failed"
    assert {k: job["problem"][k] for k in ("type", "title", "status", "detail")} == {
        k: expected[k] for k in ("type", "title", "status", "detail")
    }


async def test_an_unknown_job_is_a_404_problem(asgi_client):
    assert_problem(await asgi_client.get("/v1/jobs/no-such-job"), 404, "job-not-found")
    assert_problem(await asgi_client.delete("/v1/jobs/no-such-job"), 404, "job-not-found")
    refused = assert_problem(await asgi_client.put("/v1/jobs/no-such-job"), 405, "method-not-allowed")
    assert refused and (await asgi_client.put("/v1/jobs/x")).headers["allow"] == "DELETE, GET"


async def test_a_finished_job_expires():
    async with serve_in_process(jobs_ttl_seconds=60) as client:
        now = [1_000_000.0]
        client.app.state.dispatcher.jobs.clock = lambda: now[0]
        started = await client.post("/v1/jobs", json={"operation": "grad", **TWO_DOT})
        location = started.headers["location"]
        assert (await client.get(location)).json()["state"] == "done"
        now[0] += 59
        assert (await client.get(location)).status_code == 200
        now[0] += 2
        assert_problem(await client.get(location), 404, "job-not-found")


async def test_a_store_full_of_unfinished_jobs_refuses_with_retry_after():
    async with serve_in_process(workers=1, inline_work_elements=0, max_steps=ENDLESS_STEPS, jobs_max_count=1) as client:
        first = await client.post("/v1/jobs", json={"operation": "evaluate", **FOREVER})
        assert first.status_code == 202
        refused = await client.post("/v1/jobs", json={"operation": "grad", **TWO_DOT})
        assert_problem(refused, 503, "overloaded")
        assert int(refused.headers["retry-after"]) >= 1
        assert (await client.delete(first.headers["location"])).json()["state"] == "cancelled"
        # A finished job gives way to a new one.
        second = await client.post("/v1/jobs", json={"operation": "grad", **TWO_DOT})
        assert second.status_code == 202, second.text
        job, _ = await poll(client, second.headers["location"])
        assert job["result"]["gradient"]["x"] == [0.0, 4.0, 8.0, 12.0]
        assert_problem(await client.get(first.headers["location"]), 404, "job-not-found")


def test_a_job_survives_its_client_leaving():
    with serving_in_thread(max_steps=ENDLESS_STEPS) as port:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as leaving:
            started = leaving.post("/v1/jobs", json={"operation": "grad", **SLOW})
            assert started.status_code == 202, started.text
            location = started.headers["location"]
        with httpx.Client(base_url=url, timeout=30) as later:
            deadline = time.monotonic() + 60
            while (job := later.get(location).json())["state"] not in ("done", "failed", "cancelled"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    assert job["state"] == "done", job
    assert job["result"]["gradient"]["x"] == 6.0


@pytest.mark.parametrize(
    "body",
    [
        {"function": {"expression": "x"}, "inputs": {"x": [1.0, [2.0]]}},
        {"function": {"expression": "x"}, "inputs": {"x": 1.0}, "wrt": "x"},
        {"function": {"expression": "x"}, "inputs": {"x": 1.0}, "unknown": 1},
        {"function": {"expression": "2 * (x +"}, "inputs": {"x": [1.0]}},
        {"function": {"expression": "x * x"}, "inputs": {"x": [1.0, 2.0]}},
    ],
    ids=["ragged", "wrt-not-a-list", "unknown-field", "syntax", "not-scalar"],
)
async def test_a_bad_body_is_the_endpoints_problem(asgi_client, body):
    direct = await asgi_client.post("/v1/grad", json=body)
    job = await asgi_client.post("/v1/jobs", json={"operation": "grad", **body})
    assert direct.status_code >= 400
    assert job.status_code == direct.status_code, job.text
    assert_documented("post", "/v1/jobs", job)
    strip = lambda problem: {k: v for k, v in problem.items() if k != "request_id"}  # noqa: E731
    assert strip(job.json()) == strip(direct.json())


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"function": {"expression": "x"}}, "required"),
        ({"operation": "gradient", "function": {"expression": "x"}}, "one of"),
        ({"operation": {}, "function": {"expression": "x"}}, "one of"),
    ],
)
async def test_the_operation_must_be_named(asgi_client, body, detail):
    problem = assert_problem(await asgi_client.post("/v1/jobs", json=body), 422, "invalid-request", "/operation")
    assert detail in problem["detail"]


def test_progress_never_goes_back():
    job = Job("grad", 0.0)
    job.advance(0, 1)
    assert job.state == "running" and (job.done, job.total) == (0, 1)
    job.advance(3, 10)
    job.advance(2, 10)  # late, out of order: ignored
    assert (job.done, job.total) == (3, 10)
    job.advance(10, 10)
    assert (job.done, job.total) == (10, 10)


class Steps:
    """A task that reports each of its steps, as the engine will chunk by chunk (pickled to
    a worker by reference: this module is importable there)."""

    estimate = None

    def __init__(self, steps: int, seconds: float):
        self.steps, self.seconds = steps, seconds

    def run(self, backend_name: str = "numpy", progress=None) -> Answer:
        for step in range(1, self.steps + 1):
            time.sleep(self.seconds)
            if progress is not None:
                progress(step, self.steps)
        return Answer({"value": np.float64(self.steps)}, 0, self.steps * self.seconds)


async def test_progress_crosses_from_the_worker_step_by_step():
    async with serve_in_process(workers=1) as client:
        pool = client.app.state.pool
        seen: list[tuple[int, int]] = []
        answer = await pool.submit(Steps(5, 0.2), progress=lambda done, total: seen.append((done, total)))
        assert answer.fields["value"] == 5
        assert seen[0] == (0, 1)  # the worker started it
        assert seen[-1] == (5, 5)
        assert {(2, 5), (3, 5), (4, 5)} & set(seen)  # seen while it ran, not only at the end
        assert [d / t for d, t in seen] == sorted(d / t for d, t in seen)
        assert len(pool._free_slots) == Settings().jobs_max_count  # the slot was given back
        # Without a callback, no slot and no reports.
        assert (await pool.submit(Steps(2, 0.01))).fields["value"] == 2


def test_finished_jobs_are_held_to_the_byte_bound_and_unfinished_ones_are_kept():
    now = [0.0]
    store = JobStore(max_count=3, max_bytes=100, ttl_seconds=10, clock=lambda: now[0])
    first, second = store.add("grad"), store.add("grad")
    store.finish(first, DONE, b"x" * 60)
    store.finish(second, DONE, b"y" * 60)  # over the bytes: the least recently used finished job goes
    assert len(store) == 1 and store.bytes == 60 and store.get(second.id).value.result == b"y" * 60
    running = [store.add("grad"), store.add("grad"), store.add("grad")]  # the third evicts second
    assert len(store) == 3 and store.bytes == 0
    with pytest.raises(Exception) as full:  # all unfinished: nothing may go
        store.add("grad")
    assert getattr(full.value, "kind", None) == "overloaded" and full.value.retry_after >= 1
    assert all(store.get(entry.id).value.state == "queued" for entry in running)
    now[0] += 1e9  # unfinished jobs never expire
    assert all(store.get(entry.id) for entry in running)
