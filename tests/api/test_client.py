"""gradserve.client against a real `gradserve serve`: every method in both encodings, float64
exactly, a 503 retried after its Retry-After, problems raised with their fields, jobs started,
waited for and cancelled; the async client likewise; and the package imports nothing of the
service."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from app import examples
from gradserve import (
    AsyncClient,
    Client,
    FunctionError,
    GradserveConnectionError,
    GradserveError,
    OverloadedError,
    TooLargeError,
)
from gradserve.client import Job, Summary
from tests.api.conftest import ROOT, TYPE_BASE, serving_in_thread

X = np.array([0.1, 1 / 3, 2.0, -7.25])  # not exact in decimal: float64 must round-trip bit for bit
ENCODINGS = ["base64", "json"]


@pytest.fixture(params=ENCODINGS)
def client(request, server_url):
    with Client(server_url, encoding=request.param) as client:
        yield client


def test_evaluate_returns_float64_bit_for_bit(client):
    result = client.evaluate("x * 1", {"x": X})
    assert result.value.dtype == np.float64
    np.testing.assert_array_equal(result.value, X)
    assert result.meta["device"] == "cpu"


def test_grad_of_two_dot_x_x_is_four_x(client):
    result = client.grad("2*dot(x, x)", {"x": [0, 1, 2, 3]})
    np.testing.assert_array_equal(result.gradient["x"], [0.0, 4.0, 8.0, 12.0])
    assert result.value == 28.0 and result.jvp is None


def test_grad_with_reduce_sum_and_wrt(client):
    result = client.grad("a * (a + b)", {"a": X, "b": 2 * X}, wrt=["a"], reduce="sum")
    np.testing.assert_array_equal(result.value, X * (X + 2 * X))
    assert list(result.gradient) == ["a"]
    np.testing.assert_allclose(result.gradient["a"], 2 * X + 2 * X, rtol=1e-15)


def test_vjp_is_backward_with_a_head_gradient(client):
    result = client.vjp("x * x", {"x": X}, [1.0, 0.5, 0.25, 2.0])
    np.testing.assert_array_equal(result.vjp["x"], 2 * X * [1.0, 0.5, 0.25, 2.0])


def test_jvp_is_the_directional_derivative(client):
    result = client.jvp("sin(x) * x**2", {"x": X}, {"x": np.ones(4)})
    np.testing.assert_allclose(result.jvp, np.cos(X) * X**2 + 2 * X * np.sin(X), rtol=1e-14)


def test_jacobian_says_its_mode(client):
    result = client.jacobian("softmax(x)", {"x": [1.0, 2.0, 3.0]}, mode="forward")
    s = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(result.jacobian["x"], np.diag(s) - np.outer(s, s), atol=1e-15)
    assert result.mode == "forward"


@pytest.mark.parametrize("format", ["csr", "coo"])
def test_a_sparse_hessian_and_jacobian_are_scipy_sparse_arrays(client, format):
    x = np.linspace(0.5, 2.0, 30)
    result = client.hessian("sum(sin(x[1:] * x[:-1]))", {"x": x}, format=format)
    block = result.hessian["x"]["x"]
    assert block.format == format and block.shape == (30, 30)
    products = x[1:] * x[:-1]
    off_diagonal = np.cos(products) - products * np.sin(products)
    np.testing.assert_allclose(block.toarray().diagonal(1), off_diagonal, rtol=1e-13)
    assert result.meta["sweep"]["colors"] == 3
    jacobian = client.jacobian("x[1:] - x[:-1]", {"x": x}, format=format).jacobian["x"]
    np.testing.assert_array_equal(jacobian.toarray(), np.eye(29, 30, 1) - np.eye(29, 30))


def test_hessian_of_the_quadratic_form(client):
    A = np.array(examples.A)
    result = client.hessian(examples.QUADRATIC_FORM, {"x": [1.0, 2.0], "A": A}, wrt="x")
    np.testing.assert_array_equal(result.hessian["x"]["x"], A + A.T)


def test_hvp_of_the_sum_gives_f_prime_and_f_second(client):
    result = client.hvp("sin(x)", {"x": X}, {"x": np.ones(4)}, reduce="sum")
    np.testing.assert_allclose(result.gradient["x"], np.cos(X), rtol=1e-15)
    np.testing.assert_allclose(result.hvp["x"], -np.sin(X), rtol=1e-15)


def test_validate_takes_shapes_alone(client):
    answer = client.validate("outer(x, x)", {"x": {"dtype": "float64", "shape": [30000]}}, operation="jacobian")
    assert answer["valid"] and not answer["within_limits"]


def test_trace_of_a_graph_and_a_program(client):
    traced = client.trace(examples.CSC321_GRAPH, {"a": 2.0, "b": 3.0})
    assert [(node.id, float(node.adjoint)) for node in traced.nodes] == [("%0", 7.0), ("%1", 2.0), ("%2", 2.0),
                                                                        ("%3", 1.0)]  # fmt: skip
    assert traced["%2"].location == "node 'c'" and traced.output == "%3" and "digraph" in traced.dot
    program = client.trace(examples.CONTROL_FLOW_PROGRAM, {"a": 0.3})
    assert program.nodes[1].line == 2 and program.nodes[2].adjoint is None
    summarised = client.trace("x * x", {"x": np.linspace(0, 1, 100)}, reduce="sum", summarize_above=10)
    assert isinstance(summarised.nodes[0].value, Summary) and summarised.nodes[0].value.max == 1.0


def test_a_problem_is_raised_with_its_fields(client):
    with pytest.raises(FunctionError) as raised:
        client.grad("2 * (x +", {"x": X})
    error = raised.value
    assert (error.type, error.kind, error.status) == (TYPE_BASE + "syntax", "syntax", 422)
    assert error.location == "offset 4" and "never closed" in error.detail and error.request_id
    with pytest.raises(TooLargeError) as raised:
        client.jacobian("outer(x, x)", {"x": np.zeros(3000)})
    assert raised.value.status == 413 and "limit" in raised.value.detail


def test_an_unreachable_service_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as client, pytest.raises(GradserveConnectionError):
        client.evaluate("x", {"x": 1.0})


@contextmanager
def the_one_connection_held(port: int, seconds: float) -> Iterator[None]:
    """Holds the one connection a server with max_connections=1 allows, for `seconds` at most."""
    held = socket.create_connection(("127.0.0.1", port))
    release = threading.Timer(seconds, held.close)
    release.start()
    try:
        yield
    finally:
        release.cancel()
        held.close()


def test_a_503_is_retried_after_its_retry_after():
    with serving_in_thread(max_connections=1) as port, the_one_connection_held(port, 0.3):
        started = time.monotonic()
        with Client(f"http://127.0.0.1:{port}") as client:
            result = client.grad("sum(x * x)", {"x": X})
    np.testing.assert_array_equal(result.gradient["x"], 2 * X)
    assert time.monotonic() - started >= 0.9  # the refusal's Retry-After: 1 was waited


def test_a_503_past_the_retries_is_raised():
    with serving_in_thread(max_connections=1) as port, the_one_connection_held(port, 30.0):
        with Client(f"http://127.0.0.1:{port}", max_retries=1, max_retry_wait=0.1) as client:
            with pytest.raises(OverloadedError) as raised:
                client.evaluate("x", {"x": 1.0})
    assert raised.value.status == 503 and raised.value.type == TYPE_BASE + "overloaded"


# A program is computed by a worker, never in the API process: a job that takes a while.
SLOW_PROGRAM = "def f(x):\n    i = 0\n    while i < 20000:\n        i = i + 1\n    return sum(sin(x) * x * x)\n"
# Seconds of work a step (sin of 1e5 elements) within the default step budget: cancelled long before its end.
LONG_PROGRAM = "def f(x):\n    i = 0\n    while i < 30000:\n        x = sin(x)\n        i = i + 1\n    return x\n"


def test_a_job_gives_the_operations_result(client):
    job = client.jobs.hessian(SLOW_PROGRAM, {"x": X}, format="csr")
    assert isinstance(job, Job) and job.operation == "hessian" and job.state in ("queued", "running", "done")
    result = client.wait(job, timeout=60)
    direct = client.hessian(SLOW_PROGRAM, {"x": X}, format="csr")
    np.testing.assert_array_equal(result.hessian["x"]["x"].toarray(), direct.hessian["x"]["x"].toarray())
    np.testing.assert_allclose(result.hessian["x"]["x"].toarray(), np.diag(2 * np.sin(X) + 4 * X * np.cos(X)
                                                                           - X * X * np.sin(X)))  # fmt: skip
    finished = client.job(job.id)
    assert finished.state == "done" and finished.progress[0] == finished.progress[1] and finished.expires_at


def test_a_failed_job_raises_its_problem_and_a_cancelled_one_says_so(client):
    failed = client.jobs.grad("def f(x):\n    return x * x\n", {"x": X})
    with pytest.raises(FunctionError) as raised:
        client.wait(failed, timeout=60)
    assert raised.value.kind == "not-scalar"

    endless = client.jobs.evaluate(LONG_PROGRAM, {"x": np.zeros(100_000)})
    with pytest.raises(TimeoutError, match="still"):
        client.wait(endless, timeout=0.3)
    cancelled = client.cancel(endless)
    assert cancelled.state == "cancelled" and client.job(endless).state == "cancelled"
    with pytest.raises(GradserveError, match="cancelled"):
        client.wait(endless)


@pytest.mark.anyio
async def test_the_async_client_runs_a_job(server_url):
    async with AsyncClient(server_url) as client:
        job = await client.jobs.grad(SLOW_PROGRAM, {"x": X})
        polled = await client.job(job)
        assert polled.id == job.id and polled.progress[0] <= polled.progress[1]
        result = await client.wait(job, timeout=60)
        np.testing.assert_allclose(result.gradient["x"], 2 * X * np.sin(X) + X * X * np.cos(X))


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_the_async_client_answers_every_method(server_url, encoding):
    async with AsyncClient(server_url, encoding=encoding) as client:
        assert (await client.evaluate("x * 1", {"x": X})).value.tolist() == X.tolist()
        np.testing.assert_array_equal((await client.grad("sum(x * x)", {"x": X})).gradient["x"], 2 * X)
        np.testing.assert_array_equal((await client.vjp("x * x", {"x": X}, np.ones(4))).vjp["x"], 2 * X)
        np.testing.assert_array_equal((await client.jvp("x * x", {"x": X}, {"x": np.ones(4)})).jvp, 2 * X)
        np.testing.assert_array_equal((await client.jacobian("x * x", {"x": X})).jacobian["x"], np.diag(2 * X))
        np.testing.assert_array_equal((await client.hessian("sum(x * x)", {"x": X})).hessian["x"]["x"], 2 * np.eye(4))
        np.testing.assert_array_equal((await client.hvp("sum(x * x)", {"x": X}, {"x": X})).hvp["x"], 2 * X)
        assert (await client.validate("x", {"x": X}))["output"] == {"shape": [4], "dtype": "float64"}
        assert float((await client.trace("2 * x", {"x": 1.5})).nodes[0].adjoint) == 2.0
        with pytest.raises(FunctionError) as raised:
            await client.grad("x * x", {"x": X})
        assert raised.value.kind == "not-scalar" and "reduce" in raised.value.detail


@pytest.mark.anyio
async def test_the_async_client_retries_a_503():
    with serving_in_thread(max_connections=1) as port, the_one_connection_held(port, 0.3):
        started = time.monotonic()
        async with AsyncClient(f"http://127.0.0.1:{port}") as client:
            result = await client.evaluate("x + 1", {"x": X})
    np.testing.assert_array_equal(result.value, X + 1)
    assert time.monotonic() - started >= 0.9


def test_the_client_imports_nothing_of_the_service():
    code = (
        "import sys, gradserve.client, gradserve.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'app', 'engine', 'fastapi', 'pydantic', 'uvicorn'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
