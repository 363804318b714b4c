"""The expression front-end: Python expression syntax over the whitelist, checked against
PyTorch on the seeds' examples."""

import numpy as np
import pytest
import torch

from engine import api, language
from engine.errors import ARITY, BAD_PARAM, SHAPE, SYNTAX, UNKNOWN_NAME, UNKNOWN_OP, EngineError
from engine.frontends import Limits, build, from_expression
from engine.ir import Literal, ShapedArray

RNG = np.random.default_rng(0)
X = np.arange(4.0)
A = RNG.normal(size=(4, 4))
B = RNG.normal(size=(4, 4))
SPD = A @ A.T + 4 * np.eye(4)


def expression(source, **arrays):
    return build({"expression": source}, {name: np.asarray(a) for name, a in arrays.items()})


# ---- the seeds' examples, against PyTorch ----


def test_gradient_of_two_dot_x_x_is_four_x(gradients, torch_gradients):
    value, grad = gradients(expression("2*dot(x, x)", x=X), x=X)
    expected_value, expected = torch_gradients(lambda x: 2 * torch.dot(x, x), x=X)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])
    np.testing.assert_allclose(grad["x"], 4 * X)


def test_gradient_of_sum_is_ones(gradients):
    _, grad = gradients(expression("sum(x)", x=X), x=X)
    np.testing.assert_array_equal(grad["x"], np.ones(4))


def test_gradient_of_sum_of_squares_is_two_x(gradients, torch_gradients):
    _, grad = gradients(expression("sum(x*x)", x=X), x=X)
    np.testing.assert_allclose(grad["x"], torch_gradients(lambda x: (x * x).sum(), x=X)[1]["x"])
    np.testing.assert_allclose(grad["x"], 2 * X)


@pytest.mark.parametrize("source", ["stop_gradient(x*x) * x", "detach(x*x) * x", "(x*x).detach() * x"])
def test_grad_of_detach_treats_u_as_constant(source, gradients, torch_gradients):
    _, grad = gradients(expression(source, x=X), x=X)
    _, expected = torch_gradients(lambda x: (x * x).detach() * x, x=X)
    np.testing.assert_allclose(grad["x"], expected["x"])
    np.testing.assert_allclose(grad["x"], X * X)


def test_mean_of_three_times_square_gives_four_and_a_half(gradients, torch_gradients):
    x = np.ones((2, 2))
    value, grad = gradients(expression("mean(3*(x+2)**2)", x=x), x=x)
    expected_value, expected = torch_gradients(lambda x: (3 * (x + 2) ** 2).mean(), x=x)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])
    np.testing.assert_allclose(grad["x"], np.full((2, 2), 4.5))


def test_cubic_polynomial_derivative_at_one_and_a_half(gradients):
    _, grad = gradients(expression("3*x**3 - 5*x**2", x=1.5), x=1.5)
    np.testing.assert_allclose(grad["x"], 5.25)


def test_product_rule_for_two_inputs(gradients, torch_gradients):
    a, b = np.array([1.0, 2.0, -3.0]), np.array([0.5, 4.0, 2.0])
    _, grad = gradients(expression("a*(a+b)", a=a, b=b), a=a, b=b)
    _, expected = torch_gradients(lambda a, b: a * (a + b), a=a, b=b)
    np.testing.assert_allclose(grad["a"], expected["a"])
    np.testing.assert_allclose(grad["a"], 2 * a + b)
    np.testing.assert_allclose(grad["b"], a)


def test_log_sin_reciprocal(gradients, torch_gradients):
    x = np.array([0.5, 1.0, 2.0, 3.0])
    value, grad = gradients(expression("log(x**2)*sin(x) + 1/x", x=x), x=x)
    expected_value, expected = torch_gradients(lambda x: torch.log(x**2) * torch.sin(x) + 1 / x, x=x)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])


def test_quadratic_form_gradient_is_a_plus_a_transpose_times_x(gradients, torch_gradients):
    x = RNG.normal(size=4)
    _, grad = gradients(expression("x @ A @ x", x=x, A=A), x=x, A=A)
    _, expected = torch_gradients(lambda x, A: x @ A @ x, x=x, A=A)
    np.testing.assert_allclose(grad["x"], expected["x"])
    np.testing.assert_allclose(grad["x"], (A + A.T) @ x)
    np.testing.assert_allclose(grad["A"], np.outer(x, x))


def test_logdet_gradient_is_inverse_transpose(gradients, torch_gradients):
    _, grad = gradients(expression("logdet(A)", A=SPD), A=SPD)
    _, expected = torch_gradients(lambda A: torch.logdet(A), A=SPD)
    np.testing.assert_allclose(grad["A"], expected["A"])
    np.testing.assert_allclose(grad["A"], np.linalg.inv(SPD).T)


def test_trace_of_product_gradient_is_b_transpose(gradients, torch_gradients):
    _, grad = gradients(expression("trace(A @ B)", A=A, B=B), A=A, B=B)
    _, expected = torch_gradients(lambda A, B: torch.trace(A @ B), A=A, B=B)
    np.testing.assert_allclose(grad["A"], expected["A"])
    np.testing.assert_allclose(grad["A"], B.T)


# ---- the language ----


@pytest.mark.parametrize(
    ("source", "reference"),
    [
        ("sum(sin(x) * x**2)", lambda x, X: (torch.sin(x) * x**2).sum()),
        ("x[1:3] * 2 + X[:, 0].sum()", lambda x, X: x[1:3] * 2 + X[:, 0].sum()),
        ("where(x > 0, x, 0.1*x)", lambda x, X: torch.where(x > 0, x, 0.1 * x)),
        ("sum(X, axis=0) + mean(X, axis=1)[:2]", lambda x, X: X.sum(dim=0) + X.mean(dim=1)[:2]),
        ("X.T @ x[:3] - X.norm() + x.mean()", lambda x, X: X.T @ x[:3] - X.norm() + x.mean()),
        ("x.reshape(2, 2).T[0, 1] + reshape(x, (2, 2))[1].max()", lambda x, X: x.reshape(2, 2).T[0, 1] + x[2:].max()),
        ("x[None, ..., ::2] + x[-1]", lambda x, X: x[None, ..., ::2] + x[-1]),
        (
            "where(x == 2, x, -x) + where(x != 1, 1.0, +x)",
            lambda x, X: torch.where(x == 2, x, -x) + torch.where(x != 1, torch.ones_like(x), x),
        ),
        (
            "sum(X, axis=(0, 1), keepdims=True) * softmax(x)",
            lambda x, X: X.sum(dim=(0, 1), keepdim=True) * x.softmax(0),
        ),
    ],
)
def test_expression_matches_pytorch(source, reference, gradients, torch_gradients):
    x, matrix = np.array([0.5, -1.0, 2.0, 1.0]), RNG.normal(size=(3, 2))
    value, grad = gradients(expression(source, x=x, X=matrix), x=x, X=matrix)
    expected_value, expected = torch_gradients(reference, x=x, X=matrix)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"], atol=1e-12)
    np.testing.assert_allclose(grad["X"], expected["X"], atol=1e-12)


def test_only_ops_whose_rules_are_all_none_are_not_differentiable():
    constant_valued = {name for name, function in language.FUNCTIONS.items() if not function.differentiable}
    comparisons = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
    assert constant_valued == {"sign", "floor", "ceil", "round", "stop_gradient", "detach"} | comparisons


def test_functions_have_numpy_signatures():
    signatures = {name: str(language.FUNCTIONS[name].signature) for name in ("sum", "reshape", "where", "stack")}
    assert signatures == {
        "sum": "(x, axis=None, keepdims=False)",
        "reshape": "(x, shape)",
        "where": "(condition, x, y)",
        "stack": "(arrays, axis=0)",
    }


def test_lists_and_tuples_are_arguments():
    fn = expression("concatenate([x, 2 * x]) + stack([x, x], axis=1).sum(axis=1).sum()", x=X)
    np.testing.assert_allclose(api.evaluate(fn, {"x": X}), np.concatenate([X, 2 * X]) + 2 * X.sum())


def test_folded_constants_can_be_shapes_and_indices():
    fn = expression("reshape(x, (2*1, 4 - 2))[2-1, 1] + x[1+1]", x=X)
    np.testing.assert_allclose(api.evaluate(fn, {"x": X}), X[3] + X[2])


def test_inputs_are_every_aval_in_order_and_there_is_one_output():
    avals = {"b": ShapedArray((2,), "float64"), "a": ShapedArray((), "float64"), "unused": ShapedArray((), "int64")}
    fn = from_expression("a * b", avals)
    assert fn.input_names == ("b", "a", "unused")
    assert [v.aval for v in fn.inputs] == list(avals.values())
    assert len(fn.outputs) == 1


def test_a_constant_expression_is_a_literal_output():
    fn = from_expression("2 * 3 + 1", {})
    assert fn.output == Literal(7, "int64") and not fn.equations


def test_an_input_may_shadow_a_function_name():
    np.testing.assert_allclose(api.evaluate(expression("sum * 2", sum=X), {"sum": X}), 2 * X)
    with pytest.raises(EngineError) as error:
        expression("sum(sum)", sum=X)
    assert error.value.kind == UNKNOWN_NAME and "holds a value" in error.value.message


# ---- errors say what and where ----


@pytest.mark.parametrize(
    ("source", "kind", "location", "words"),
    [
        ("sin(x) + sine(x)", UNKNOWN_NAME, "offset 9", "did you mean 'sin'?"),
        ("x + y", UNKNOWN_NAME, "offset 4", "the inputs are x"),
        ("sin", UNKNOWN_NAME, "offset 0", "is a function"),
        ("x.sum() + x.summ()", UNKNOWN_NAME, "offset 12", "did you mean 'sum'?"),
        ("x +", SYNTAX, "offset 3", "invalid syntax"),
        ("(x + 1", SYNTAX, "offset 0", "never closed"),
        ("x % 2", UNKNOWN_OP, "offset 0", "operator %"),
        ("x < 1 < 2", SYNTAX, "offset 0", "chained comparisons"),
        ("x if x else x", SYNTAX, "offset 0", "where(condition, x, y)"),
        ("x * 2 + ones", UNKNOWN_NAME, "offset 8", "unknown name 'ones'"),
        ("sin(x, x)", ARITY, "offset 0", "sin(x)"),
        ("sum(x, foo=1)", ARITY, "offset 0", "unexpected keyword"),
        ("x[:2]  +  x", SHAPE, "offset 7", "cannot be broadcast"),
        ("x @ x @ x", SHAPE, "offset 6", "matmul"),
        ("x[1.5]", BAD_PARAM, "offset 2", "an index must be an integer"),
        ("x[x]", BAD_PARAM, "offset 2", "must be a constant"),
        ("sum(x, axis=x)", BAD_PARAM, "offset 7", "takes a constant"),
        ("[x, x] + 1", BAD_PARAM, "offset 0", "got a list"),
        ("'text'", SYNTAX, "offset 0", "only numbers"),
        ("1j * x", SYNTAX, "offset 0", "only numbers"),
        ("2 ** 100000000000000000000", SYNTAX, "offset 5", "64 bits"),
        ("x.shape", UNKNOWN_NAME, "offset 2", "unknown attribute 'shape'"),
        ("ßeta + x +", SYNTAX, "offset 10", "invalid syntax"),
        ("ψ + x.foo()", UNKNOWN_NAME, "offset 6", "unknown attribute 'foo'"),
        ("x\x00", SYNTAX, "offset 1", "not allowed"),
    ],
)
def test_errors_name_kind_and_offset(source, kind, location, words):
    with pytest.raises(EngineError) as error:
        from_expression(source, {"x": ShapedArray((4,), "float64")})
    assert (error.value.kind, error.value.location) == (kind, location), error.value
    assert words in error.value.message


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("reshape(x, x)", "a shape is a tuple of integers, got an array of shape [4]"),
        ("sum(x, x)", "axis must be an integer or a tuple of integers, got an array of shape [4]"),
        ("mean(x, (0, x))", "got a tuple holding arrays"),
        ("concatenate([x, x], x)", "axis must be an integer, got an array of shape [4]"),
        ("sum(x, 0, sum(x))", "keepdims must be true or false, got a scalar"),
        ("transpose(x, [x])", "a permutation of axes is a tuple of integers, got a list holding arrays"),
    ],
)
def test_an_array_where_a_constant_belongs_is_described_by_its_shape_not_the_ir(source, words):
    with pytest.raises(EngineError) as error:
        from_expression(source, {"x": ShapedArray((4,), "float64")})
    assert error.value.kind == BAD_PARAM and error.value.location == "offset 0"
    assert words in error.value.message and "Var" not in error.value.message


def test_unknown_method_is_refused():
    with pytest.raises(EngineError) as error:
        expression("x.repeat(2)", x=X)
    assert error.value.kind == UNKNOWN_NAME and ".sum()" in error.value.message


def test_recorded_equations_carry_their_offsets():
    fn = expression("sin(x) * cos(x)", x=X)
    assert [e.location for e in fn.equations] == ["offset 0", "offset 9", "offset 7"]


def test_limits_bound_length_and_operations():
    with pytest.raises(EngineError) as error:
        from_expression("x+x", {"x": ShapedArray((), "float64")}, Limits(max_source_chars=2))
    assert error.value.kind == "too_large" and error.value.location == "offset 2"
    with pytest.raises(EngineError) as error:
        from_expression("sin(cos(x)) + 1", {"x": ShapedArray((), "float64")}, Limits(max_nodes=2))
    assert error.value.kind == "limit" and error.value.location == "offset 12"


def test_the_leftmost_of_several_faults_is_reported():
    with pytest.raises(EngineError) as error:
        expression("sine(x) + cosine(x) * x.foo()", x=X)
    assert error.value.location == "offset 0" and "'sine'" in error.value.message
