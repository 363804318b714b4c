"""Request examples for /docs, taken from the seed tutorials: each one runs as it is from
Swagger UI's "Try it out", and the tests run them all."""

from __future__ import annotations

from typing import Any

X = [0.0, 1.0, 2.0, 3.0]  # torch.arange(4.0), the tutorials' x

DETACH_PROGRAM = """def f(x):
    y = x * x
    u = detach(y)
    z = u * x
    return z.sum()
"""

# Dive into Deep Learning 2.5.4: gradients through Python control flow.
CONTROL_FLOW_PROGRAM = """def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c
"""

CSC321_GRAPH = {
    "inputs": ["a", "b"],
    "nodes": [
        {"id": "c", "op": "add", "args": ["a", "b"]},
        {"id": "d", "op": "multiply", "args": ["a", "c"]},
    ],
    "output": "d",
}

QUADRATIC_FORM = {"expression": "dot(x, matmul(A, x))"}  # x^T A x: gradient (A + A^T) x, Hessian A + A^T
A = [[2.0, 1.0], [0.0, 3.0]]


def _example(summary: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "value": value}


EVALUATE = {
    "two_dot": _example(
        "2*dot(x, x) at x = [0, 1, 2, 3]", {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}}
    ),
    "graph": _example(
        "a graph: d = a * (a + b)", {"function": {"graph": CSC321_GRAPH}, "inputs": {"a": 2.0, "b": 3.0}}
    ),
    "base64": _example(
        "x as base64 float64 bytes, answered in base64",
        {
            "function": {"expression": "2*dot(x, x)"},
            "inputs": {"x": {"dtype": "float64", "shape": [4], "data": "AAAAAAAAAAAAAAAAAADwPwAAAAAAAABAAAAAAAAACEA="}},
            "encoding": "base64",
        },
    ),
}

GRAD = {
    "two_dot": _example("d/dx 2*dot(x, x) = 4x", {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}}),
    "detach": _example(
        "detach: z = u * x with u = detach(x * x) gives dz/dx = u",
        {"function": {"program": DETACH_PROGRAM}, "inputs": {"x": X}},
    ),
    "control_flow": _example(
        "D2L's while/if program: the gradient is f(a) / a",
        {"function": {"program": CONTROL_FLOW_PROGRAM}, "inputs": {"a": 0.3}},
    ),
    "reduce_sum": _example(
        'reduce "sum": y = x * x is a vector; the gradient of its sum is 2x',
        {"function": {"expression": "x * x"}, "inputs": {"x": X}, "reduce": "sum"},
    ),
    "graph": _example(
        "a graph: d = a * (a + b), gradients 2a + b and a",
        {"function": {"graph": CSC321_GRAPH}, "inputs": {"a": 2.0, "b": 3.0}},
    ),
    "verify": _example(
        "verify: the gradient checked against finite differences, in meta.verification",
        {"function": {"expression": "sum(sin(x) * x**2)"}, "inputs": {"x": X}, "verify": True},
    ),
}

VJP = {
    "head_gradient": _example(
        "y = x * x; y.backward(ones): the head gradient of ones gives 2x",
        {"function": {"expression": "x * x"}, "inputs": {"x": X}, "cotangent": [1.0, 1.0, 1.0, 1.0]},
    ),
}

JVP = {
    "directional": _example(
        "the derivative of sin(x) * x**2 along v",
        {"function": {"expression": "sin(x) * x**2"}, "inputs": {"x": X}, "tangents": {"x": [1.0, 0.0, 0.0, 1.0]}},
    ),
}

JACOBIAN = {
    "forward": _example(
        "softmax's Jacobian, forward mode (one JVP per input element)",
        {"function": {"expression": "softmax(x)"}, "inputs": {"x": [1.0, 2.0, 3.0]}, "mode": "forward"},
    ),
    "reverse": _example(
        "the same Jacobian, reverse mode (one VJP per output element)",
        {"function": {"expression": "softmax(x)"}, "inputs": {"x": [1.0, 2.0, 3.0]}, "mode": "reverse"},
    ),
    "sparse": _example(
        "a stencil's Jacobian as csr: two colours of its pattern, two JVPs whatever the length",
        {"function": {"expression": "x[1:] - x[:-1]"}, "inputs": {"x": [0.0, 1.0, 4.0, 9.0, 16.0]}, "format": "csr"},
    ),
}

HESSIAN = {
    "quadratic_form": _example(
        "x^T A x: the Hessian in x is A + A^T",
        {"function": QUADRATIC_FORM, "inputs": {"x": [1.0, 2.0], "A": A}, "wrt": ["x"]},
    ),
    "sparse": _example(
        "sum(sin(x) * x**2) has a diagonal Hessian: one Hessian-vector product, sent as csr",
        {"function": {"expression": "sum(sin(x) * x**2)"}, "inputs": {"x": X}, "format": "csr"},
    ),
}

HVP = {
    "quadratic_form": _example(
        "x^T A x: H @ v = (A + A^T) v, without forming H",
        {"function": QUADRATIC_FORM, "inputs": {"x": [1.0, 2.0], "A": A}, "wrt": ["x"], "tangents": {"x": [1.0, 0.0]}},
    ),
    "verify": _example(
        "verify: H @ v checked against the difference of the gradient along v",
        {
            "function": {"expression": "sum(sin(x) * x**2)"},
            "inputs": {"x": X},
            "tangents": {"x": [1.0, 0.0, 0.0, 1.0]},
            "verify": True,
        },
    ),
}

TRACE = {
    "graph": _example(
        "CSC321's graph d = a * (a + b): values forward, adjoints back (dd/dc = a, dd/da = 2a + b)",
        {"function": {"graph": CSC321_GRAPH}, "inputs": {"a": 2.0, "b": 3.0}},
    ),
    "two_dot": _example(
        "2*dot(x, x): the dot node's adjoint is 2, x's is 4x",
        {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}},
    ),
    "control_flow": _example(
        "D2L's while/if program: the path its run took, each node with its line",
        {"function": {"program": CONTROL_FLOW_PROGRAM}, "inputs": {"a": 0.3}},
    ),
    "detach": _example(
        "detach: no adjoint reaches y = x * x through u = detach(y)",
        {"function": {"program": DETACH_PROGRAM}, "inputs": {"x": X}},
    ),
}

VALIDATE = {
    "shapes_only": _example(
        "shapes only: the Jacobian of outer(x, x) for 30,000 inputs is 2.7e13 elements: over the limits",
        {
            "function": {"expression": "outer(x, x)"},
            "inputs": {"x": {"dtype": "float64", "shape": [30000]}},
            "operation": "jacobian",
        },
    ),
    "sparse_hessian": _example(
        "a Hessian of 100,000 inputs in csr: its pattern (diagonal) and the sweep it takes, from shapes alone",
        {
            "function": {"expression": "sum(sin(x) * x**2)"},
            "inputs": {"x": {"dtype": "float64", "shape": [100000]}},
            "operation": "hessian",
            "format": "csr",
        },
    ),
    "two_dot": _example(
        "the cost of the gradient of 2*dot(x, x)",
        {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}, "operation": "grad"},
    ),
}

LINEARIZE = {
    "mlp_layer": _example(
        "a tanh layer's sum, linearized in W: then as many JVPs, VJPs and HVPs as needed, at this point",
        {
            "function": {"expression": "sum(tanh(x @ W))"},
            "inputs": {"x": [[1.0, 2.0]], "W": [[0.5, -0.5], [0.25, 1.0]]},
            "wrt": ["W"],
        },
    ),
}

# Through a handle of LINEARIZE's example (W is 2 x 2).
LINEARIZED_PRODUCTS = {
    "jvp": {
        "direction": _example("the directional derivative along dW", {"tangents": {"W": [[1.0, 0.0], [0.0, 1.0]]}})
    },
    "vjp": {"head_gradient": _example("the gradient scaled by a head gradient of 2", {"cotangent": 2.0})},
    "hvp": {"direction": _example("H @ v along dW", {"tangents": {"W": [[1.0, 0.0], [0.0, 1.0]]}})},
}

DERIVATIVE = {
    "two_dot": _example("d/dx 2*dot(x, x): 4 * x", {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}}),
    "sin": _example(
        "D2L's exercise: the derivative of sin(x) without writing cos, for 100 points (shapes are enough)",
        {"function": {"expression": "sin(x)"}, "inputs": {"x": {"dtype": "float64", "shape": [100]}}, "reduce": "sum"},
    ),
    "second": _example(
        "order 2 of a scalar function of one scalar: the second derivative",
        {"function": {"expression": "x * exp(-x)"}, "inputs": {"x": 1.0}, "order": 2},
    ),
    "hvp": _example(
        "order 2: x^T A x's Hessian-vector product, a formula of x, A and v",
        {"function": QUADRATIC_FORM, "inputs": {"x": [1.0, 2.0], "A": A}, "wrt": ["x"], "order": 2},
    ),
    "graph": _example(
        "a graph: d = a * (a + b), its gradients as expressions",
        {"function": {"graph": CSC321_GRAPH}, "inputs": {"a": 2.0, "b": 3.0}},
    ),
}

# The examples of each endpoint's request in the OpenAPI document, by operation name.
EXAMPLES = {
    "evaluate": EVALUATE, "grad": GRAD, "vjp": VJP, "jvp": JVP, "jacobian": JACOBIAN, "hessian": HESSIAN,
    "hvp": HVP, "trace": TRACE, "validate": VALIDATE, "linearize": LINEARIZE, "derivative": DERIVATIVE,
}  # fmt: skip
