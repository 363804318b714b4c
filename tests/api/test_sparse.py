"""Large derivatives over HTTP: sparse formats (checked by building the scipy.sparse matrix
from the response, against PyTorch), compression reported in meta, chunking instead of 413,
a 413 that suggests csr, /v1/validate's pattern, and a chunked request's deadline."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse
import torch

from tests.api.conftest import array, assert_problem, b64, serve_in_process
from tests.api.test_jobs import poll

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(3)


def _matrix(block: dict) -> np.ndarray:
    """The dense matrix scipy.sparse builds from a response's block, as a user would."""
    data = array(block["data"])
    if block["format"] == "csr":
        built = scipy.sparse.csr_array((data, array(block["indices"]), array(block["indptr"])), shape=block["shape"])
    else:
        built = scipy.sparse.coo_array((data, (array(block["row"]), array(block["col"]))), shape=block["shape"])
    return built.toarray()


def _encoded(x: np.ndarray, encoding: str):
    return b64(x) if encoding == "base64" else x.tolist()


@pytest.mark.parametrize("format", ["csr", "coo"])
@pytest.mark.parametrize("encoding", ["json", "base64"])
async def test_a_sparse_hessian_is_the_matrix_scipy_builds(client, format, encoding):
    x = RNG.uniform(0.5, 1.5, 40)
    body = {"function": {"expression": "sum(sin(x[1:] * x[:-1])) + x[0] * sum(x**2)"},
            "inputs": {"x": _encoded(x, encoding)}, "format": format, "encoding": encoding}  # fmt: skip
    response = await client.post("/v1/hessian", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = torch.autograd.functional.hessian(
        lambda t: torch.sin(t[1:] * t[:-1]).sum() + t[0] * (t**2).sum(), torch.tensor(x)
    ).numpy()
    block = answer["hessian"]["x"]["x"]
    assert block["format"] == format and block["shape"] == [40, 40]
    np.testing.assert_allclose(_matrix(block), expected, rtol=1e-12, atol=1e-12)
    sweep = answer["meta"]["sweep"]
    assert sweep["compressed"] and sweep["seeds"] <= 4 and sweep["runs"] == 1


async def test_a_stencil_jacobian_too_large_dense_is_answered_as_csr(client):
    n = 10_000
    x = RNG.uniform(0.5, 1.5, n)
    body = {"function": {"expression": "x[1:] * x[:-1] - x[:-1]"}, "inputs": {"x": _encoded(x, "base64")},
            "encoding": "base64"}  # fmt: skip
    refused = await client.post("/v1/jacobian", json=body)
    assert_problem(refused, 413, "too-large")
    assert 'format "csr"' in refused.json()["detail"]

    response = await client.post("/v1/jacobian", json={**body, "format": "csr"})
    assert response.status_code == 200, response.text
    answer = response.json()
    block = answer["jacobian"]["x"]
    assert block["shape"] == [n - 1, n]
    matrix = scipy.sparse.csr_array(
        (array(block["data"]), array(block["indices"]), array(block["indptr"])), shape=block["shape"]
    )
    rows = np.arange(n - 1)
    np.testing.assert_allclose(matrix[rows, rows], x[1:] - 1, rtol=1e-15)
    np.testing.assert_allclose(matrix[rows, rows + 1], x[:-1], rtol=1e-15)
    assert matrix.nnz == 2 * (n - 1)
    assert answer["meta"]["sweep"]["seeds"] == 2


async def test_validate_reports_the_pattern_and_the_sweep_from_shapes_alone(client):
    body = {"function": {"expression": "sum(sin(x) * x**2)"}, "inputs": {"x": {"dtype": "float64", "shape": [100_000]}},
            "operation": "hessian", "format": "csr"}  # fmt: skip
    response = await client.post("/v1/validate", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["within_limits"] is True
    assert answer["cost"]["sweep"] == {"direction": "hessian", "compressed": True, "seeds": 1, "batch": 1, "runs": 1,
                                       "nonzeros": 100_000, "colors": 1}  # fmt: skip

    dense = await client.post("/v1/validate", json={**body, "format": "dense"})
    assert dense.json()["within_limits"] is False
    assert 'format "csr"' in dense.json()["limit_detail"]


async def test_a_jacobian_past_the_intermediate_limit_is_chunked_not_refused():
    x = RNG.uniform(0.5, 1.5, 300)
    body = {"function": {"expression": "sin(x) * sum(x**2)"}, "inputs": {"x": x.tolist()}, "mode": "forward"}
    async with serve_in_process(max_intermediate_elements=20 * 300) as client:
        response = await client.post("/v1/jacobian", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["meta"]["sweep"] == {"direction": "forward", "compressed": False, "seeds": 300, "batch": 20,
                                       "runs": 15, "nonzeros": 300 * 300, "colors": 300}  # fmt: skip
    expected = torch.autograd.functional.jacobian(lambda t: torch.sin(t) * (t**2).sum(), torch.tensor(x)).numpy()
    np.testing.assert_allclose(array(answer["jacobian"]["x"]), expected, rtol=1e-12)


async def test_a_chunked_request_stops_at_its_deadline_and_the_service_goes_on():
    n = 1_000  # each of the 1,000 runs (one seed vector each) works on a 1,000 x 1,000 outer product
    body = {"function": {"expression": "sum(tanh(outer(x, x)), axis=1) * x"},
            "inputs": {"x": b64(RNG.uniform(0, 1, n))}, "mode": "forward", "encoding": "base64"}  # fmt: skip
    limits = {"max_intermediate_elements": n * n, "max_total_elements": 10**12}
    async with serve_in_process(**limits, deadline_seconds=1.0) as client:
        started = time.monotonic()
        response = await client.post("/v1/jacobian", json=body)
        assert_problem(response, 504, "deadline-exceeded")
        assert time.monotonic() - started < 10
        after = await client.post("/v1/grad", json={"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [1.0]}})
        assert after.status_code == 200 and array(after.json()["gradient"]["x"]) == pytest.approx([4.0])


async def test_a_chunked_job_reports_each_run_as_progress():
    n = 400
    x = RNG.uniform(0.5, 1.5, n)
    body = {"operation": "jacobian", "function": {"expression": "sum(tanh(outer(x, x)), axis=1) * x"},
            "inputs": {"x": b64(x)}, "mode": "forward"}  # fmt: skip
    async with serve_in_process(max_intermediate_elements=20 * n * n) as client:
        submitted = await client.post("/v1/jobs", json=body)
        assert submitted.status_code == 202, submitted.text
        job, seen = await poll(client, submitted.headers["location"])
        assert job["state"] == "done", job
        synchronous = await client.post("/v1/jacobian", json={k: v for k, v in body.items() if k != "operation"})
    assert job["result"]["meta"]["sweep"]["runs"] == 20 and job["progress"] == {"done": 20, "total": 20}
    fractions = [done / total for done, total in seen]
    assert fractions == sorted(fractions)
    np.testing.assert_array_equal(array(job["result"]["jacobian"]["x"]), array(synchronous.json()["jacobian"]["x"]))
