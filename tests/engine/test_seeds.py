"""The seed texts' examples, written with engine ops, against PyTorch's autograd."""

from __future__ import annotations

import numpy as np
import torch

from engine import api, ops
from engine.ir import ShapedArray
from engine.tracing import trace


def _function(body, **shapes):
    return trace(body, {name: ShapedArray(shape, "float64") for name, shape in shapes.items()})


def _torch_gradients(reference, arrays: dict, reduce_sum: bool = False):
    tensors = {n: torch.tensor(a, requires_grad=True) for n, a in arrays.items()}
    out = reference(**tensors)
    (out.sum() if reduce_sum else out).backward()
    return out.detach().numpy(), {n: t.grad.numpy() for n, t in tensors.items()}


def _check(fn, reference, arrays, reduce_sum=False):
    value, gradients = api.value_and_grad(fn, arrays, reduce="sum" if reduce_sum else "none")
    expected_value, expected = _torch_gradients(reference, arrays, reduce_sum)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for name in arrays:
        np.testing.assert_allclose(gradients[name], expected[name], rtol=1e-12, atol=1e-14)
    return gradients


def test_gradient_of_two_x_dot_x_is_four_x():
    x = np.arange(4.0)
    gradients = _check(_function(lambda x: 2 * ops.dot(x, x), x=(4,)), lambda x: 2 * torch.dot(x, x), {"x": x})
    np.testing.assert_array_equal(gradients["x"], 4 * x)


def test_gradient_of_sum_is_ones():
    gradients = _check(_function(lambda x: ops.sum(x), x=(4,)), torch.sum, {"x": np.arange(4.0)})
    np.testing.assert_array_equal(gradients["x"], np.ones(4))


def test_gradient_of_sum_of_squares_and_reduce_sum_of_squares_are_two_x():
    x = np.arange(4.0)
    _check(_function(lambda x: ops.sum(x * x), x=(4,)), lambda x: torch.sum(x * x), {"x": x})
    value, gradients = api.value_and_grad(_function(lambda x: x * x, x=(4,)), {"x": x}, reduce="sum")
    np.testing.assert_array_equal(value, x * x)
    np.testing.assert_array_equal(gradients["x"], 2 * x)


def test_grad_of_detach_treats_u_as_constant():
    x = np.arange(4.0)
    fn = _function(lambda x: ops.sum(ops.detach(x * x) * x), x=(4,))
    gradients = _check(fn, lambda x: torch.sum((x * x).detach() * x), {"x": x})
    np.testing.assert_array_equal(gradients["x"], x * x)


def test_mean_of_three_times_x_plus_two_squared_at_ones():
    fn = _function(lambda x: ops.mean(3 * (x + 2) ** 2), x=(2, 2))
    gradients = _check(fn, lambda x: torch.mean(3 * (x + 2) ** 2), {"x": np.ones((2, 2))})
    np.testing.assert_allclose(gradients["x"], np.full((2, 2), 4.5))


def test_cubic_polynomial_slope_at_one_and_a_half():
    fn = _function(lambda x: 3 * x**3 - 5 * x**2, x=())
    gradients = _check(fn, lambda x: 3 * x**3 - 5 * x**2, {"x": np.array(1.5)})
    np.testing.assert_allclose(gradients["x"], 5.25)


def test_product_rule_of_a_times_a_plus_b():
    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.25, -1.0])
    fn = _function(lambda a, b: a * (a + b), a=(3,), b=(3,))
    gradients = _check(fn, lambda a, b: a * (a + b), {"a": a, "b": b}, reduce_sum=True)
    np.testing.assert_allclose(gradients["a"], 2 * a + b)
    np.testing.assert_allclose(gradients["b"], a)


def test_log_sin_reciprocal():
    x = np.array([0.5, 1.5, -2.0, 3.0])
    fn = _function(lambda x: ops.log(x**2) * ops.sin(x) + 1 / x, x=(4,))
    _check(fn, lambda x: torch.log(x**2) * torch.sin(x) + 1 / x, {"x": x}, reduce_sum=True)


def test_quadratic_form_gradient_is_a_plus_a_transpose_times_x():
    rng = np.random.default_rng(0)
    x, A = rng.normal(size=3), rng.normal(size=(3, 3))
    fn = _function(lambda x, A: x @ A @ x, x=(3,), A=(3, 3))
    gradients = _check(fn, lambda x, A: x @ A @ x, {"x": x, "A": A})
    np.testing.assert_allclose(gradients["x"], (A + A.T) @ x, rtol=1e-12)


def test_logdet_gradient_is_inverse_transpose():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    fn = _function(lambda A: ops.logdet(A), A=(3, 3))
    gradients = _check(fn, lambda A: torch.logdet(A), {"A": A})
    np.testing.assert_allclose(gradients["A"], np.linalg.inv(A).T, rtol=1e-12)


def test_trace_of_product_gradient_is_b_transpose():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(3, 4)), rng.normal(size=(4, 3))
    fn = _function(lambda A, B: ops.trace(A @ B), A=(3, 4), B=(4, 3))
    gradients = _check(fn, lambda A, B: torch.trace(A @ B), {"A": A, "B": B})
    np.testing.assert_allclose(gradients["A"], B.T, rtol=1e-12)


def test_backward_with_a_head_gradient_is_a_vjp():
    x, head = np.arange(4.0), np.array([1.0, 0.1, 0.01, 0.001])
    fn = _function(lambda x: x * x, x=(4,))
    value, cotangents = api.vjp(fn, {"x": x}, head)
    tensor = torch.tensor(x, requires_grad=True)
    (tensor * tensor).backward(torch.tensor(head))
    np.testing.assert_allclose(cotangents["x"], tensor.grad.numpy())
    np.testing.assert_array_equal(value, x * x)
