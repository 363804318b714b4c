"""The cupy backend, where a CUDA GPU is present: the same numbers as numpy."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api, ops
from engine.backend import gpu_available
from engine.errors import NUMERIC, EngineError
from engine.ir import ShapedArray
from engine.tracing import trace

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="cupy and a CUDA GPU are not available on this machine"),
]


def test_cupy_gives_numpy_numbers_for_gradients_jacobians_and_hessians():
    rng = np.random.default_rng(0)
    A, x = rng.normal(size=(50, 50)), rng.normal(size=50)
    fn = trace(
        lambda A, x: ops.sum(ops.tanh(A @ x) * x),
        {"A": ShapedArray((50, 50), "float64"), "x": ShapedArray((50,), "float64")},
    )
    inputs = {"A": A, "x": x}
    value, gradients = api.value_and_grad(fn, inputs, backend_name="cupy")
    expected_value, expected_gradients = api.value_and_grad(fn, inputs)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    _, hessian = api.hessian(fn, inputs, backend_name="cupy")
    _, expected_hessian = api.hessian(fn, inputs)
    _, jacobians, _ = api.jacobian(fn, inputs, backend_name="cupy", mode="forward")
    _, expected_jacobians, _ = api.jacobian(fn, inputs, mode="forward")
    for name in inputs:
        np.testing.assert_allclose(gradients[name], expected_gradients[name], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(jacobians[name], expected_jacobians[name], rtol=1e-10, atol=1e-12)
        for other in inputs:
            np.testing.assert_allclose(hessian[name][other], expected_hessian[name][other], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend_name", ["numpy", "cupy"])
def test_a_singular_matrix_is_a_numeric_error_on_cupy_as_on_numpy(backend_name):
    fn = trace(lambda a, b: ops.sum(ops.inv(a) + ops.solve(a, b)), {"a": ShapedArray((2, 2), "float64"),
                                                                    "b": ShapedArray((2,), "float64")})  # fmt: skip
    with pytest.raises(EngineError) as raised:
        api.value_and_grad(fn, {"a": np.ones((2, 2)), "b": np.ones(2)}, backend_name=backend_name)
    assert raised.value.kind == NUMERIC
