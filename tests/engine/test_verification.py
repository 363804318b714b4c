"""`verify`: every derivative operation checks its answer against central differences, and
says how: every primitive of the table passes, and a rule that is wrong, at first or at
second order, fails."""

from __future__ import annotations

import numpy as np
import pytest

from engine import ops, verification
from engine.boundary import prepare
from engine.frontends import from_expression
from engine.ir import ShapedArray
from engine.operations import Options
from engine.primitives.elementwise import elementwise
from engine.tasks import bind
from tests.engine.cases import CASES, PIECEWISE_CONSTANT, RULE_CASES
from tests.engine.helpers import build, named

# Test-only primitives with wrong rules, registered here and nowhere in the engine.
sin_off_by_one_percent = elementwise(
    "test_sin_off_by_one_percent", lambda xp, x: xp.sin(x), lambda out, x: 1.01 * ops.cos(x), floating=True
)
cos_with_the_wrong_sign = elementwise(
    "test_cos_with_the_wrong_sign", lambda xp, x: xp.cos(x), lambda out, x: ops.sin(x), floating=True
)
# sin whose derivative is right (its value is cos) but whose second derivative is not
sin_wrong_at_second_order = elementwise(
    "test_sin_wrong_at_second_order", lambda xp, x: xp.sin(x), lambda out, x: cos_with_the_wrong_sign(x), floating=True
)

FIRST_ORDER = ["grad", "vjp", "jvp", "jacobian-forward", "jacobian-reverse"]
SECOND_ORDER = ["hessian", "hvp"]


def verified(fn, arrays, operation: str, dtype: str = "float64") -> dict:
    """`operation` of fn with verify on; a vector output is summed (grad) or squared and summed
    (second order), and the cotangent and tangents are drawn at random."""
    rng = np.random.default_rng(3)
    inputs = named(fn, [a.astype(dtype) for a in arrays])
    name, _, mode = operation.partition("-")
    extra = None
    if name == "vjp":
        extra = rng.normal(size=fn.output.aval.shape)
    elif name in ("jvp", "hvp"):
        extra = {n: rng.normal(size=a.shape) for n, a in inputs.items()}
    options = Options(reduce="sum" if name == "grad" else "none", mode=mode or "auto", verify=True)
    answer = bind(fn, name, inputs, extra, options, limits=None).run()
    return answer.verification


def squared_sum(case, dtype: str = "float64"):
    return build(lambda *xs: ops.sum(case.engine(*xs) * case.engine(*xs)), case.shapes, dtype)


# stop_gradient's derivative is zero by definition, not by its values (see below).
TABLE = CASES + RULE_CASES + [case for case in PIECEWISE_CONSTANT if case.name != "stop_gradient"]


@pytest.mark.parametrize("case", TABLE, ids=[c.id for c in TABLE])
def test_every_primitive_of_the_table_passes_in_float64(case):
    fn, arrays = build(case.engine, case.shapes), case.inputs()
    for operation in FIRST_ORDER:
        report = verified(fn, arrays, operation)
        assert report["verdict"] == "pass", (operation, report)
        assert report["error"] <= report["tolerance"] == 1e-6
    for operation in SECOND_ORDER:
        report = verified(squared_sum(case), arrays, operation)
        assert report["verdict"] == "pass", (operation, report)


@pytest.mark.parametrize("operation", FIRST_ORDER + SECOND_ORDER)
def test_a_derivative_off_by_one_percent_fails(operation):
    x = np.random.default_rng(0).normal(size=(50,))
    fn = build(lambda x: sin_off_by_one_percent(x) * x, [x.shape])
    report = verified(fn if operation in FIRST_ORDER else squared_sum_of(fn), [x], operation)
    assert report["verdict"] == "fail", report
    assert report["error"] > 100 * report["tolerance"]


@pytest.mark.parametrize("operation", SECOND_ORDER)
def test_a_wrong_second_derivative_fails_while_the_first_passes(operation):
    x = np.random.default_rng(0).normal(size=(4,))
    fn = build(lambda x: ops.sum(sin_wrong_at_second_order(x)), [x.shape])
    assert verified(fn, [x], "grad")["verdict"] == "pass"
    report = verified(fn, [x], operation)
    assert report["verdict"] == "fail", report
    assert report["error"] > 0.1


def test_stop_gradient_fails_and_the_report_says_why():
    fn = from_expression("sum(detach(x) * x)", {"x": ShapedArray((3,), "float64")})
    report = bind(fn, "grad", {"x": np.arange(3.0)}, options=Options(verify=True)).run().verification
    assert report["verdict"] == "fail"
    assert "stop_gradient" in report["detail"]


def squared_sum_of(fn):
    from engine.tracing import inline, trace

    return trace(lambda *xs: ops.sum(inline(fn, xs)[0] ** 2), fn.input_avals)


def test_float32_uses_its_own_step_and_tolerance_and_passes_an_mlp():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(8, 16)), "w1": rng.normal(size=(16, 16)) / 4, "w2": rng.normal(size=(16, 1)) / 4}
    function = {"expression": "sum(tanh(tanh(x @ w1) @ w2))"}
    task = prepare(function, inputs, "grad", options=Options(wrt=("w1", "w2"), verify=True, dtype="float32"))
    report = task.run().verification
    assert report["step"] == pytest.approx(np.cbrt(np.finfo(np.float32).eps))
    assert report["tolerance"] == 1e-2
    assert report["verdict"] == "pass" and report["error"] < 1e-3


def test_the_report_says_what_was_compared_and_at_what_cost():
    fn = from_expression("sum(sin(x))", {"x": ShapedArray((3,), "float64")})
    answer = bind(fn, "grad", {"x": np.arange(3.0)}, options=Options(verify=True)).run()
    report = answer.verification
    assert report["step"] == pytest.approx(6.055e-6, rel=1e-3)
    assert report["directions"] == verification.RANDOM_DIRECTIONS
    assert report["evaluations"] == 2 * verification.RANDOM_DIRECTIONS
    assert "adjoint" in report["compared"]
    assert bind(fn, "grad", {"x": np.arange(3.0)}).run().verification is None


def test_tangents_are_the_direction_of_jvp_and_hvp():
    fn = from_expression("sum(x ** 3)", {"x": ShapedArray((2,), "float64")})
    tangents = {"x": np.array([1e-3, 0.0])}
    for operation in ("jvp", "hvp"):
        report = bind(fn, operation, {"x": np.array([2.0, 1.0])}, tangents, Options(verify=True)).run().verification
        assert report["verdict"] == "pass" and report["directions"] == 1


def test_a_derivative_that_is_nan_is_inconclusive():
    fn = from_expression("sum(sqrt(x))", {"x": ShapedArray((2,), "float64")})
    report = bind(fn, "grad", {"x": np.array([0.0, 1.0])}, options=Options(verify=True)).run().verification
    assert report["verdict"] == "inconclusive" and report["error"] is None


def test_a_function_that_fails_at_a_perturbed_input_is_inconclusive_not_an_error():
    step = verification.step_of("float64")
    fn = from_expression("sum(inv(a))", {"a": ShapedArray((2, 2), "float64")})
    a, tangent = np.diag([step, 1.0]), np.diag([1.0, 0.0])  # a - step * tangent is singular
    answer = bind(fn, "jvp", {"a": a}, {"a": tangent}, Options(verify=True)).run()
    assert answer.fields["jvp"] == pytest.approx(-1 / step**2)
    assert answer.verification["verdict"] == "inconclusive"
    assert "singular" in answer.verification["detail"]


BRANCHING = "def f(x):\n    if sum(x) > 0:\n        return sum(x ** 3)\n    return sum(x)\n"


@pytest.mark.parametrize("operation", ["grad", "hessian"])
def test_a_program_is_verified_along_its_path(operation):
    task = prepare({"program": BRANCHING}, {"x": np.array([1.0, 2.0])}, operation, options=Options(verify=True))
    assert task.run().verification["verdict"] == "pass"


@pytest.mark.parametrize("operation", ["grad", "hvp"])
def test_a_program_whose_path_changes_within_the_step_says_so(operation):
    x = np.array([1e-7, -1e-7 + 1e-9])
    tangents = {"x": np.ones(2)} if operation == "hvp" else None
    task = prepare({"program": BRANCHING}, {"x": x}, operation, tangents, Options(verify=True))
    report = task.run().verification
    assert report["verdict"] == "path-changed" and report["error"] is None
    assert "path" in report["detail"]
