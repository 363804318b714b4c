"""The derivative as a formula: text in the expression language that the front-ends read back
and that evaluates to the engine's own derivative (to 1e-12) and to PyTorch's, for the seeds,
for every primitive of the table, and for random expressions over the elementwise vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import api, frontends, ops
from engine.errors import BAD_INPUT, NO_FORMULA, NOT_SCALAR, EngineError
from engine.formula import derivative_formulas, formulas_of
from engine.ir import ShapedArray
from tests.engine.cases import CASES, PIECEWISE_CONSTANT
from tests.engine.helpers import build, named

TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def formulas(expression: str, shapes: dict[str, tuple[int, ...]], **options):
    avals = {name: ShapedArray(shape, "float64") for name, shape in shapes.items()}
    return derivative_formulas({"expression": expression}, avals, **options)


def evaluated(source, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """A formula read back by its front-end and evaluated, as /v1/evaluate would."""
    return api.evaluate(frontends.build({source.kind: source.text}, inputs), inputs)


def compact(source) -> str:
    return source.text.replace(" ", "")


# ---- the seeds, and what a reader sees ----


def test_the_seeds_derivatives_are_the_textbooks():
    assert compact(formulas("2*dot(x,x)", {"x": (4,)}).formulas["x"]) == "4*x"
    assert compact(formulas("sin(x)", {"x": ()}).formulas["x"]) == "cos(x)"
    assert compact(formulas("sin(x)", {"x": (100,)}, reduce="sum").formulas["x"]) == "cos(x)"


def test_identities_leave_no_trace():
    """x*1, 0*x, x+0 and constant chains, as the gradient's IR is full of them."""
    assert compact(formulas("x*x*x", {"x": ()}).formulas["x"]) == "3*(x*x)"
    assert compact(formulas("3*(2*(x+0))*1", {"x": ()}).formulas["x"]) == "6.0"
    assert compact(formulas("sum(x*y)", {"x": (3,), "y": (3,)}).formulas["y"]) == "x"
    assert compact(formulas("x**3", {"x": ()}, order=2).formulas["x"]) == "6*x"


def test_what_repeats_is_named_once_in_a_program_when_that_is_shorter():
    source = formulas("tanh(x)*exp(x)", {"x": ()}, order=2).formulas["x"]
    assert source.kind == "program"
    assert source.text.count("tanh(x)") == 1 and source.text.count("exp(x)") == 1
    assert source.text.startswith("def derivative(x):\n")
    assert formulas("sin(x)*x", {"x": ()}).formulas["x"].kind == "expression"


def test_a_formula_of_many_inputs_is_a_program_of_all_of_them():
    result = formulas("sum(softmax(x) * y) + a", {"x": (3,), "y": (3,), "a": ()})
    assert result.formulas["x"].kind == "program"
    assert result.formulas["x"].text.startswith("def derivative(x, y, a):")
    assert compact(result.formulas["a"]) == "1.0"


def test_a_hessian_vector_product_names_its_vectors():
    result = formulas("dot(x, matmul(A, x))", {"x": (2,), "A": (2, 2)}, order=2, wrt=["x"])
    assert result.of == "hessian-vector product" and result.vectors == {"x": "v"}
    assert compact(result.formulas["x"]) == "A@v+A.T@v"
    both = formulas("sum(x * v)", {"x": (2,), "v": (2,)}, order=2)
    assert both.vectors == {"x": "v_x", "v": "v_v"}
    assert compact(both.formulas["x"]) == "v_v"


def test_the_second_derivative_of_a_scalar_function_of_one_scalar():
    result = formulas("x * exp(-x)", {"x": ()}, order=2)
    assert result.of == "second derivative" and not result.vectors
    x = np.array(0.7)
    expected = (x - 2) * np.exp(-x)
    np.testing.assert_allclose(evaluated(result.formulas["x"], {"x": x}), expected, **TIGHT)


SCATTERED = "concatenate([0*x[:1]**0,reshape(x[0],(1,))])+concatenate([reshape(x[1],(1,)),0*x[1:]**0])"


@pytest.mark.parametrize(
    ("expression", "shapes", "wrt", "spelled"),
    [
        ("sum(x)", {"x": (3,)}, "x", "x**0"),  # the ones of a broadcast: 1 even at inf and nan
        ("mean(x*y)", {"x": (3,), "y": (2, 3)}, "y", "1/6*x*y**0"),
        ("sum(A @ x)", {"A": (2, 3), "x": (3,)}, "A", "x*A**0"),
        ("sum(A @ x)", {"A": (2, 3), "x": (3,)}, "x", "sum(A,axis=0)"),
        ("trace(A)", {"A": (2, 2)}, "A", "reshape(stack([1.0,0.0,0.0,1.0]),(2,2))"),
        ("det(A)", {"A": (2, 2)}, "A", "(det(A)*inv(A)).T"),
        ("sum(relu(x))", {"x": (3,)}, "x", "where(x>0,1.0,0.0)"),
        ("max(x)", {"x": (3,)}, "x", "where(x==max(x),1.0,0.0)/sum(where(x==max(x),1.0,0.0),keepdims=True)"),
        ("x[0] * x[1]", {"x": (2,)}, "x", SCATTERED),
        ("sum(x)", {"x": (2,), "y": (3,)}, "y", "0*y**0"),  # an input the function does not use
    ],
)
def test_primitives_a_user_never_writes_are_spelled_with_what_the_language_has(expression, shapes, wrt, spelled):
    assert compact(formulas(expression, shapes, reduce="sum").formulas[wrt]) == spelled


@pytest.mark.parametrize(
    ("expression", "shapes", "order", "named"),
    [("sum(x[::2])", {"x": (5,)}, 1, "scatter"), ("det(A)", {"A": (2, 2)}, 2, "adjugate_derivative")],
)
def test_a_derivative_the_language_cannot_write_is_refused_naming_the_operation(expression, shapes, order, named):
    with pytest.raises(EngineError) as raised:
        formulas(expression, shapes, order=order)
    assert raised.value.kind == NO_FORMULA and named in raised.value.message


def test_programs_are_refused_and_non_scalar_outputs_need_reduce():
    with pytest.raises(EngineError) as raised:
        derivative_formulas({"program": "def f(x):\n    return x\n"}, {"x": ShapedArray((), "float64")})
    assert raised.value.kind == BAD_INPUT and raised.value.location == "/function/program"
    with pytest.raises(EngineError) as raised:
        formulas("x * x", {"x": (2,)})
    assert raised.value.kind == NOT_SCALAR


def test_a_graph_gives_expressions_in_its_input_names():
    graph = {"inputs": ["a", "b"], "nodes": [{"id": "c", "op": "add", "args": ["a", "b"]},
             {"id": "d", "op": "multiply", "args": ["a", "c"]}], "output": "d"}  # fmt: skip
    avals = {"a": ShapedArray((), "float64"), "b": ShapedArray((), "float64")}
    result = derivative_formulas({"graph": graph}, avals)
    assert compact(result.formulas["b"]) == "a"
    assert evaluated(result.formulas["a"], {"a": np.array(2.0), "b": np.array(3.0)}) == 7.0


# ---- every primitive of the table: the formula evaluates to the engine's gradient ----

# Strided indexing's derivative has no spelling, nor has the adjugate's (adjugate_derivative):
# the adjugate is an engine primitive for det's derivatives, not a function of the language.
UNSPELLABLE = ("getitem(step,None)", "adjugate", "adjugate(stack)")
SPELLABLE = [case for case in CASES + PIECEWISE_CONSTANT if case.name not in UNSPELLABLE]


@pytest.mark.parametrize("case", SPELLABLE, ids=[c.id for c in SPELLABLE])
def test_every_primitive_of_the_table_reads_back_to_its_gradient(case):
    fn, arrays = build(case.engine, case.shapes), case.inputs()
    inputs = named(fn, arrays)
    expected = api.grad(fn, inputs, reduce="sum")
    for name, source in formulas_of(fn, reduce="sum").formulas.items():
        np.testing.assert_allclose(evaluated(source, inputs), expected[name], **TIGHT)


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("sin", "tanh", "multiply", "divide", "dot", "inv",
                                                                   "logsumexp", "norm", "prod", "concatenate")],
                         ids=lambda c: c.id)  # fmt: skip
def test_hessian_vector_products_read_back_to_the_engines(case):
    fn = build(lambda *xs: ops.sum(case.engine(*xs) * case.engine(*xs)), case.shapes)
    inputs = named(fn, case.inputs())
    rng = np.random.default_rng(2)
    tangents = {name: rng.normal(size=a.shape) for name, a in inputs.items()}
    result = formulas_of(fn, order=2)
    if result.of == "second derivative":  # H v with v = 1
        tangents = {name: np.ones(()) for name in inputs}
    _, _, expected = api.hvp(fn, inputs, tangents)
    with_vectors = {**inputs, **{result.vectors[n]: t for n, t in tangents.items() if n in result.vectors}}
    for name, source in result.formulas.items():
        np.testing.assert_allclose(evaluated(source, with_vectors), expected[name], rtol=1e-11, atol=1e-12)


# ---- random expressions over the elementwise vocabulary ----

SHAPES = {"x": (3,), "y": (2, 3), "a": ()}  # broadcasting against one another
UNARY = ["exp", "sin", "cos", "tanh", "sigmoid", "softplus", "arctan", "sinh", "cosh", "abs", "relu", "square",
         "negative", "expm1", "floor", "sign", "stop_gradient"]  # fmt: skip
POSITIVE = ["log", "sqrt", "log1p"]  # of softplus(...), which is positive
UNIT = ["arcsin", "arccos", "tan"]  # of tanh(...), inside (-1, 1)
CONSTANTS = ["0.5", "2.0", "3", "-1.5"]


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.sampled_from([*SHAPES, *CONSTANTS])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), inner).map(lambda p: f"{p[0]}({p[1]})"),
            st.tuples(st.sampled_from(POSITIVE), inner).map(lambda p: f"{p[0]}(softplus({p[1]}))"),
            st.tuples(st.sampled_from(UNIT), inner).map(lambda p: f"{p[0]}(tanh({p[1]}))"),
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
            st.tuples(st.sampled_from(["maximum", "minimum"]), inner, inner).map(lambda p: f"{p[0]}({p[1]}, {p[2]})"),
            st.tuples(inner, st.sampled_from(["2", "3", "0.5", "-1.0"])).map(lambda p: f"softplus({p[0]}) ** {p[1]}"),
            st.tuples(inner, inner, inner, inner).map(lambda p: f"where({p[0]} > {p[1]}, {p[2]}, {p[3]})"),
        )

    return st.recursive(leaves, extend, max_leaves=8).map(lambda body: f"sum({body})")


def _tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)


# The same source run as plain Python on PyTorch tensors (the test evaluates its own text).
TORCH_NAMES = {
    **{name: (lambda f: lambda v: f(_tensor(v)))(getattr(torch, name)) for name in
       ["exp", "sin", "cos", "tanh", "sigmoid", "arctan", "sinh", "cosh", "abs", "relu", "square", "negative",
        "expm1", "floor", "sign", "log", "sqrt", "log1p", "arcsin", "arccos", "tan", "sum"]},
    "softplus": lambda v: torch.nn.functional.softplus(_tensor(v)),
    "stop_gradient": lambda v: _tensor(v).detach(),
    "maximum": lambda a, b: torch.maximum(_tensor(a), _tensor(b)),
    "minimum": lambda a, b: torch.minimum(_tensor(a), _tensor(b)),
    "where": lambda c, a, b: torch.where(_tensor(c).bool(), _tensor(a), _tensor(b)),
}  # fmt: skip


def torch_gradients(expression: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in inputs.items()}
    total = eval(expression, {"__builtins__": {}}, {**TORCH_NAMES, **tensors})  # noqa: S307 - the test's own text
    if total.requires_grad:
        total.backward()
    return {n: np.zeros(t.shape) if t.grad is None else t.grad.numpy() for n, t in tensors.items()}


RANDOM = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip


@RANDOM
@given(_expressions(), st.integers(0, 2**32 - 1))
def test_random_elementwise_expressions_read_back_to_the_gradient_and_to_torch(expression, seed):
    rng = np.random.default_rng(seed)
    inputs = {name: rng.uniform(-1.5, 1.5, shape) for name, shape in SHAPES.items()}
    fn = frontends.from_expression(expression, {n: ShapedArray(s, "float64") for n, s in SHAPES.items()})
    expected = api.grad(fn, inputs)
    assume(all(np.all(np.isfinite(g)) for g in expected.values()))
    reference = torch_gradients(expression, inputs)
    for name, source in formulas_of(fn).formulas.items():
        actual = evaluated(source, inputs)
        np.testing.assert_allclose(actual, expected[name], **TIGHT, err_msg=f"{expression}\n{source.text}")
        np.testing.assert_allclose(actual, reference[name], rtol=1e-9, atol=1e-12, err_msg=source.text)


@settings(RANDOM, max_examples=50)
@given(_expressions(), st.integers(0, 2**32 - 1))
def test_random_hessian_vector_products_read_back_to_the_engines(expression, seed):
    rng = np.random.default_rng(seed)
    inputs = {name: rng.uniform(-1.5, 1.5, shape) for name, shape in SHAPES.items()}
    fn = frontends.from_expression(expression, {n: ShapedArray(s, "float64") for n, s in SHAPES.items()})
    tangents = {name: rng.normal(size=shape) for name, shape in SHAPES.items()}
    _, _, expected = api.hvp(fn, inputs, tangents)
    assume(all(np.all(np.isfinite(h)) for h in expected.values()))
    result = formulas_of(fn, order=2)
    with_vectors = {**inputs, **{result.vectors[n]: t for n, t in tangents.items()}}
    for name, source in result.formulas.items():
        np.testing.assert_allclose(evaluated(source, with_vectors), expected[name], **TIGHT, err_msg=source.text)
