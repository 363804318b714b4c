"""The service on the cupy backend (GRADSERVE_BACKEND=cupy), where a CUDA GPU is present: every
example of the OpenAPI document, a sparse Hessian, arrays large enough for shared memory and a
bad request answer over HTTP as the numpy service answers them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backend import gpu_available
from tests.api.conftest import array, assert_problem, b64, serve_in_process
from tests.api.test_inline import EXAMPLES, without_meta

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="cupy and a CUDA GPU are not available on this machine"),
]

N_SHARED = 100_000  # 800 KB an array: past the shared-memory threshold both ways
MORE_REQUESTS = [
    ("/v1/hessian", {"function": {"expression": "sum(sin(x)*x**2)"}, "format": "csr",
                     "inputs": {"x": np.linspace(-2, 2, 300).tolist()}}),
    ("/v1/jacobian", {"function": {"expression": "x[1:]*x[:-1] - x[:-1]"}, "format": "coo", "mode": "forward",
                      "inputs": {"x": np.linspace(0, 1, 500).tolist()}}),
    ("/v1/grad", {"function": {"expression": "sum(tanh(x)*x)"}, "inputs": {"x": b64(np.linspace(-3, 3, N_SHARED))}}),
]  # fmt: skip


def is_array(value: object) -> bool:
    """A base64 array, or nested lists of numbers (non-finite ones written as strings)."""
    if isinstance(value, dict):
        return {"dtype", "shape", "data"} <= value.keys()
    if isinstance(value, list):
        return all(is_array(item) if isinstance(item, list) else is_number(item) for item in value)
    return False


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) or value in ("NaN", "Infinity", "-Infinity")


def assert_same_arrays(gpu: object, cpu: object, where: str) -> None:
    """Equal structure; arrays equal to rounding (the GPU's sin, exp and sums are not numpy's)."""
    if is_array(cpu):
        expected, got = array(cpu), array(gpu)
        assert got.shape == expected.shape and got.dtype.kind == expected.dtype.kind, where
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=where)
    elif isinstance(cpu, dict):
        assert gpu.keys() == cpu.keys(), where
        for key in cpu:
            assert_same_arrays(gpu[key], cpu[key], f"{where}/{key}")
    elif isinstance(cpu, list):
        assert len(gpu) == len(cpu), where
        for index, (got, expected) in enumerate(zip(gpu, cpu, strict=True)):
            assert_same_arrays(got, expected, f"{where}/{index}")
    else:
        assert gpu == cpu, where


async def answers(backend: str) -> list[dict]:
    async with serve_in_process(backend=backend) as client:
        bodies = []
        for path, body in EXAMPLES + MORE_REQUESTS:
            response = await client.post(path, json={"encoding": "base64", **body})
            assert response.status_code == 200, (path, response.text)
            if backend == "cupy":
                assert response.json()["meta"]["device"] == "gpu"
            bodies.append(without_meta(response.json()))
        return bodies


async def test_the_cupy_service_answers_every_example_as_numpy_does():
    on_gpu, on_cpu = await answers("cupy"), await answers("numpy")
    for (path, _), gpu, cpu in zip(EXAMPLES + MORE_REQUESTS, on_gpu, on_cpu, strict=True):
        assert_same_arrays(gpu, cpu, path)


async def test_the_cupy_service_refuses_bad_input_as_numpy_does_and_keeps_serving():
    async with serve_in_process(backend="cupy") as client:
        bad = {"function": {"expression": "sum(x @ x)"}, "inputs": {"x": [[1.0, 2.0]]}}
        assert_problem(await client.post("/v1/grad", json=bad), 422, "shape")
        good = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [1.0, 2.0]}}
        good = await client.post("/v1/grad", json=good)
        assert good.status_code == 200 and good.json()["gradient"]["x"] == [4.0, 8.0]
