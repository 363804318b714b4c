"""POST /v1/derivative: the derivative as a formula, which posted back to /v1/evaluate with the
same inputs gives /v1/grad's (or /v1/hvp's) numbers: the seeds, graphs, and 200 random
expressions over the elementwise vocabulary, all through HTTP."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from tests.api.conftest import array, assert_problem
from tests.api.test_responses import assert_documented
from tests.engine.test_formula import CONSTANTS, POSITIVE, SHAPES, UNARY, UNIT

pytestmark = pytest.mark.anyio

X = [0.0, 1.0, 2.0, 3.0]


async def derivative(client, body: dict) -> dict:
    response = await client.post("/v1/derivative", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def evaluated(client, function: dict, inputs: dict) -> np.ndarray:
    response = await client.post("/v1/evaluate", json={"function": function, "inputs": inputs})
    assert response.status_code == 200, response.text
    return array(response.json()["value"])


async def test_the_seeds(client):
    answer = await derivative(client, {"function": {"expression": "2*dot(x,x)"}, "inputs": {"x": X}})
    assert answer["of"] == "gradient"
    assert answer["derivative"]["x"]["expression"].replace(" ", "") == "4*x"
    answer = await derivative(client, {"function": {"expression": "sin(x)"}, "inputs": {"x": 0.5}})
    assert answer["derivative"] == {"x": {"expression": "cos(x)"}}


async def test_d2l_plots_sin_and_its_derivative_from_shapes_alone(client):
    """D2L 2.4's exercise: the derivative of sin without writing cos; the points are only shapes here."""
    x = np.linspace(0, 3 * np.pi, 100)
    shape = {"dtype": "float64", "shape": [100]}
    answer = await derivative(client, {"function": {"expression": "sin(x)"}, "inputs": {"x": shape}, "reduce": "sum"})
    values = await evaluated(client, answer["derivative"]["x"], {"x": x.tolist()})
    np.testing.assert_allclose(values, np.cos(x), rtol=1e-15, atol=1e-15)


async def assert_reproduces_grad(client, function: dict, inputs: dict, **options) -> bool:
    """The formulas evaluate to /v1/grad's numbers to 1e-12; False where grad is not finite."""
    response = await client.post("/v1/grad", json={"function": function, "inputs": inputs, **options})
    assert response.status_code == 200, response.text
    gradients = {name: array(value) for name, value in response.json()["gradient"].items()}
    if not all(np.all(np.isfinite(g)) for g in gradients.values()):
        return False
    answer = await derivative(client, {"function": function, "inputs": inputs, **options})
    assert set(answer["derivative"]) == set(gradients)
    for name, formula in answer["derivative"].items():
        values = await evaluated(client, formula, inputs)
        np.testing.assert_allclose(values, gradients[name], rtol=1e-12, atol=1e-12, err_msg=str(formula))
    return True


@pytest.mark.parametrize(
    ("expression", "inputs"),
    [
        ("sum(sin(x) * x**2)", {"x": X}),
        ("mean(x * y)", {"x": [1.0, 2.0, 3.0], "y": [[1.0, -1.0, 0.5], [2.0, 0.0, -3.0]]}),
        ("logsumexp(x) + norm(x)", {"x": [0.5, -1.0, 2.0]}),
        ("sum(softmax(x) * y)", {"x": [0.5, -1.0, 2.0], "y": [1.0, 2.0, 3.0]}),
        ("x[0] * x[1] + sum(x[1:3] ** 2)", {"x": [1.0, 2.0, 3.0, 4.0]}),
        ("dot(x, matmul(A, x)) + trace(A) + det(A)", {"x": [1.0, 2.0], "A": [[2.0, 1.0], [0.0, 3.0]]}),
        ("sum(where(x > 1, x * x, -x)) + max(x)", {"x": [0.5, 1.5, 3.0]}),
    ],
)
async def test_formulas_reproduce_grad(client, expression, inputs):
    assert await assert_reproduces_grad(client, {"expression": expression}, inputs)


async def test_a_graphs_formulas_reproduce_grad(asgi_client):
    graph = {"inputs": ["a", "b"], "nodes": [{"id": "c", "op": "add", "args": ["a", "b"]},
             {"id": "d", "op": "multiply", "args": ["a", "c"]}, {"id": "e", "op": "sin", "args": ["d"]}],
             "output": "e"}  # fmt: skip
    assert await assert_reproduces_grad(asgi_client, {"graph": graph}, {"a": 2.0, "b": 3.0})


async def test_a_hessian_vector_product_reproduces_hvp(client):
    function = {"expression": "sum(sin(x) * x**2) + dot(x, matmul(A, x))"}
    inputs = {"x": [0.5, 1.0], "A": [[2.0, 1.0], [0.0, 3.0]]}
    tangents = {"x": [1.0, -2.0], "A": [[0.5, 0.0], [1.0, 1.0]]}
    response = await client.post("/v1/hvp", json={"function": function, "inputs": inputs, "tangents": tangents})
    expected = response.json()["hvp"]
    answer = await derivative(client, {"function": function, "inputs": inputs, "order": 2})
    assert answer["of"] == "hessian-vector product" and answer["vectors"] == {"x": "v_x", "A": "v_A"}
    with_vectors = {**inputs, **{answer["vectors"][name]: t for name, t in tangents.items()}}
    for name, formula in answer["derivative"].items():
        values = await evaluated(client, formula, with_vectors)
        np.testing.assert_allclose(values, array(expected[name]), rtol=1e-12, atol=1e-12)


async def test_the_second_derivative_of_a_scalar_function(client):
    answer = await derivative(client, {"function": {"expression": "x * exp(-x)"}, "inputs": {"x": 1.0}, "order": 2})
    assert answer["of"] == "second derivative" and "vectors" not in answer
    assert await evaluated(client, answer["derivative"]["x"], {"x": 0.7}) == pytest.approx(-1.3 * np.exp(-0.7))


def random_expression(rng: random.Random, depth: int = 0) -> str:
    """An expression over the elementwise vocabulary (the engine test's), of x (3,), y (2, 3), a ()."""
    if depth >= 3 or rng.random() < 0.25:
        return rng.choice([*SHAPES, *CONSTANTS])
    inner = lambda: random_expression(rng, depth + 1)  # noqa: E731
    form = rng.randrange(7)
    if form == 0:
        return f"{rng.choice(UNARY)}({inner()})"
    if form == 1:
        return f"{rng.choice(POSITIVE)}(softplus({inner()}))"
    if form == 2:
        return f"{rng.choice(UNIT)}(tanh({inner()}))"
    if form == 3:
        return f"({inner()} {rng.choice('+-*/')} {inner()})"
    if form == 4:
        return f"{rng.choice(['maximum', 'minimum'])}({inner()}, {inner()})"
    if form == 5:
        return f"softplus({inner()}) ** {rng.choice(['2', '3', '0.5', '-1.0'])}"
    return f"where({inner()} > {inner()}, {inner()}, {inner()})"


async def test_200_random_elementwise_expressions_reproduce_grad(asgi_client):
    rng = random.Random(11)
    data = np.random.default_rng(11)
    checked = 0
    for _ in range(200):
        expression = "sum(3)"
        while not re.search(r"\b[xya]\b", expression):  # a function of its inputs
            expression = f"sum({random_expression(rng)})"
        inputs = {name: data.uniform(-1.5, 1.5, shape).tolist() for name, shape in SHAPES.items()}
        checked += await assert_reproduces_grad(asgi_client, {"expression": expression}, inputs)
    assert checked >= 180  # the rest have a non-finite gradient at their point (a log of 0, ...)


@pytest.mark.parametrize(
    "body",
    [
        {"function": {"expression": "2*dot(x,x)"}, "inputs": {"x": X}},
        {"function": {"expression": "tanh(x)*exp(x)"}, "inputs": {"x": 1.0}, "order": 2},
        {"function": {"expression": "sum(x * v)"}, "inputs": {"x": X, "v": X}, "order": 2},
    ],
)
async def test_answers_fit_the_document(asgi_client, body):
    assert_documented("post", "/v1/derivative", await asgi_client.post("/v1/derivative", json=body))


@pytest.mark.parametrize(
    ("body", "status", "kind", "location"),
    [
        ({"function": {"program": "def f(x):\n    return x * x\n"}, "inputs": {"x": 1.0}}, 422, "bad-input",
         "/function/program"),
        ({"function": {"expression": "sum(x[::2])"}, "inputs": {"x": X}}, 422, "no-formula", None),
        ({"function": {"expression": "x * x"}, "inputs": {"x": X}}, 422, "not-scalar", None),
        ({"function": {"expression": "x * n"}, "inputs": {"x": 1.0, "n": {"dtype": "int64", "shape": []}},
          "wrt": ["n"]}, 422, "bad-wrt", "/wrt"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "order": 3}, 422, "invalid-request", "/order"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "encoding": "json"}, 422, "invalid-request",
         "/encoding"),
    ],
    ids=["program", "strided-indexing", "not-scalar", "integer-wrt", "order-3", "no-encoding"],
)  # fmt: skip
async def test_what_has_no_formula_is_a_problem(client, body, status, kind, location):
    response = await client.post("/v1/derivative", json=body)
    problem = assert_problem(response, status, kind, location)
    if kind == "no-formula":
        assert "scatter" in problem["detail"]
    assert_documented("post", "/v1/derivative", response)
