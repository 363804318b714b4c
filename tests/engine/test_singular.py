"""det and logdet where the matrix is singular: det's derivatives are the adjugate and its
derivatives, polynomials defined everywhere; logdet answers what torch.logdet answers, and
where that is no derivative at all, an error in the user's terms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from engine import api, ops
from engine.errors import NUMERIC, EngineError
from engine.frontends.expression import from_expression
from engine.ir import ShapedArray
from engine.tracing import trace
from engine.transforms import vjp_call

SINGULAR = {
    "2x2 of rank 1": [[1.0, 2.0], [2.0, 4.0]],
    "2x2 with a zero pivot first": [[0.0, 0.0], [0.0, 1.0]],
    "3x3 of rank 2": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
    "3x3 of rank 1": [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 6.0, 9.0]],
    "4x4 of rank 2": (np.arange(8.0).reshape(4, 2) @ np.arange(1.0, 9.0).reshape(2, 4)).tolist(),
    "3x3 zero": np.zeros((3, 3)).tolist(),
}
by_matrix = pytest.mark.parametrize("matrix", list(SINGULAR.values()), ids=list(SINGULAR))


def _function(body, shape):
    return trace(body, {"A": ShapedArray(tuple(shape), "float64")})


def cofactor_matrix(a: np.ndarray) -> np.ndarray:
    """C_ij = (-1)^(i+j) times the minor without row i and column j: the textbook definition,
    independent of any decomposition."""
    n = a.shape[0]
    cofactors = np.empty_like(a)
    for i, j in itertools.product(range(n), repeat=2):
        minor = np.delete(np.delete(a, i, axis=0), j, axis=1)
        cofactors[i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return cofactors


def test_grad_of_det_at_the_issue_matrix_is_its_adjugate_transposed():
    fn = from_expression("det(A)", {"A": ShapedArray((2, 2), "float64")})
    gradient = api.grad(fn, {"A": np.array([[1.0, 2.0], [2.0, 4.0]])})["A"]
    np.testing.assert_allclose(gradient, [[4.0, -2.0], [-2.0, 1.0]], rtol=1e-12, atol=1e-12)


@by_matrix
def test_grad_of_det_at_singular_matrices_matches_torch_and_the_cofactors(matrix):
    a = np.array(matrix)
    fn = _function(ops.det, a.shape)
    value, gradients = api.value_and_grad(fn, {"A": a})
    expected = torch.func.grad(torch.linalg.det)(torch.tensor(a)).numpy()
    np.testing.assert_allclose(gradients["A"], expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gradients["A"], cofactor_matrix(a), rtol=1e-9, atol=1e-9)
    assert value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_jacobian_of_det_over_a_stack_with_singular_members_is_each_ones_cofactors(mode):
    stack = np.array([SINGULAR["3x3 of rank 2"], SINGULAR["3x3 of rank 1"], np.eye(3) * 2.0, SINGULAR["3x3 zero"]])
    fn = _function(ops.det, stack.shape)
    _, jacobians, _ = api.jacobian(fn, {"A": stack}, mode=mode)
    # torch's reverse mode: its forward mode answers 0 at singular matrices (det times tr(A^-1 dA))
    expected = torch.func.jacrev(torch.linalg.det)(torch.tensor(stack)).numpy()
    np.testing.assert_allclose(jacobians["A"], expected, rtol=1e-9, atol=1e-9)
    for k, matrix in enumerate(stack):
        np.testing.assert_allclose(jacobians["A"][k, k], cofactor_matrix(matrix), rtol=1e-9, atol=1e-9)


def test_jvp_of_det_at_a_singular_matrix_is_the_cofactors_against_the_tangent():
    a, tangent = np.array(SINGULAR["3x3 of rank 2"]), np.random.default_rng(0).normal(size=(3, 3))
    _, pushed = api.jvp(_function(ops.det, a.shape), {"A": a}, {"A": tangent})
    np.testing.assert_allclose(pushed, np.sum(cofactor_matrix(a) * tangent), rtol=1e-9)
    assert abs(pushed) > 1.0


def _finite_difference_hessian(a: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Central differences of torch's gradient: det's gradient is a polynomial of degree n-1,
    so for n <= 3 they are exact but for rounding."""
    grad = torch.func.grad(torch.linalg.det)
    hessian = np.empty(a.shape * 2)
    for index in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[index] = eps
        plus, minus = grad(torch.tensor(a + step)).numpy(), grad(torch.tensor(a - step)).numpy()
        hessian[(...,) + index] = (plus - minus) / (2 * eps)
    return hessian


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_hessian_of_det_at_nonsingular_matrices_matches_torch(n, seed):
    a = np.random.default_rng(seed).normal(size=(n, n))
    _, hessian = api.hessian(_function(ops.det, a.shape), {"A": a})
    expected = torch.autograd.functional.hessian(torch.linalg.det, torch.tensor(a)).numpy()
    np.testing.assert_allclose(hessian["A"]["A"], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["2x2 of rank 1", "2x2 with a zero pivot first", "3x3 of rank 2", "3x3 of rank 1"])
def test_hessian_of_det_at_singular_matrices_matches_torch(name):
    a = np.array(SINGULAR[name])
    _, hessian = api.hessian(_function(ops.det, a.shape), {"A": a})
    expected = torch.autograd.functional.hessian(torch.linalg.det, torch.tensor(a)).numpy()
    np.testing.assert_allclose(hessian["A"]["A"], expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(hessian["A"]["A"], _finite_difference_hessian(a), atol=1e-7)


@pytest.mark.parametrize("n", [2, 3])
def test_hessian_of_det_at_the_zero_matrix_is_exact(n):
    """torch answers nan here (its SVD path meets repeated singular values)."""
    zero = np.zeros((n, n))
    _, hessian = api.hessian(_function(ops.det, zero.shape), {"A": zero})
    np.testing.assert_allclose(hessian["A"]["A"], _finite_difference_hessian(zero), atol=1e-7)


@by_matrix
def test_reverse_over_reverse_of_det_at_singular_matrices_equals_forward_over_reverse(matrix):
    a = np.array(matrix)
    fn = _function(ops.det, a.shape)
    gradient_fn = _function(lambda x: vjp_call(fn, [x], 1.0, (0,))[1][0], a.shape)
    _, second, _ = api.jacobian(gradient_fn, {"A": a}, mode="reverse")
    _, hessian = api.hessian(fn, {"A": a})
    np.testing.assert_allclose(second["A"], hessian["A"]["A"], rtol=1e-9, atol=1e-9)


def test_det_gradient_holding_nan_is_nan_not_an_error():
    a = np.array([[np.nan, 1.0], [1.0, 1.0]])
    gradient = api.grad(_function(ops.det, a.shape), {"A": a})["A"]
    assert np.isnan(gradient).all()


def test_det_gradient_at_a_singular_float32_matrix_stays_float32():
    a = np.array(SINGULAR["2x2 of rank 1"], dtype=np.float32)
    fn = trace(ops.det, {"A": ShapedArray((2, 2), "float32")})
    gradient = api.grad(fn, {"A": a})["A"]
    assert gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, [[4.0, -2.0], [-2.0, 1.0]], rtol=1e-5, atol=1e-5)


# ---- logdet: what torch.logdet answers ----


def test_logdet_of_a_negative_determinant_is_nan_with_zero_derivatives_as_in_torch():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    fn = _function(ops.logdet, a.shape)
    value, gradients = api.value_and_grad(fn, {"A": a})
    tensor = torch.tensor(a, requires_grad=True)
    expected_value = torch.logdet(tensor)
    (expected_gradient,) = torch.autograd.grad(expected_value, tensor)
    assert np.isnan(value) and torch.isnan(expected_value)
    np.testing.assert_array_equal(gradients["A"], expected_gradient.numpy())
    _, hessian = api.hessian(fn, {"A": a})
    np.testing.assert_array_equal(hessian["A"]["A"], torch.autograd.functional.hessian(torch.logdet, tensor).numpy())
    _, pushed = api.jvp(fn, {"A": a}, {"A": np.ones((2, 2))})
    assert pushed == 0.0


def test_logdet_over_a_stack_differentiates_only_its_positive_members():
    stack = np.array([[[2.0, 1.0], [1.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    gradient = api.grad(_function(lambda a: ops.sum(ops.logdet(a)), stack.shape), {"A": stack})["A"]
    tensor = torch.tensor(stack, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.logdet(tensor).sum(), tensor)
    np.testing.assert_allclose(gradient, expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("operation", ["grad", "hessian"])
def test_logdet_at_a_singular_matrix_is_minus_infinity_without_a_derivative_named_in_user_terms(operation):
    a = np.array(SINGULAR["2x2 of rank 1"])
    fn = from_expression("2 * logdet(A)", {"A": ShapedArray((2, 2), "float64")})
    assert api.evaluate(fn, {"A": a}) == -np.inf == 2 * torch.logdet(torch.tensor(a)).item()
    with pytest.raises(EngineError) as error:
        getattr(api, operation)(fn, {"A": a})
    assert error.value.kind == NUMERIC
    assert error.value.location == "offset 4"
    assert "derivative of logdet" in error.value.message and "singular" in error.value.message
    assert "inv" not in error.value.message
