"""Sizes are refused with 413 before anything is allocated: the body (declared or streamed),
each array, the result and the intermediates (from static shapes, with no worker used)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.api.conftest import assert_problem, b64, serve_in_process

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def small(anyio_backend):
    async with serve_in_process(max_body_bytes=4000, max_array_elements=100) as client:
        yield client


@pytest.fixture
def no_worker(asgi_client, monkeypatch):
    async def refuse(task):
        raise AssertionError("a worker was asked to compute an oversized request")

    monkeypatch.setattr(asgi_client.app.state.dispatcher.pool, "submit", refuse)


async def test_a_jacobian_of_27_trillion_elements_is_refused_at_once(asgi_client, no_worker):
    request = {"function": {"expression": "outer(x, x)"}, "inputs": {"x": b64(np.ones(30_000))}}
    started = time.perf_counter()
    response = await asgi_client.post("/v1/jacobian", json=request)
    assert time.perf_counter() - started < 0.5
    body = assert_problem(response, 413, "too-large")
    assert "27,000,900,000,000" in body["detail"]


async def test_a_result_over_the_limit_is_refused(asgi_client, no_worker):
    request = {"function": {"expression": "outer(x, x)"}, "inputs": {"x": b64(np.ones(30_000))}}
    assert_problem(await asgi_client.post("/v1/evaluate", json=request), 413, "too-large")


async def test_an_intermediate_over_the_limit_is_refused_though_the_result_is_small(asgi_client, no_worker):
    request = {"function": {"expression": "sum(outer(x, x))"}, "inputs": {"x": b64(np.ones(10_000))}}
    body = assert_problem(await asgi_client.post("/v1/evaluate", json=request), 413, "too-large")
    assert "100,000,000" in body["detail"]


async def test_a_program_over_the_result_limit_is_refused_by_its_worker(asgi_client):
    request = {"function": {"program": "def f(x):\n    return outer(x, x)\n"}, "inputs": {"x": b64(np.ones(1000))}}
    assert_problem(await asgi_client.post("/v1/jacobian", json=request), 413, "too-large")


async def test_an_array_over_the_element_limit_is_refused_with_its_location(small):
    request = {"function": {"expression": "sum(x)"}, "inputs": {"x": b64(np.ones(101))}}
    assert_problem(await small.post("/v1/grad", json=request), 413, "too-large", "/inputs/x")
    request = {"function": {"expression": "x * x"}, "inputs": {"x": [1.0]}, "cotangent": b64(np.ones(101))}
    assert_problem(await small.post("/v1/vjp", json=request), 413, "too-large", "/cotangent")


async def test_a_body_declared_too_large_is_refused(small):
    request = {"function": {"expression": "sum(x)"}, "inputs": {"x": [1.0] * 2000}}
    body = assert_problem(await small.post("/v1/grad", json=request), 413, "too-large")
    assert "4,000 bytes" in body["detail"]


async def test_a_body_streamed_past_the_limit_is_refused(small):
    async def chunks():
        yield b'{"function": {"expression": "sum(x)"}, "inputs": {"x": ['
        for _ in range(100):
            yield b"1.0, " * 20
        yield b"1.0]}}"

    response = await small.post("/v1/grad", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "too-large")


async def test_requests_under_the_limits_still_pass(small):
    request = {"function": {"expression": "sum(x)"}, "inputs": {"x": [1.0] * 100}}
    response = await small.post("/v1/grad", json=request)
    assert response.status_code == 200


async def test_validate_reports_an_array_over_the_limit_without_refusing(small):
    request = {"function": {"expression": "sum(x)"}, "inputs": {"x": {"dtype": "float64", "shape": [101]}}}
    body = (await small.post("/v1/validate", json=request)).json()
    assert body["within_limits"] is False and body["limit_detail"].startswith("/inputs/x: ")
    assert body["output"] == {"shape": [], "dtype": "float64"}


async def test_validate_checks_a_program_without_running_it(small):
    request = {"function": {"program": "def f(a, b):\n    while True:\n        pass\n"}, "inputs": {"a": 1.0}}
    body = (await small.post("/v1/validate", json=request)).json()
    assert body["parameters"] == ["a", "b"] and body["output"] is None and body["within_limits"] is True


async def test_too_large_is_one_type_and_title_whichever_side_finds_it(asgi_client):
    """The static check (an expression), the running program (the engine) and the source length
    (the engine's front-end) give the same problem type and title, and write counts with
    thousands separators."""
    x = {"x": b64(np.ones(10_000))}
    static = await asgi_client.post("/v1/evaluate", json={"function": {"expression": "sum(outer(x, x))"}, "inputs": x})
    running = await asgi_client.post(
        "/v1/evaluate", json={"function": {"program": "def f(x):\n    return sum(outer(x, x))\n"}, "inputs": x}
    )
    source = await asgi_client.post("/v1/evaluate", json={"function": {"expression": "x" + " + x" * 5_000},
                                                          "inputs": {"x": 1.0}})  # fmt: skip
    bodies = [assert_problem(response, 413, "too-large") for response in (static, running, source)]
    assert len({body["title"] for body in bodies}) == 1
    assert "100,000,000 elements; the limit is 50,000,000" in bodies[1]["detail"]
    assert "20,001 characters long; the limit is 20,000" in bodies[2]["detail"]
