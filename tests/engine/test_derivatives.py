"""Every primitive, forward and reverse, first and second order, against central finite
differences and against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import api, ops
from engine.ir import ShapedArray
from engine.tracing import trace
from engine.transforms import vjp_call
from tests.engine.cases import CASES, PIECEWISE_CONSTANT, RULE_CASES
from tests.engine.helpers import build, finite_difference_jacobians, named, torch_call, torch_jacobians

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
by_id = pytest.mark.parametrize("case", CASES + RULE_CASES, ids=[c.id for c in CASES + RULE_CASES])


@by_id
def test_value_matches_torch(case, backend_name):
    fn = build(case.engine, case.shapes)
    arrays = case.inputs()
    expected, _ = torch_call(case.reference, arrays)
    actual = api.evaluate(fn, named(fn, arrays), backend_name=backend_name)
    np.testing.assert_allclose(actual, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert actual.shape == fn.output.aval.shape


@by_id
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_jacobian_matches_torch_and_finite_differences(case, mode, backend_name):
    fn = build(case.engine, case.shapes)
    arrays = case.inputs()
    _, jacobians, used = api.jacobian(fn, named(fn, arrays), mode=mode, backend_name=backend_name)
    assert used == mode
    references = torch_jacobians(case.reference, arrays)
    differences = finite_difference_jacobians(fn, arrays)
    for name, reference, difference in zip(fn.input_names, references, differences):
        np.testing.assert_allclose(jacobians[name], reference, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(jacobians[name], difference, **TOLERANCE)


@by_id
def test_jvp_and_vjp_are_adjoint(case, backend_name):
    """<v, J u> = <J^T v, u>, and J u matches a finite difference along u."""
    fn = build(case.engine, case.shapes)
    arrays = case.inputs()
    rng = np.random.default_rng(1)
    tangents = {name: rng.normal(size=a.shape) for name, a in zip(fn.input_names, arrays)}
    cotangent = rng.normal(size=fn.output.aval.shape)
    inputs = named(fn, arrays)
    _, pushed = api.jvp(fn, inputs, tangents, backend_name=backend_name)
    _, pulled = api.vjp(fn, inputs, cotangent, backend_name=backend_name)
    left = np.sum(cotangent * pushed)
    right = sum(np.sum(pulled[name] * tangents[name]) for name in fn.input_names)
    np.testing.assert_allclose(left, right, rtol=1e-9, atol=1e-12)
    eps = 1e-6
    plus = api.evaluate(fn, {n: a + eps * tangents[n] for n, a in inputs.items()})
    minus = api.evaluate(fn, {n: a - eps * tangents[n] for n, a in inputs.items()})
    np.testing.assert_allclose(pushed, (plus - minus) / (2 * eps), **TOLERANCE)


def _scalarized(case):
    """sum(f(x) * w): a scalar function with every second derivative of f in it."""
    shapes = case.shapes
    weight_shape = build(case.engine, shapes).output.aval.shape

    def body(*args):
        *xs, w = args
        return ops.sum(case.engine(*xs) * w)

    avals = {f"x{i}": ShapedArray(s, "float64") for i, s in enumerate(shapes)}
    avals["w"] = ShapedArray(weight_shape, "float64")
    return trace(body, avals), weight_shape


@by_id
def test_hessian_matches_torch_and_hvp_matches_finite_differences(case, backend_name):
    fn, weight_shape = _scalarized(case)
    arrays = case.inputs()
    weights = np.random.default_rng(2).normal(size=weight_shape)
    inputs = {**named(fn, arrays), "w": weights}
    wrt = fn.input_names[:-1]
    _, hessian = api.hessian(fn, inputs, wrt=wrt, backend_name=backend_name)

    def reference(*xs):
        return torch.sum(case.reference(*xs) * torch.tensor(weights))

    expected = torch.autograd.functional.hessian(reference, tuple(torch.tensor(a) for a in arrays))
    for i, a in enumerate(wrt):
        for j, b in enumerate(wrt):
            np.testing.assert_allclose(hessian[a][b], expected[i][j].numpy(), rtol=1e-8, atol=1e-10)

    rng = np.random.default_rng(3)
    tangents = {name: rng.normal(size=a.shape) for name, a in zip(wrt, arrays)}
    _, gradient, product = api.hvp(fn, inputs, tangents, wrt=wrt, backend_name=backend_name)
    eps = 1e-5
    shifted = lambda sign: {**{n: inputs[n] + sign * eps * tangents[n] for n in wrt}, "w": weights}  # noqa: E731
    plus = api.grad(fn, shifted(1), wrt=wrt)
    minus = api.grad(fn, shifted(-1), wrt=wrt)
    for name in wrt:
        np.testing.assert_allclose(product[name], (plus[name] - minus[name]) / (2 * eps), rtol=1e-4, atol=1e-6)
        flat = sum(hessian[name][other].reshape(gradient[name].size, -1) @ tangents[other].reshape(-1) for other in wrt)
        np.testing.assert_allclose(product[name].reshape(-1), flat, rtol=1e-9, atol=1e-10)


@by_id
def test_reverse_over_reverse_equals_forward_over_reverse(case):
    """The gradient is itself a Function, so differentiating it in reverse mode composes."""
    fn, weight_shape = _scalarized(case)
    arrays = case.inputs()
    weights = np.random.default_rng(2).normal(size=weight_shape)
    inputs = {**named(fn, arrays), "w": weights}
    wrt = fn.input_names[:-1]
    positions = tuple(range(len(wrt)))

    def first_gradient(*args):
        _, gradients = vjp_call(fn, args, 1.0, positions)
        return gradients[0]

    gradient_fn = trace(first_gradient, fn.input_avals)
    _, second, _ = api.jacobian(gradient_fn, inputs, wrt=wrt, mode="reverse")
    _, hessian = api.hessian(fn, inputs, wrt=wrt)
    for name in wrt:
        np.testing.assert_allclose(second[name], hessian[wrt[0]][name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", PIECEWISE_CONSTANT, ids=[c.id for c in PIECEWISE_CONSTANT])
def test_piecewise_constant_functions_have_zero_derivative(case, backend_name):
    fn = build(case.engine, case.shapes)
    arrays = case.inputs()
    expected, _ = torch_call(case.reference, arrays)
    inputs = named(fn, arrays)
    np.testing.assert_allclose(api.evaluate(fn, inputs, backend_name=backend_name), expected.numpy())
    for mode in ("forward", "reverse"):
        _, jacobians, _ = api.jacobian(fn, inputs, mode=mode, backend_name=backend_name)
        assert not np.any(jacobians["x0"]), mode
        assert jacobians["x0"].shape == fn.output.aval.shape + arrays[0].shape
