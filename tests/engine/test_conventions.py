"""Derivatives at non-differentiable points follow PyTorch, and the functions prone to
overflow stay finite and exact for large inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import api, ops
from engine.ir import ShapedArray
from engine.tracing import trace

KINKS = [
    ("relu", ops.relu, torch.relu, [0.0, 1.0, -1.0]),
    ("abs", ops.abs, torch.abs, [0.0, -1.0, 2.0]),
    ("sqrt at zero", ops.sqrt, torch.sqrt, [0.0, 4.0]),
    ("max ties", lambda x: ops.max(x), torch.amax, [1.0, 3.0, 3.0]),
    ("min ties", lambda x: ops.min(x), torch.amin, [2.0, 2.0, 5.0, 2.0]),
    ("norm at zero", lambda x: ops.norm(x), torch.linalg.vector_norm, [0.0, 0.0, 0.0]),
    ("prod with one zero", lambda x: ops.prod(x), torch.prod, [0.0, 2.0, 3.0]),
    ("prod with two zeros", lambda x: ops.prod(x), torch.prod, [0.0, 0.0, 3.0]),
    ("sign", ops.sign, torch.sign, [0.0, -2.0, 3.0]),
    ("maximum ties", lambda x: ops.maximum(x, 1.0), lambda x: torch.maximum(x, torch.tensor(1.0)), [1.0, 2.0, 0.0]),
    ("minimum ties", lambda x: ops.minimum(x, 1.0), lambda x: torch.minimum(x, torch.tensor(1.0)), [1.0, 2.0, 0.0]),
    ("power at zero base", lambda x: x**0.0, lambda x: x**0.0, [0.0, 2.0]),
    ("logsumexp of huge values", lambda x: ops.logsumexp(x), lambda x: torch.logsumexp(x, 0), [1000.0, 1000.0]),
    ("softplus far out", ops.softplus, torch.nn.functional.softplus, [1000.0, -1000.0, 0.0]),
    ("sigmoid far out", ops.sigmoid, torch.sigmoid, [1000.0, -1000.0, 0.0]),
    ("log1p of tiny values", ops.log1p, torch.log1p, [1e-20, -1e-18]),
    ("expm1 of tiny values", ops.expm1, torch.expm1, [1e-20, -1e-18]),
    ("softmax of huge values", lambda x: ops.softmax(x), lambda x: torch.softmax(x, -1), [1000.0, 999.0, -1000.0]),
]


@pytest.mark.parametrize("name, body, reference, values", KINKS, ids=[k[0] for k in KINKS])
def test_value_and_gradient_match_pytorch(name, body, reference, values, backend_name):
    x = np.array(values)
    fn = trace(body, {"x": ShapedArray(x.shape, "float64")})
    value, gradients = api.value_and_grad(fn, {"x": x}, reduce="sum", backend_name=backend_name)
    tensor = torch.tensor(x, requires_grad=True)
    out = reference(tensor)
    out.sum().backward()
    np.testing.assert_allclose(value, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradients["x"], tensor.grad.numpy(), rtol=1e-12)
    assert np.all(np.isfinite(value)) or name == "sqrt at zero"


def test_pow_exponent_gradient_is_zero_where_the_base_is_zero():
    a, b = np.array([0.0, 2.0]), np.array([2.0, 0.0])
    fn = trace(lambda a, b: a**b, {"a": ShapedArray((2,), "float64"), "b": ShapedArray((2,), "float64")})
    _, gradients = api.value_and_grad(fn, {"a": a, "b": b}, reduce="sum")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (ta**tb).sum().backward()
    np.testing.assert_allclose(gradients["a"], ta.grad.numpy())
    np.testing.assert_allclose(gradients["b"], tb.grad.numpy())


@pytest.mark.parametrize(
    "values", [[0.0, 2.0, 3.0, 0.5], [0.0, 0.0, 3.0, 0.5], [0.0, 0.0, 0.0, 2.0], [1.0, 2.0, 3.0, 0.5]]
)
def test_hessian_of_prod_with_zeros_matches_pytorch(values):
    x = np.array(values)
    fn = trace(lambda x: ops.prod(x), {"x": ShapedArray((4,), "float64")})
    _, hessian = api.hessian(fn, {"x": x})
    expected = torch.autograd.functional.hessian(lambda t: t.prod(), torch.tensor(x)).numpy()
    np.testing.assert_allclose(hessian["x"]["x"], expected, rtol=1e-12, atol=1e-15)
    _, gradient = api.value_and_grad(fn, {"x": x})
    tensor = torch.tensor(x, requires_grad=True)
    tensor.prod().backward()
    np.testing.assert_allclose(gradient["x"], tensor.grad.numpy(), rtol=1e-12)
