"""The program front-end: one `def`, run define-by-run on the inputs, so Python control
flow decides on real values and the IR is the path taken."""

import math

import numpy as np
import pytest
import torch

from engine import api
from engine.errors import BAD_INPUT, BAD_PARAM, LIMIT, NUMERIC, SHAPE, SYNTAX, TOO_LARGE, UNKNOWN_NAME, EngineError
from engine.frontends import Limits, build, check_program, from_program

D2L_CONTROL_FLOW = """
def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c
"""

MXNET_DATA_DEPENDENT_LOOP = """
def f(x):
    y = x  # going to change y but still want to use x
    if x < 0.75:  # variable num_loops because it depends on x
        num_loops = floor(1/(1-x))
        for i in range(num_loops):
            y = y * x  # increase polynomial degree
    else:  # otherwise flatline
        y = y * 0
    return y
"""


def program(source, **arrays):
    return build({"program": source}, {name: np.asarray(a, dtype=np.float64) for name, a in arrays.items()})


def d2l_in_torch(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    return b if b.sum() > 0 else 100 * b


def mxnet_in_torch(x):
    y = x
    if x < 0.75:
        for _ in range(math.floor(1 / (1 - x.item()))):
            y = y * x
    else:
        y = y * 0
    return y


@pytest.mark.parametrize("a", [np.array(0.3), np.array(-0.02), np.array([0.3, -0.2, 0.5]), np.array([-1.0, -2.0])])
def test_d2l_control_flow_gradient_is_d_over_a(a, gradients, torch_gradients):
    value, grad = gradients(program(D2L_CONTROL_FLOW, a=a), a=a)
    expected_value, expected = torch_gradients(d2l_in_torch, a=a)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["a"], expected["a"])
    np.testing.assert_allclose(grad["a"], value / a)


@pytest.mark.parametrize(("x", "expected"), [(0.1, 0.2), (0.3, 0.6), (0.6, 1.08), (0.7, 1.372), (0.8, 0.0)])
def test_mxnet_data_dependent_loop_gradients(x, expected, gradients, torch_gradients):
    value, grad = gradients(program(MXNET_DATA_DEPENDENT_LOOP, x=x), x=x)
    torch_value, torch_grad = torch_gradients(mxnet_in_torch, x=x)
    np.testing.assert_allclose(value, torch_value)
    np.testing.assert_allclose(grad["x"], torch_grad["x"])
    np.testing.assert_allclose(grad["x"], expected)


def test_grad_of_detach_treats_u_as_constant(gradients, torch_gradients):
    x = np.arange(4.0)
    source = "def f(x):\n    y = x * x\n    u = detach(y)\n    z = u * x\n    return z.sum()\n"
    _, grad = gradients(program(source, x=x), x=x)
    np.testing.assert_allclose(grad["x"], torch_gradients(lambda x: (x * x).detach() * x, x=x)[1]["x"])
    np.testing.assert_allclose(grad["x"], x * x)


def test_the_ir_is_the_path_taken():
    small, large = program(D2L_CONTROL_FLOW, a=0.001), program(D2L_CONTROL_FLOW, a=100.0)
    assert len(small.equations) > len(large.equations)
    assert all(e.primitive.name != "norm" or e.location == "line 4, column 13" for e in small.equations)


def test_statements_and_conditions(gradients, torch_gradients):
    source = """
def f(x, w):
    '''A docstring is allowed.'''
    total = 0.0
    steps, scale = 0, 1.5
    for i in range(1, 7, 2):
        if i == 3:
            continue
        total += w[0] * x[i - 1] ** 2
        steps += 1
    while True:
        scale *= 0.5
        if scale < 0.2 or steps > 100:
            break
    sum = total * scale  # a local may take a function's name
    if not (sum > 1000) and steps == 2:
        out = sum + where(x > 0, x, 0).sum()
    elif steps > 2:
        out = sum
    else:
        out = -sum
    return out if steps else out * 0
"""

    def reference(x, w):
        total = (w[0] * x[0] ** 2) + (w[0] * x[4] ** 2)
        return total * 0.1875 + torch.where(x > 0, x, torch.zeros_like(x)).sum()

    x, w = np.linspace(-1, 2, 6), np.array([2.0, 3.0, 4.0])
    value, grad = gradients(program(source, x=x, w=w), x=x, w=w)
    expected_value, expected = torch_gradients(reference, x=x, w=w)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])
    np.testing.assert_allclose(grad["w"], expected["w"])


def test_tuple_unpacking_swaps():
    source = "def f(x):\n    a, b = x[0], x[1]\n    a, b = b, a\n    return a - b\n"
    np.testing.assert_allclose(api.evaluate(program(source, x=np.arange(3.0)), {"x": np.arange(3.0)}), 1.0)


def test_range_takes_a_scalar_array_of_integral_value():
    source = "def f(x, n):\n    y = x\n    for i in range(n.sum()):\n        y = y * x[i]\n    return y\n"
    fn = build({"program": source}, {"x": np.array([2.0, 3.0, 5.0]), "n": np.array([1, 2])})
    np.testing.assert_allclose(api.evaluate(fn, {"x": [2.0, 3.0, 5.0], "n": [1, 2]}), [60.0, 90.0, 150.0])


def test_inputs_follow_the_parameters_order():
    fn = build({"program": "def f(b, a):\n    return a * b\n"}, {"a": np.ones(2), "b": np.zeros(2)})
    assert fn.input_names == ("b", "a")


def test_check_program_returns_parameters_without_running():
    assert check_program("def f(a, b):\n    while True:\n        pass\n") == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "location", "words"),
    [
        ("    import os\n    return x\n", "line 2, column 5", "import"),
        ("    global y\n    return x\n", "line 2, column 5", "global"),
        ("    y = lambda: 1\n    return x\n", "line 2, column 9", "lambda"),
        ("    with x:\n        pass\n    return x\n", "line 2, column 5", "with"),
        ("    try:\n        pass\n    except Exception:\n        pass\n    return x\n", "line 2, column 5", "try"),
        ("    class C:\n        pass\n    return x\n", "line 2, column 5", "class"),
        ("    def g(y):\n        return y\n    return x\n", "line 2, column 5", "nested function"),
        ("    yield x\n", "line 2, column 5", "yield"),
        ("    y = await x\n    return y\n", "line 2, column 9", "await"),
        ("    del x\n    return 1\n", "line 2, column 5", "del"),
        ("    y = [x for _ in range(3)]\n    return x\n", "line 2, column 9", "comprehensions"),
        ("    x[0] = 1\n    return x\n", "line 2, column 5", "only names"),
        ("    x.T = 1\n    return x\n", "line 2, column 5", "only names"),
        ("    __y = x\n    return x\n", "line 2, column 5", "'__y'"),
        ("    return x.__class__\n", "line 2, column 14", "'__class__'"),
        ("    break\n", "line 2, column 5", "outside a loop"),
        ("    return\n", "line 2, column 5", "needs a value"),
        ("    sin(x)\n    return x\n", "line 2, column 5", "no effect"),
        ("    for i in x:\n        pass\n    return x\n", "line 2, column 14", "range"),
        ("    for i in range():\n        pass\n    return x\n", "line 2, column 14", "range takes"),
        ("    y = range(3)\n    return x\n", "line 2, column 9", "for statement"),
        ("    while x > 0:\n        pass\n    else:\n        pass\n    return x\n", "line 5, column 9", "else"),
    ],
)
def test_refused_statements_name_line_and_column(body, location, words):
    with pytest.raises(EngineError) as error:
        check_program("def f(x):\n" + body)
    assert error.value.kind in (SYNTAX, UNKNOWN_NAME), error.value
    assert error.value.location == location, error.value
    assert words in error.value.message


def test_indentation_errors_are_syntax_errors_on_their_line():
    with pytest.raises(EngineError) as error:
        check_program("def f(x):\n    return x\n  return x\n")
    assert error.value.kind == SYNTAX and error.value.location.startswith("line 3, column ")
    assert "indent" in error.value.message


@pytest.mark.parametrize(
    ("source", "location", "words"),
    [
        ("@decorate\ndef f(x):\n    return x\n", "line 1, column 2", "decorators"),
        ("def f(x=1):\n    return x\n", "line 1, column 9", "default values"),
        ("def f(*x):\n    return x\n", "line 1, column 8", "*args"),
        ("def f(**x):\n    return x\n", "line 1, column 9", "**kwargs"),
        ("def f(x, *, y):\n    return x\n", "line 1, column 13", "keyword-only"),
        ("def f(x: float):\n    return x\n", "line 1, column 10", "annotations"),
        ("def f(x, x):\n    return x\n", "line 1, column 10", "twice"),
        ("async def f(x):\n    return x\n", "line 1, column 1", "one function definition"),
        ("import os\ndef f(x):\n    return x\n", "line 1, column 1", "one function definition"),
        ("def f(x):\n    return x\ny = 1\n", "line 3, column 1", "one function definition"),
        ("# nothing\n", "line 1, column 1", "one function definition"),
    ],
)
def test_refused_definitions(source, location, words):
    with pytest.raises(EngineError) as error:
        check_program(source)
    assert (error.value.kind, error.value.location) == (SYNTAX, location), error.value
    assert words in error.value.message


def test_untaken_branches_are_checked_too():
    with pytest.raises(EngineError) as error:
        program("def f(x):\n    if x > 0:\n        return x\n    return sine(x)\n", x=1.0)
    assert (error.value.kind, error.value.location) == (UNKNOWN_NAME, "line 4, column 12")
    assert "did you mean 'sin'?" in error.value.message


@pytest.mark.parametrize(
    ("source", "inputs", "kind", "location", "words"),
    [
        ("def f(x, y):\n    return x\n", {"x": 1.0}, BAD_INPUT, "line 1, column 10", "'y'"),
        ("def f(x):\n    return x\n", {"x": 1.0, "z": 2.0}, BAD_INPUT, "/inputs/z", "'z'"),
        (
            "def f(x):\n    if x > 1:\n        y = x\n    return y\n",
            {"x": 0.0},
            UNKNOWN_NAME,
            "line 4, column 12",
            "path",
        ),
        (
            "def f(x):\n    if x:\n        return x\n    return 1\n",
            {"x": [1.0, 2.0]},
            SHAPE,
            "line 2, column 8",
            "scalar",
        ),
        (
            "def f(x):\n    if (x, x):\n        return x\n    return 1\n",
            {"x": 1.0},
            BAD_PARAM,
            "line 2, column 8",
            "tuple",
        ),
        ("def f(x):\n    if x > 1:\n        return x\n", {"x": 0.0}, SYNTAX, "line 2, column 5", "without returning"),
        ("def f(x):\n    return x, x\n", {"x": 0.0}, BAD_PARAM, "line 2, column 12", "tuple"),
        ("def f(x):\n    a, b = x\n    return a\n", {"x": [1.0, 2.0]}, BAD_PARAM, "line 2, column 5", "unpack"),
        (
            "def f(x):\n    for i in range(x):\n        pass\n    return x\n",
            {"x": 2.5},
            BAD_PARAM,
            "line 2, column 20",
            "integer",
        ),  # fmt: skip
        (
            "def f(x):\n    for i in range(1, 2, 0):\n        pass\n    return x\n",
            {"x": 1.0},
            BAD_PARAM,
            "line 2, column 14",
            "zero",
        ),  # fmt: skip
        ("def f(sin):\n    return sin(sin)\n", {"sin": 1.0}, UNKNOWN_NAME, "line 2, column 12", "holds a value"),
        ("def f(x):\n    return inv(x)\n", {"x": np.zeros((2, 2))}, NUMERIC, "line 2, column 12", "inv failed"),
    ],
)
def test_run_time_errors(source, inputs, kind, location, words):
    with pytest.raises(EngineError) as error:
        build({"program": source}, inputs)
    assert (error.value.kind, error.value.location) == (kind, location), error.value
    assert words in error.value.message


def test_while_true_runs_out_of_steps_not_time():
    with pytest.raises(EngineError) as error:
        program("def f(x):\n    while True:\n        pass\n", x=1.0)
    assert error.value.kind == LIMIT and "step budget" in error.value.message
    assert error.value.location in ("line 2, column 5", "line 3, column 9")


def test_step_budget_counts_statements_and_iterations():
    source = "def f(x):\n    for i in range(5):\n        x = x + 1\n    return x\n"
    # 1 for statement + 5 bodies + 5 iterations + 1 return = 12
    program_limits = Limits(max_steps=12)
    build({"program": source}, {"x": np.ones(1)}, program_limits)
    with pytest.raises(EngineError) as error:
        build({"program": source}, {"x": np.ones(1)}, Limits(max_steps=11))
    assert error.value.kind == LIMIT


def test_operations_and_array_sizes_are_limited():
    growing = "def f(x):\n    while True:\n        x = x * 1.5\n    return x\n"
    with pytest.raises(EngineError) as error:
        program(growing, x=1.0)
    assert error.value.kind == LIMIT and error.value.location == "line 3, column 15"
    assert "20,000 operations" in error.value.message
    with pytest.raises(EngineError) as error:
        build(
            {"program": "def f(x):\n    return outer(x, x)\n"}, {"x": np.ones(10)}, Limits(max_intermediate_elements=99)
        )
    assert (error.value.kind, error.value.location) == (TOO_LARGE, "line 2, column 12")


def test_from_program_takes_arrays():
    fn = from_program("def f(x):\n    return 2 * x\n", {"x": np.float32(1.5)})
    assert fn.inputs[0].aval.dtype == "float32"


# ---- one function, three front-ends, one IR ----

SAME_FUNCTION = [
    (
        "a*(a+b)",
        [{"id": "c", "op": "add", "args": ["a", "b"]}, {"id": "d", "op": "multiply", "args": ["a", "c"]}],
        "def f(a, b):\n    return a * (a + b)\n",
    ),
    (
        "2*dot(a, a) + b.sum()",
        [
            {"id": "d", "op": "dot", "args": ["a", "a"]},
            {"id": "twice", "op": "multiply", "args": [2, "d"]},
            {"id": "s", "op": "sum", "args": ["b"]},
            {"id": "out", "op": "add", "args": ["twice", "s"]},
        ],
        "def f(a, b):\n    d = dot(a, a)\n    return 2 * d + b.sum()\n",
    ),
    (
        "sum(sin(a) * b**2, axis=0)",
        [
            {"id": "s", "op": "sin", "args": ["a"]},
            {"id": "p", "op": "power", "args": ["b", 2]},
            {"id": "m", "op": "multiply", "args": ["s", "p"]},
            {"id": "out", "op": "sum", "args": ["m"], "params": {"axis": 0}},
        ],
        "def f(a, b):\n    y = sin(a)\n    y *= b ** 2\n    return sum(y, axis=0)\n",
    ),
    (
        "a * a * a * b",
        [
            {"id": "p1", "op": "multiply", "args": ["a", "a"]},
            {"id": "p2", "op": "multiply", "args": ["p1", "a"]},
            {"id": "out", "op": "multiply", "args": ["p2", "b"]},
        ],
        "def f(a, b):\n    y = a\n    for i in range(2):\n        y = y * a\n    return y * b\n",
    ),
]


@pytest.mark.parametrize(("source", "nodes", "definition"), SAME_FUNCTION)
def test_expression_graph_and_program_build_the_same_ir(source, nodes, definition, gradients):
    inputs = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([1.5, 0.25, -3.0])}
    built = [
        build({"expression": source}, inputs),
        build({"graph": {"inputs": ["a", "b"], "nodes": nodes, "output": nodes[-1]["id"]}}, inputs),
        build({"program": definition}, inputs),
    ]
    assert len({fn.key for fn in built}) == 1, "\n\n".join(map(str, built))
    results = [gradients(fn, **inputs) for fn in built]
    for value, grad in results[1:]:
        np.testing.assert_array_equal(value, results[0][0])
        np.testing.assert_array_equal(grad["a"], results[0][1]["a"])
        np.testing.assert_array_equal(grad["b"], results[0][1]["b"])


def test_a_program_unrolled_differently_still_gives_the_same_numbers(gradients):
    x = np.array([0.5, 1.5])
    looped = program("def f(x):\n    y = 1.0\n    for i in range(3):\n        y = y * (x + i)\n    return y\n", x=x)
    written_out = build({"expression": "(x + 0) * (x + 1) * (x + 2)"}, {"x": x})
    value, grad = gradients(looped, x=x)
    expected_value, expected = gradients(written_out, x=x)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])


def test_a_loop_that_rebinds_a_large_array_keeps_only_what_names_reach():
    """Each iteration's old `y` is unreachable: the run must not hold all 30 of them."""
    source = "def f(big):\n    for i in range(30):\n        y = big + i\n    return sum(y)\n"
    big = np.ones(300)
    fn = build({"program": source}, {"big": big}, Limits(max_live_elements=1_000))
    np.testing.assert_allclose(api.evaluate(fn, {"big": big}), 300 * 30)


def test_a_program_holding_too_many_elements_at_once_is_too_large():
    source = "def f(big):\n    a = big + 1\n    b = big + 2\n    c = big + 3\n    return sum(a + b + c)\n"
    with pytest.raises(EngineError) as error:
        build({"program": source}, {"big": np.ones(300)}, Limits(max_live_elements=1_000))
    assert (error.value.kind, error.value.location) == (TOO_LARGE, "line 4, column 13")
    assert "1,200 array elements" in error.value.message
