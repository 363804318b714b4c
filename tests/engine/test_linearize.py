"""Linearize once, then products: equal to the stateless operations' answers, with no primal
equation in any product's linear part."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api, linearize
from engine.errors import BAD_INPUT, NOT_SCALAR, EngineError
from engine.operations import Options
from engine.transforms.partial_eval import split_known

MLP = "sum(tanh(tanh(tanh(x @ W1) @ W2) @ W3))"
RNG = np.random.default_rng(7)


def linearized(function: dict, inputs: dict, **options):
    task = linearize.prepare(function, inputs, Options(**options))
    answer = task.run()
    return answer.fields["linearization"]


def random_like(array: np.ndarray) -> np.ndarray:
    return RNG.standard_normal(np.shape(array))


def test_products_of_a_linearized_mlp_equal_the_stateless_ones():
    inputs = {"x": RNG.standard_normal((4, 5)), "W1": RNG.standard_normal((5, 6)),
              "W2": RNG.standard_normal((6, 6)), "W3": RNG.standard_normal((6, 3))}  # fmt: skip
    handle = linearized({"expression": MLP}, inputs, wrt=("W1", "W3"))
    fn = handle.function
    tangents = {"W1": random_like(inputs["W1"]), "W3": random_like(inputs["W3"])}
    jvp = handle.product("jvp", tangents).run().fields
    np.testing.assert_allclose(jvp["jvp"], api.jvp(fn, inputs, tangents, wrt=["W1", "W3"])[1], rtol=1e-12)
    vjp = handle.product("vjp", np.array(0.7)).run().fields
    expected = api.vjp(fn, inputs, np.array(0.7), wrt=["W1", "W3"])[1]
    for name in ("W1", "W3"):
        np.testing.assert_allclose(vjp["vjp"][name], expected[name], rtol=1e-12)
    hvp = handle.product("hvp", tangents).run().fields
    _, gradient, products = api.hvp(fn, inputs, tangents, wrt=["W1", "W3"])
    for name in ("W1", "W3"):
        np.testing.assert_allclose(hvp["gradient"][name], gradient[name], rtol=1e-12)
        np.testing.assert_allclose(hvp["hvp"][name], products[name], rtol=1e-12)
    np.testing.assert_allclose(handle.value, api.evaluate(fn, inputs))


def test_a_program_is_linearized_on_the_path_it_took():
    source = "def f(x):\n    y = x\n    while sum(y * y) < 10:\n        y = y * 2\n    return y\n"
    x = np.array([0.5, -0.25])
    handle = linearized({"program": source}, {"x": x})
    # y = 8x here (three doublings): the Jacobian is 8 I.
    np.testing.assert_allclose(handle.product("jvp", {"x": np.array([1.0, 2.0])}).run().fields["jvp"], [8.0, 16.0])
    np.testing.assert_allclose(handle.product("vjp", np.array([1.0, 1.0])).run().fields["vjp"]["x"], [8.0, 8.0])
    with pytest.raises(EngineError) as error:
        handle.product("hvp", {"x": x})
    assert error.value.kind == NOT_SCALAR


def test_a_tangent_of_the_wrong_shape_is_refused_with_its_location():
    handle = linearized({"expression": "sum(sin(x))"}, {"x": np.ones(3)})
    with pytest.raises(EngineError) as error:
        handle.product("jvp", {"x": np.ones(4)})
    assert (error.value.kind, error.value.location) == (BAD_INPUT, "/tangents/x")


def test_the_linear_part_holds_no_primal_work():
    """Every equation of a product's linear part reads a tangent or cotangent, directly or
    through another: the primal work all went to the forward function."""
    handle = linearized({"expression": MLP}, {"x": np.ones((2, 3)), "W1": np.ones((3, 3)), "W2": np.ones((3, 3)),
                                              "W3": np.ones((3, 1))})  # fmt: skip
    for name in handle.products:
        rest, _ = linearize.linearized_functions(handle.function, handle.positions).products[name]
        residual_count = len(rest.inputs) - (1 if name == "vjp" else len(handle.positions))
        split = split_known(rest, range(residual_count))
        assert not split.known.equations, name
