"""The exact identities (`apply_identities(fn, exact=True)`) keep every number: the derivative
functions of every primitive of the table, and of random expressions, compute the same before
and after, at ordinary inputs and where inputs are inf or nan. A sweep of one colour, whose
seeds become constants of its IR and fold away under them, gives what the seeded function
gives on those seeds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import derivatives, frontends, interpreter, ops, sweeps, tasks
from engine.errors import EngineError
from engine.ir import Function, Literal, ShapedArray
from engine.operations import Options
from engine.transforms.identities import apply_identities
from tests.engine.cases import CASES, PIECEWISE_CONSTANT, RULE_CASES
from tests.engine.helpers import build
from tests.engine.test_formula import RANDOM, SHAPES, _expressions

TABLE = CASES + RULE_CASES + PIECEWISE_CONSTANT
TIGHT = {"rtol": 1e-12, "atol": 1e-12, "equal_nan": True}


def _outcome(fn: Function, arguments: list[np.ndarray]) -> list[np.ndarray] | str:
    """What running `fn` gives: its outputs, or the failure it reports."""
    try:
        return interpreter.run_on_host(fn, arguments)
    except EngineError as error:
        return error.message


def _assert_same(before: Function, after: Function, arguments: list[np.ndarray], what: str) -> None:
    _assert_equal_outcomes(_outcome(before, arguments), _outcome(after, arguments), what)


def _assert_equal_outcomes(expected, actual, what: str) -> None:
    if isinstance(expected, str) or isinstance(actual, str):
        assert actual == expected, what
        return
    for e, a in zip(expected, actual, strict=True):
        assert np.shape(a) == np.shape(e), what
        np.testing.assert_allclose(a, e, **TIGHT, err_msg=what)


def _arguments(fn: Function, primals: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The primals, then random values for the function's other inputs (tangents, cotangents, seeds)."""
    extra = [rng.normal(size=v.aval.shape) for v in fn.inputs[len(primals) :]]
    return [*primals, *extra]


def _with_specials(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Each array with inf, -inf and nan in its first elements (as many as it has)."""
    special = []
    for a in arrays:
        b = np.array(a, dtype=float)
        flat = b.reshape(-1)
        flat[:3] = [np.inf, -np.inf, np.nan][: flat.size]
        special.append(b)
    return special


def _derivative_functions(fn: Function) -> dict[str, Function]:
    wrt = tuple(i for i, v in enumerate(fn.inputs) if v.aval.is_float)
    return {
        "gradient of the sum": derivatives.gradient_function(fn, wrt, True),
        "jvp": derivatives.jvp_function(fn, wrt),
        "vjp": derivatives.vjp_function(fn, wrt),
        "hvp of the sum": derivatives.hvp_function(fn, wrt, True),
        "forward jacobian": derivatives.jacobian_function(fn, wrt, "forward"),
        "reverse jacobian": derivatives.jacobian_function(fn, wrt, "reverse"),
    }


@pytest.mark.parametrize("case", TABLE, ids=[c.id for c in TABLE])
def test_exact_identities_keep_every_derivative_of_the_table(case):
    fn = build(case.engine, case.shapes)
    primals = case.inputs()
    rng = np.random.default_rng(1)
    for name, derivative in _derivative_functions(fn).items():
        simpler = apply_identities(derivative, exact=True)
        arguments = _arguments(derivative, primals, rng)
        _assert_same(derivative, simpler, arguments, f"{case.id}: {name}")
        _assert_same(derivative, simpler, _with_specials(arguments), f"{case.id}: {name}, at inf and nan")


def test_the_zero_rules_are_what_exact_leaves_out():
    """0 * x is 0 for a formula, but nan where x is inf for a function that runs."""
    fn = build(lambda x: 0.0 * ops.exp(x), [(3,)])
    x = np.array([1.0, 1000.0, np.nan])
    assert len(apply_identities(fn).equations) == 1  # the zeros, broadcast
    exact = apply_identities(fn, exact=True)
    np.testing.assert_array_equal(interpreter.run_on_host(exact, [x])[0], [0, np.nan, np.nan])


def _seed_values(seeded: Function, count: int) -> tuple[float, ...]:
    return tuple([1.0, -0.5, 2.0][k % 3] for k in range(len(seeded.inputs) - count))


def _filled(seeded: Function, count: int, values: tuple[float, ...]) -> list[np.ndarray]:
    return [np.full(v.aval.shape, value) for v, value in zip(seeded.inputs[count:], values)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_constant_seeds_give_what_the_seeded_products_give_on_them(case):
    fn = build(case.engine, case.shapes)
    total = build(lambda *xs: ops.sum(case.engine(*xs)), case.shapes)
    primals = case.inputs()
    count = len(fn.inputs)
    wrt = tuple(i for i, v in enumerate(fn.inputs) if v.aval.is_float)
    for function, direction in ((fn, "forward"), (fn, "reverse"), (total, "hessian")):
        for batch in (1, 2):
            seeded = derivatives.seeded_products(function, wrt, direction, batch)
            values = _seed_values(seeded, count)
            constant = derivatives.constantly_seeded_products(function, wrt, direction, batch, values)
            assert len(constant.inputs) == count
            for arguments in (primals, _with_specials(primals)):
                expected = _outcome(seeded, [*arguments, *_filled(seeded, count, values)])
                _assert_equal_outcomes(expected, _outcome(constant, arguments), f"{case.id}: {direction}, {batch}")


@RANDOM
@given(_expressions(), st.integers(0, 2**32 - 1), st.booleans())
def test_random_expressions_keep_their_derivatives_under_the_exact_identities(expression, seed, specials):
    rng = np.random.default_rng(seed)
    fn = frontends.from_expression(expression, {n: ShapedArray(s, "float64") for n, s in SHAPES.items()})
    primals = [rng.uniform(-1.5, 1.5, shape) for shape in SHAPES.values()]
    primals = _with_specials(primals) if specials else primals
    wrt = tuple(range(len(fn.inputs)))
    hessian = derivatives.seeded_products(fn, wrt, "hessian", 1)
    functions = {
        "gradient": derivatives.gradient_function(fn, wrt, False),
        "hvp": derivatives.hvp_function(fn, wrt),
        "hessian": derivatives.hessian_function(fn, wrt),
    }
    for name, derivative in functions.items():
        arguments = _arguments(derivative, primals, rng)
        _assert_same(derivative, apply_identities(derivative, exact=True), arguments, f"{expression}: {name}")
    values = _seed_values(hessian, len(fn.inputs))
    constant = derivatives.constantly_seeded_products(fn, wrt, "hessian", 1, values)
    expected = _outcome(hessian, [*primals, *_filled(hessian, len(fn.inputs), values)])
    _assert_equal_outcomes(expected, _outcome(constant, primals), f"{expression}: constant seeds")


def test_a_diagonal_hessian_is_one_product_with_no_seed_and_no_product_with_ones():
    n = 24
    fn = frontends.from_expression("sum(sin(x) * x**2)", {"x": ShapedArray((n,), "float64")})
    task = tasks.bind(fn, "hessian", {"x": np.linspace(-1, 1, n)}, None, Options(format="csr"), None)
    assert task.sweep.compressed and task.sweep.colors == 1
    ready = sweeps.prepared(task.sweep, fn, (0,), "csr", "numpy")
    assert ready.constant_seeds
    constant = derivatives.constantly_seeded_products(fn, (0,), "hessian", 1, (1.0,))
    seeded = derivatives.seeded_products(fn, (0,), "hessian", 1)
    assert len(constant.equations) < len(seeded.equations)
    broadcast_ones = {e.output for e in constant.equations
                      if e.primitive.name == "broadcast_to" and e.inputs[0] == Literal(1.0, "float64")}  # fmt: skip
    assert not any(e.primitive.name == "multiply" and set(e.inputs) & broadcast_ones for e in constant.equations)
    x = np.linspace(-1, 1, n)
    diagonal = task.run().fields["hessian"]["x"]["x"]["data"]
    np.testing.assert_allclose(diagonal, -np.sin(x) * x**2 + 4 * x * np.cos(x) + 2 * np.sin(x), rtol=1e-12)
