"""The transformations themselves: vmap equals a loop, transforms compose, the IR is data."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from engine import api, derivatives, ops, tasks
from engine.errors import EngineError
from engine.frontends.expression import from_expression
from engine.frontends.graph import from_graph
from engine.interpreter import plan
from engine.ir import ShapedArray
from engine.operations import Options
from engine.tracing import trace
from engine.transforms import vmap
from tests.engine.cases import CASES, RULE_CASES
from tests.engine.helpers import build, named

BATCH = 3


@pytest.mark.parametrize("case", CASES + RULE_CASES, ids=[c.id for c in CASES + RULE_CASES])
def test_vmap_equals_a_loop_for_every_batching_pattern(case, backend_name):
    fn = build(case.engine, case.shapes)
    samples = [case.inputs(seed) for seed in range(BATCH)]
    for flags in itertools.product([False, True], repeat=len(case.shapes)):
        if not any(flags):
            continue
        mapped = vmap(fn, flags, BATCH)
        arrays = [np.stack([s[i] for s in samples]) if flag else samples[0][i] for i, flag in enumerate(flags)]
        result = api.evaluate(mapped, named(mapped, arrays), backend_name=backend_name)
        for b in range(BATCH):
            single = [samples[b][i] if flag else samples[0][i] for i, flag in enumerate(flags)]
            np.testing.assert_allclose(result[b], api.evaluate(fn, named(fn, single)), rtol=1e-12, atol=1e-14)


def test_jacobian_is_one_batched_sweep_whatever_the_size():
    """The Jacobian's IR does not grow with the number of rows: vmap, not a loop."""
    sizes = []
    for n in (3, 300):
        fn = trace(
            lambda A, x: ops.tanh(A @ x), {"A": ShapedArray((n, n), "float64"), "x": ShapedArray((n,), "float64")}
        )
        for mode in ("forward", "reverse"):
            program = tasks.transformed(fn, "jacobian", Options(wrt=("x",), mode=mode))
            sizes.append(len(program.equations))
    assert sizes[:2] == sizes[2:]


def test_functions_hash_by_content_and_survive_pickling():
    def body(x):
        return ops.sum(ops.sin(x) * x**2)

    avals = {"x": ShapedArray((5,), "float64")}
    first, second = trace(body, avals), trace(body, avals)
    assert first is not second and first == second and hash(first) == hash(second)
    restored = pickle.loads(pickle.dumps(first))
    assert restored == first
    x = np.linspace(-1, 1, 5)
    np.testing.assert_array_equal(api.grad(restored, {"x": x})["x"], api.grad(first, {"x": x})["x"])
    assert trace(lambda x: ops.sum(ops.cos(x) * x**2), avals) != first


def test_printed_ir_names_every_equation_with_its_type():
    fn = trace(lambda x, A: x @ A @ x, {"x": ShapedArray((3,), "float64"), "A": ShapedArray((3, 3), "float64")})
    assert str(fn).splitlines() == [
        "in x=%0:float64[3], A=%1:float64[3,3]",
        "%2:float64[3] = matmul(%0, %1)",
        "%3:float64[] = matmul(%2, %0)",
        "out %3",
    ]


def test_shapes_and_result_sizes_are_known_before_running():
    fn = trace(
        lambda x, y: ops.outer(x, y), {"x": ShapedArray((30_000,), "float64"), "y": ShapedArray((30_000,), "float64")}
    )
    estimate, _ = tasks.assess(fn, "jacobian", Options(wrt=("x",)))
    assert estimate.output == ShapedArray((30_000, 30_000), "float64")
    assert estimate.results == {"x": (30_000, 30_000, 30_000)}
    assert estimate.result_elements == 30_000**3 + 30_000**2
    assert estimate.largest_intermediate >= 30_000**3


def test_evaluation_frees_each_intermediate_after_its_last_use():
    """A chain of 200 elementwise steps never holds more than its input and two arrays."""

    def chain(x):
        for _ in range(200):
            x = ops.sin(x) + 1.0
        return x

    fn = trace(chain, {"x": ShapedArray((10,), "float64")})
    compiled = plan(fn, "numpy")
    live = {0}
    peak = 1
    for *_, out, freed, _ in compiled.steps:
        live.add(out)
        peak = max(peak, len(live))
        live.difference_update(freed)
    assert peak <= 3


def test_common_subexpressions_are_computed_once():
    fn = trace(lambda x: ops.sum(x * x), {"x": ShapedArray((4,), "float64")})
    gradient = tasks.transformed(fn, "grad")
    assert sum(1 for e in gradient.equations if e.primitive.name == "multiply") == 2  # x*x, then 2 * x


def test_user_errors_carry_a_kind_and_a_location():
    with pytest.raises(EngineError) as error:
        trace(lambda x, y: x + y, {"x": ShapedArray((3,), "float64"), "y": ShapedArray((4,), "float64")})
    assert error.value.kind == "shape" and "[3] and [4]" in error.value.message
    fn = trace(lambda x: x * 2.0, {"x": ShapedArray((3,), "float64")})
    with pytest.raises(EngineError) as error:
        api.grad(fn, {"x": np.ones(3)})
    assert error.value.kind == "not_scalar"
    with pytest.raises(EngineError) as error:
        api.grad(fn, {"x": np.ones(3)}, wrt=["y"])
    assert error.value.kind == "bad_wrt" and error.value.location == "/wrt"
    with pytest.raises(EngineError) as error:
        api.evaluate(fn, {"x": np.ones(4)})
    assert error.value.kind == "bad_input" and error.value.location == "/inputs/x"


def test_integer_inputs_are_constants_and_cannot_be_differentiated():
    fn = trace(lambda x, n: ops.sum(x * n), {"x": ShapedArray((3,), "float64"), "n": ShapedArray((3,), "int64")})
    gradients = api.grad(fn, {"x": np.ones(3), "n": np.array([1, 2, 3])})
    assert list(gradients) == ["x"]
    np.testing.assert_array_equal(gradients["x"], [1.0, 2.0, 3.0])
    with pytest.raises(EngineError) as error:
        api.grad(fn, {"x": np.ones(3), "n": np.array([1, 2, 3])}, wrt=["n"])
    assert error.value.kind == "bad_wrt"


def test_float32_stays_float32():
    fn = trace(lambda x: ops.sum(ops.tanh(x) * 2.0), {"x": ShapedArray((3,), "float32")})
    value, gradients = api.value_and_grad(fn, {"x": np.ones(3, dtype=np.float32)})
    assert value.dtype == np.float32 and gradients["x"].dtype == np.float32
    np.testing.assert_allclose(gradients["x"], 2 * (1 - np.tanh(1.0) ** 2), rtol=1e-6)


def test_auto_jacobian_mode_picks_forward_for_fewer_inputs_than_outputs():
    wide = trace(lambda x: ops.outer(x, x), {"x": ShapedArray((2,), "float64")})
    narrow = trace(lambda x: ops.sum(x), {"x": ShapedArray((5,), "float64")})
    assert api.jacobian(wide, {"x": np.ones(2)})[2] == "forward"
    assert api.jacobian(narrow, {"x": np.ones(5)})[2] == "reverse"


def test_singular_matrix_is_a_numeric_error_located_at_its_equation():
    fn = trace(lambda A: ops.sum(ops.inv(A)), {"A": ShapedArray((2, 2), "float64")})
    with pytest.raises(EngineError) as error:
        api.evaluate(fn, {"A": np.zeros((2, 2))})
    assert error.value.kind == "numeric" and "inv" in error.value.message


def test_derived_equations_carry_the_user_operation_they_come_from():
    avals = {"x": ShapedArray((3,), "float64"), "A": ShapedArray((3, 3), "float64")}
    fn = from_expression("sum(sin(x)) * logdet(A)", avals)
    written = {(o.operation, o.location) for o in fn.origins}
    assert written == {("sum", "offset 0"), ("sin", "offset 4"), ("multiply", "offset 12"), ("logdet", "offset 14")}
    for transformed in (derivatives.gradient_function(fn, (0, 1), False), derivatives.hessian_function(fn, (1,))):
        # the rest is the operation's own glue (a seed of ones, a basis, reshapes), unlocated
        located = [o for o in transformed.origins if o.location is not None]
        assert {(o.operation, o.location) for o in located} == written
        assert any(o.in_derivative for o in located) and not all(o.in_derivative for o in located)


def test_a_cached_transform_reports_errors_where_this_function_was_written():
    """An expression and a graph that compute the same share a key, but not their locations."""
    avals = {"A": ShapedArray((2, 2), "float64")}
    graph = {"inputs": ["A"], "nodes": [{"id": "l", "op": "logdet", "args": ["A"]}], "output": "l"}
    from_source, from_nodes = from_expression("logdet(A)", avals), from_graph(graph, avals)
    assert from_source.key == from_nodes.key and from_source != from_nodes
    for fn, location in ((from_source, "offset 0"), (from_nodes, "node 'l'")):
        with pytest.raises(EngineError) as error:
            api.grad(fn, {"A": np.array([[1.0, 2.0], [2.0, 4.0]])})
        assert error.value.location == location
        assert error.value.message == "the derivative of logdet failed: the matrix is singular"


def test_booleans_count_in_arithmetic_as_in_python():
    fn = trace(lambda x: -(x > 0) + (x > 1) - ops.sign(x > 2), {"x": ShapedArray((3,), "float64")})
    np.testing.assert_array_equal(api.evaluate(fn, {"x": np.array([-1.0, 0.5, 3.0])}), [0, -1, -1])


@pytest.mark.parametrize(
    "body, kind",
    [
        (lambda x: ops.stack([]), "bad_param"),
        (lambda x: x + 2**70, "bad_param"),
        (lambda x: ops.sum(x, keepdims=5), "bad_param"),
        (lambda x: x + [1.0], "bad_param"),
    ],
    ids=["empty stack", "int overflow", "keepdims not bool", "list operand"],
)
def test_malformed_arguments_are_user_errors(body, kind):
    with pytest.raises(EngineError) as error:
        trace(body, {"x": ShapedArray((3,), "float64")})
    assert error.value.kind == kind


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_static_estimates_bound_what_the_transformed_functions_allocate(case):
    fn = build(case.engine, case.shapes)
    requests = [("evaluate", "auto"), ("grad", "auto"), ("vjp", "auto"), ("jvp", "auto"),
                ("jacobian", "forward"), ("jacobian", "reverse")]  # fmt: skip
    if not fn.output.aval.shape:
        requests += [("hessian", "auto"), ("hvp", "auto")]
    for operation, mode in requests:
        options = Options(mode=mode, reduce="sum")
        estimate, _ = tasks.assess(fn, operation, options)
        program = tasks.transformed(fn, operation, options)
        sizes = [v.aval.size for v in program.inputs] + [e.output.aval.size for e in program.equations]
        assert estimate.largest_intermediate >= max(sizes), (operation, mode)
        assert estimate.total_intermediate >= sum(sizes), (operation, mode)


@pytest.mark.parametrize(
    "body", [lambda x: ops.maximum(x, 0.0), lambda x: ops.mean(x * x), lambda x: ops.sum(x * 2) / 3]
)
def test_float32_derivatives_stay_float32_in_every_operation(body):
    fn = trace(lambda x: ops.sum(body(x)), {"x": ShapedArray((3,), "float32")})
    x = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    results = [
        api.value_and_grad(fn, {"x": x})[1]["x"],
        api.jvp(fn, {"x": x}, {"x": x})[1],
        api.jacobian(fn, {"x": x}, mode="forward")[1]["x"],
        api.jacobian(fn, {"x": x}, mode="reverse")[1]["x"],
        api.hessian(fn, {"x": x})[1]["x"]["x"],
        api.hvp(fn, {"x": x}, {"x": x})[2]["x"],
    ]
    assert [r.dtype for r in results] == [np.float32] * len(results)


def test_empty_slices_and_zero_size_inputs_follow_numpy():
    fn = trace(lambda x: ops.sum(x[-10::-1] * 2.0), {"x": ShapedArray((3,), "float64")})
    assert api.evaluate(fn, {"x": np.arange(3.0)}) == 0.0
    np.testing.assert_array_equal(api.grad(fn, {"x": np.arange(3.0)})["x"], np.zeros(3))
    empty = trace(lambda x: x * 2.0, {"x": ShapedArray((1, 0), "float64")})
    for mode in ("forward", "reverse"):
        assert api.jacobian(empty, {"x": np.zeros((1, 0))}, mode=mode)[1]["x"].shape == (1, 0, 1, 0)
    matrices = trace(lambda a, b: a @ b, {"a": ShapedArray((2, 0), "float64"), "b": ShapedArray((0, 3), "float64")})
    _, jacobians, _ = api.jacobian(matrices, {"a": np.zeros((2, 0)), "b": np.zeros((0, 3))}, mode="forward")
    assert jacobians["a"].shape == (2, 3, 2, 0) and jacobians["b"].shape == (2, 3, 0, 3)
